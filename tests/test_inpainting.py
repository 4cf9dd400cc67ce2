"""Region-inpainting re-dub (core): only the region changes, everything outside the feathered
band is the original pixel, bit for bit; the mask is the mouth (not the eyes); the output follows
the new motion's length."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vlogger_core.body_model import load_body
from vlogger_core.inpainting import (InpaintError, RedubSettings, feathered_mask, pingpong,
                                     redub_frames, region_motion)
from vlogger_core.motion_params import ARKIT52, Motion
from vlogger_core.video_writer import read_video

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def video():
    frames, fps, _, _ = read_video(REPO / "examples" / "talking_astronaut.mp4")
    return frames[:30].astype(np.float32) / 255.0, fps


@pytest.fixture(scope="module")
def body():
    return load_body()


def _speaking(n: int, fps: float) -> Motion:
    """A new 'speech' motion: the jaw opens and closes; the head would nod (must be ignored)."""
    m = Motion.neutral(n, fps)
    t = np.arange(n) / fps
    m.expression[:, ARKIT52.index("jawOpen")] = torch.from_numpy(0.5 + 0.5 * np.sin(2 * np.pi * 2 * t)).float()
    m.expression[:, ARKIT52.index("eyeBlinkLeft")] = 1.0                    # not the mouth: dropped
    return m


def test_region_motion_keeps_only_the_region():
    m = _speaking(10, 24.0)
    r = region_motion(m, "mouth")
    assert torch.equal(r.expression[:, ARKIT52.index("jawOpen")], m.expression[:, ARKIT52.index("jawOpen")])
    assert float(r.expression[:, ARKIT52.index("eyeBlinkLeft")].abs().max()) == 0.0
    with pytest.raises(InpaintError, match="unknown region"):
        region_motion(m, "hair")


def test_feathered_mask_band():
    region = np.zeros((40, 40), bool)
    region[18:22, 18:22] = True
    m = feathered_mask(region, dilate=2, feather=3)
    assert m[20, 20] == 1.0 and m[0, 0] == 0.0
    assert 0 < m[20, 26] < 1                     # inside the soft band
    assert m[20, 30] == 0.0                      # beyond it: exactly zero


def test_redub_changes_only_the_mouth(body, video):
    frames, fps = video
    n = 40                                        # longer than the 30-frame video: ping-pong
    outs, masks = zip(*redub_frames(body, frames, _speaking(n, fps), RedubSettings(window=16)))
    out, mask = np.concatenate(outs), np.concatenate(masks)
    assert out.shape == (n,) + frames.shape[1:] and mask.shape == (n,) + frames.shape[1:3]
    orig = np.stack([frames[pingpong(i, len(frames))] for i in range(n)])
    outside = mask == 0
    assert outside.mean() > 0.95                                   # a small region
    assert np.array_equal(out[outside], orig[outside])            # bit-identical outside
    assert np.abs(out - orig)[mask > 0.99].mean() > 0.02           # the mouth was redrawn
    # the mask sits on the mouth: below the eyes, around the lips of the first frame's face
    ys, xs = np.nonzero(mask[0] > 0.5)
    assert 70 < ys.mean() < 110 and 100 < xs.mean() < 160, (ys.mean(), xs.mean())
    assert (mask[:, :60] == 0).all()                               # nothing at eye level and above


def test_redub_needs_a_face(body):
    noise = np.random.default_rng(0).uniform(0, 1, (4, 128, 128, 3)).astype(np.float32)
    with pytest.raises(InpaintError, match="no face"):
        list(redub_frames(body, noise, _speaking(4, 24.0), RedubSettings(detector="opencv")))
