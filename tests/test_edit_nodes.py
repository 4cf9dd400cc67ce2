"""VLOGGER_RegionInpaint through the real server: the shipped re-dub workflow's pieces, the mask
output, and artist-facing errors."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image


def _prompt(comfy, **over):
    wf = comfy.workflow("redub_video")
    wf["7"]["inputs"].update(over)
    wf["11"] = {"class_type": "MaskToImage", "inputs": {"mask": ["7", 1]}}
    wf["12"] = {"class_type": "ImageFromBatch", "inputs": {"image": ["11", 0], "batch_index": 10, "length": 1}}
    wf["13"] = {"class_type": "PreviewImage", "inputs": {"images": ["12", 0]}}
    return wf


def test_redub_mask_is_the_mouth(comfy):
    res = comfy.run(_prompt(comfy))
    assert res.error is None, res.error
    mask = np.asarray(Image.open(io.BytesIO(comfy.fetch(res.outputs["13"]["images"][0]))).convert("L"))
    on = mask > 128
    assert 0.002 < on.mean() < 0.05, on.mean()                 # a mouth-sized region of 256x256
    ys, xs = np.nonzero(on)
    assert 70 < ys.mean() < 110 and 100 < xs.mean() < 160
    eyes = _prompt(comfy, region="eyes")
    res = comfy.run(eyes)
    assert res.error is None, res.error
    m2 = np.asarray(Image.open(io.BytesIO(comfy.fetch(res.outputs["13"]["images"][0]))).convert("L")) > 128
    assert np.nonzero(m2)[0].mean() < ys.mean() - 10           # the eyes region sits higher


def test_video_without_a_person_is_a_clear_error(comfy):
    Image.fromarray(np.full((128, 128, 3), 70, np.uint8)).save(comfy.input_dir / "empty_room.png")
    wf = _prompt(comfy, detector="opencv")
    wf["20"] = {"class_type": "LoadImage", "inputs": {"image": "empty_room.png"}}
    wf["7"]["inputs"]["images"] = ["20", 0]
    res = comfy.run(wf)
    assert res.error is not None
    assert "[VLOGGER_RegionInpaint] input 'images'" in str(res.error) and "Fix:" in str(res.error)
