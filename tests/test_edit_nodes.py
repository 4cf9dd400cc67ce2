"""VLOGGER_RegionInpaint through the real server: the shipped re-dub workflow's pieces, the mask
output, the audio passed on, the masked-diffusion path, and artist-facing errors."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from vlogger_core.media import read_video

NODE = "[VLOGGER_RegionInpaint]"


def _prompt(comfy, **over):
    """The shipped workflow + previews of frame 10 of the re-dubbed frames and of the mask."""
    wf = comfy.workflow("redub_video")
    wf["7"]["inputs"].update(over)
    wf["11"] = {"class_type": "MaskToImage", "inputs": {"mask": ["7", 1]}}
    wf["12"] = {"class_type": "ImageFromBatch", "inputs": {"image": ["11", 0], "batch_index": 10, "length": 1}}
    wf["13"] = {"class_type": "PreviewImage", "inputs": {"images": ["12", 0]}}
    wf["14"] = {"class_type": "ImageFromBatch", "inputs": {"image": ["7", 0], "batch_index": 10, "length": 1}}
    wf["15"] = {"class_type": "PreviewImage", "inputs": {"images": ["14", 0]}}
    wf["16"] = {"class_type": "ImageFromBatch", "inputs": {"image": ["2", 0], "batch_index": 10, "length": 1}}
    wf["17"] = {"class_type": "PreviewImage", "inputs": {"images": ["16", 0]}}
    return wf


def _band(mask_rgb: np.ndarray) -> np.ndarray:
    """Pixels the mask touches, grown by 1 px: a preview PNG rounds mask values below 1/255 to 0."""
    import cv2
    return cv2.dilate((mask_rgb[..., 0] > 0).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0


def _image(comfy, res, node) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(comfy.fetch(res.outputs[node]["images"][0]))).convert("RGB"))


def test_redub_runs_and_the_mask_is_the_mouth(comfy, tmp_path):
    res = comfy.run(_prompt(comfy))
    assert res.error is None, res.error
    mask = _image(comfy, res, "13")[..., 0] > 128
    assert 0.002 < mask.mean() < 0.08, mask.mean()              # a mouth-sized region of 256x256
    ys, xs = np.nonzero(mask)
    assert 60 < ys.mean() < 110 and 100 < xs.mean() < 160
    # outside the mask the re-dubbed frame is the video's frame (PNG previews: 8-bit exact)
    new, orig = _image(comfy, res, "15").astype(int), _image(comfy, res, "17").astype(int)
    soft = _band(_image(comfy, res, "13"))
    assert np.array_equal(new[~soft], orig[~soft])
    assert np.abs(new - orig)[mask].mean() > 2                   # the mouth was redrawn
    mp4 = [f for f in res.files() if f["filename"].endswith(".mp4")]
    assert mp4, res.files()
    path = tmp_path / "redub.mp4"
    path.write_bytes(comfy.fetch(mp4[0]))
    frames, fps, audio, rate = read_video(path)
    assert audio is not None and abs(len(frames) / fps - len(audio) / rate) < 0.1   # the speech's length
    assert len(frames) < 96                                      # cut: the new sentence is shorter than the video
    eyes = comfy.run(_prompt(comfy, region="eyes"))
    assert eyes.error is None, eyes.error
    m2 = _image(comfy, eyes, "13")[..., 0] > 128
    assert np.nonzero(m2)[0].mean() < ys.mean() - 10             # the eyes region sits higher


def test_masked_diffusion_through_the_node(comfy):
    """Tiny RANDOM video model (noise inside the mask, plumbing only)."""
    wf = _prompt(comfy, video_model=["30", 0], steps=1)
    wf["30"] = {"class_type": "VLOGGER_VideoModelLoader",
                "inputs": {"model_folder": "tiny-random-pixel", "checkpoint": "(none: pixel-space model)"}}
    wf["3"]["inputs"]["text"] = "Hi."                            # a short clip: few windows
    for k in ("12", "14", "16"):
        wf[k]["inputs"]["batch_index"] = 0
    res = comfy.run(wf)
    assert res.error is None, res.error
    soft = _band(_image(comfy, res, "13"))
    assert soft.any()
    new, orig = _image(comfy, res, "15").astype(int), _image(comfy, res, "17").astype(int)
    assert np.array_equal(new[~soft], orig[~soft])


def test_a_video_model_of_the_wrong_kind_is_refused(comfy):
    wf = _prompt(comfy, video_model=["30", 0])
    wf["30"] = {"class_type": "VLOGGER_VideoModelLoader",
                "inputs": {"model_folder": "tiny-random-sr64", "checkpoint": "(none: pixel-space model)"}}
    res = comfy.run(wf)
    assert res.error is not None and f"{NODE} input 'video_model'" in str(res.error), res.error
    assert "Fix:" in str(res.error)


def test_video_without_a_person_is_a_clear_error(comfy):
    Image.fromarray(np.full((128, 128, 3), 70, np.uint8)).save(comfy.input_dir / "empty_room.png")
    wf = _prompt(comfy, detector="opencv")
    wf["20"] = {"class_type": "LoadImage", "inputs": {"image": "empty_room.png"}}
    del wf["7"]["inputs"]["video"]
    wf["7"]["inputs"]["images"] = ["20", 0]
    res = comfy.run(wf)
    assert res.error is not None
    assert f"{NODE} input 'images'" in str(res.error) and "no face" in str(res.error) and "Fix:" in str(res.error)


def test_missing_inputs_are_named(comfy):
    wf = _prompt(comfy)
    del wf["7"]["inputs"]["speech"]
    res = comfy.run(wf)
    assert res.error is not None and f"{NODE} input 'speech'" in str(res.error), res.error
    wf = _prompt(comfy)
    del wf["7"]["inputs"]["video"]
    res = comfy.run(wf)
    assert res.error is not None and f"{NODE} input 'images'" in str(res.error), res.error
