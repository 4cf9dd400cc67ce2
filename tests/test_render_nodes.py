"""VLOGGER_RenderControls through the real server: maps for the reference and for a motion,
frame ranges, and artist-facing errors (motion for another expression set, start past the end)."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from vlogger_core.motion.params import ARKIT52, Motion

NODE = "VLOGGER_RenderControls"


def _motion_file(comfy, name: str, expression_set: str, frames: int) -> str:
    m = Motion.neutral(frames, 25.0, expression_set)
    if expression_set == "arkit52":
        m.expression[1:, ARKIT52.index("jawOpen")] = 1.0   # mouth open from frame 1 on
    m.save_npz(str(comfy.input_dir / name))
    return name


def _prompt(motion_file: str | None = None, **render_inputs) -> dict:
    p = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "astronaut.png"}},
        "2": {"class_type": "VLOGGER_BodyModelLoader", "inputs": {"body": "anny_smplx"}},
        "3": {"class_type": "VLOGGER_FitReference",
              "inputs": {"image": ["1", 0], "body": ["2", 0], "detector": "opencv", "scale": 1.0,
                         "offset_x": 0.0, "offset_y": 0.0, "rotation": 0.0, "fov": 0.0}},
        "4": {"class_type": NODE,
              "inputs": {"body": ["2", 0], "fit": ["3", 0], "width": 256, "height": 256,
                         "start_frame": 0, "max_frames": 0,
                         "mask_part": "mouth (lips + interior + teeth + tongue)", **render_inputs}},
        "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}},
        "6": {"class_type": "PreviewImage", "inputs": {"images": ["4", 1]}},
        "7": {"class_type": "PreviewImage", "inputs": {"images": ["4", 2]}},
        "8": {"class_type": "MaskToImage", "inputs": {"mask": ["4", 4]}},
        "9": {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}},
    }
    if motion_file is not None:
        p["10"] = {"class_type": "VLOGGER_LoadMotion", "inputs": {"motion_file": motion_file}}
        p["4"]["inputs"]["motion"] = ["10", 0]
    return p


def _image(comfy, res, node: str, i: int = 0) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(comfy.fetch(res.outputs[node]["images"][i]))))


@pytest.fixture(scope="module")
def body_nodes(comfy):
    info = comfy.object_info()
    for n in ("VLOGGER_BodyModelLoader", "VLOGGER_FitReference", NODE):
        assert n in info, f"{n} is not registered"
    return info


def test_reference_only_renders_one_frame_of_each_map(comfy, body_nodes):
    res = comfy.run(_prompt())
    assert res.error is None, res.error
    for node in ("5", "6", "7", "9"):
        assert len(res.outputs[node]["images"]) == 1
    dense, sem, warped = (_image(comfy, res, n) for n in ("5", "6", "7"))
    assert dense.shape == (256, 256, 3)
    body = dense.sum(-1) > 0
    assert 0.05 < body.mean() < 0.95                 # a body in the frame, not all of it
    assert ((sem.sum(-1) > 0) == body).mean() > 0.99  # semantic covers the same pixels
    assert (warped.sum(-1) > 0).mean() > 0.5 * body.mean()


def test_motion_frames_range_and_mouth_mask(comfy, body_nodes):
    f = _motion_file(comfy, "render_test_arkit.npz", "arkit52", 4)
    res = comfy.run(_prompt(f, width=256, height=256))
    assert res.error is None, res.error
    assert len(res.outputs["5"]["images"]) == 4
    closed = (_image(comfy, res, "9", 0)[..., 0] > 127).sum()
    opened = (_image(comfy, res, "9", 1)[..., 0] > 127).sum()
    assert opened > closed, (closed, opened)
    res = comfy.run(_prompt(f, start_frame=1, max_frames=2))
    assert res.error is None, res.error
    assert len(res.outputs["7"]["images"]) == 2


def test_motion_for_another_expression_set_is_a_clear_error(comfy, body_nodes):
    f = _motion_file(comfy, "render_test_smplx10.npz", "smplx10", 3)
    res = comfy.run(_prompt(f))
    assert res.error is not None
    msg = str(res.error)
    assert f"[{NODE}] input 'motion'" in msg and "smplx10" in msg and "arkit52" in msg


def test_start_past_the_motion_is_a_clear_error(comfy, body_nodes):
    f = _motion_file(comfy, "render_test_short.npz", "arkit52", 3)
    res = comfy.run(_prompt(f, start_frame=10))
    assert res.error is not None
    assert f"[{NODE}] input 'start_frame'" in str(res.error)
