"""The default renderer's frames (core, no server): at rest a frame is the photo itself, the
photo's own teeth included, and an opening mouth shows a painted interior."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from vlogger_core.body.model import load_body
from vlogger_core.body.reference import fit_reference
from vlogger_core.motion.params import ARKIT52, Motion
from vlogger_core.render.talking_video import TalkingVideoRenderer

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def renderer():
    photo = torch.from_numpy(np.array(Image.open(REPO / "examples" / "astronaut.png").convert("RGB"))).float() / 255
    body = load_body()
    return TalkingVideoRenderer(body, fit_reference(photo, body, "auto"), 512, 512)


def _mouth_box(r: TalkingVideoRenderer, frame_labels: np.ndarray) -> tuple[slice, slice]:
    ids = [r.part_ids[p] for p in ("lips", "teeth", "mouth_interior") if p in r.part_ids]
    ys, xs = np.nonzero(np.isin(frame_labels, ids))
    return slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)


def _labels(r: TalkingVideoRenderer, motion) -> np.ndarray:
    from vlogger_core.render import controls as control_maps
    from vlogger_core.render import rasterizer
    v = r.body.pose_frames(r.fit, motion, 0, 1, "cpu")
    frags = rasterizer.rasterize(control_maps.project(r.camera, v), r.faces, r.width, r.height)
    return rasterizer.face_label_map(frags, r.labels)[0]


@pytest.mark.needs_mediapipe     # the photo's open smile is fitted from mediapipe's lips
def test_at_rest_the_mouth_is_the_photos_own(renderer):
    """The photo shows teeth: they are fitted as visible, so the rest frame keeps them (the
    painted teeth were grey slabs over them)."""
    r = renderer
    frame = r.render(None, 0, 1)[0]
    photo = cv2.remap(r.reference.photo, r.identity[..., 0], r.identity[..., 1], cv2.INTER_LINEAR)
    ys, xs = _mouth_box(r, _labels(r, None))
    teeth = _labels(r, None)[ys, xs] == r.part_ids["teeth"]
    assert teeth.sum() > 30, teeth.sum()                  # the fitted mouth is open like the photo's
    diff = np.abs(frame[ys, xs] - photo[ys, xs]).mean(-1)
    assert diff.mean() < 0.03 and diff[teeth].mean() < 0.03, (diff.mean(), diff[teeth].mean())


def test_an_open_jaw_paints_the_unseen_interior(renderer):
    r = renderer
    m = Motion.neutral(1, 24.0, r.body.expression_set)
    m.expression[0, ARKIT52.index("jawOpen")] = 0.8
    frame = r.render(m, 0, 1)[0]
    lab = _labels(r, m)
    cavity = lab == r.part_ids["mouth_interior"]
    assert cavity.sum() > 50
    # the cavity is dark (the painted interior), darker than the lips around it
    assert frame[cavity].mean() < 0.5 * frame[lab == r.part_ids["lips"]].mean()
