"""Every IMAGE-batch node estimates its memory before it allocates (issue 18, long audio): through
the real server, a prompt whose batch would need more than the free memory is refused at once
with a message naming the node and the input (HTTP 400 or an execution error), the server still
answers and no output file is written.

Sizes are chosen from the memory free right now (vlogger_core.memory.available_gb) so that each
batch needs about twice what the nodes allow (vlogger_core.memory.BATCH_SHARE of it): the
refusals do not depend on the machine. Nothing large is ever allocated: the motions are neutral
.npz files, the speech a short or silent WAV whose length is read from its header."""
from __future__ import annotations

import math
import time
import uuid
import wave

import numpy as np
import pytest
from comfyui_server import PromptRejected

from vlogger_core.memory import BATCH_SHARE, available_gb
from vlogger_core.motion.params import Motion

FIT_NODES = lambda: {  # noqa: E731  (the render_controls workflow's photo, body and fit)
    "1": {"class_type": "LoadImage", "inputs": {"image": "astronaut.png"}},
    "2": {"class_type": "VLOGGER_BodyModelLoader", "inputs": {"body": "anny_smplx"}},
    "3": {"class_type": "VLOGGER_FitReference",
          "inputs": {"image": ["1", 0], "body": ["2", 0], "detector": "opencv", "scale": 1.0,
                     "offset_x": 0.0, "offset_y": 0.0, "rotation": 0.0, "fov": 0.0}},
}
REDUB_MAX_FRAMES = 20_000    # nodes/nodes_edit.py MAX_FRAMES
QUICK_S = 10.0     # a refusal takes well under this (the fit is cached by the warm-up)


def _frames_over(bytes_per_frame: float, fps: float = 1.0) -> int:
    """Frames (or seconds at `fps`) whose batch needs twice what the free memory allows."""
    limit = BATCH_SHARE * available_gb() * 1e9
    return int(math.ceil(2 * limit / bytes_per_frame / fps)) + 1


def _motion(comfy, frames: int, fps: float = 25.0) -> str:
    name = f"memory_{uuid.uuid4().hex[:8]}.npz"
    Motion.neutral(frames, fps).save_npz(str(comfy.input_dir / name))
    return name


def _wav(comfy, seconds: float, rate: int = 8000) -> str:
    """A quiet sine WAV of `seconds` (not silence: trimming leaves it as long)."""
    name = f"memory_{uuid.uuid4().hex[:8]}.wav"
    n = int(seconds * rate)
    t = np.arange(n, dtype=np.float32) / rate
    with wave.open(str(comfy.input_dir / name), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.sin(2 * np.pi * 220 * t) * 3000).astype("<i2").tobytes())
    return name


def _outputs(comfy) -> set:
    return {p for p in comfy.output_dir.rglob("*") if p.is_file()}


def _refused(comfy, prompt: dict, node: str, input_name: str, *also: str, memory: bool = True) -> str:
    """Run `prompt`; it must be refused quickly naming `node` and `input_name` (and `also`),
    leave no output file and leave the server answering. Returns the message."""
    before = _outputs(comfy)
    t0 = time.time()
    try:
        res = comfy.run(prompt, timeout=300)
        assert res.error is not None, f"ran instead of being refused: {res.outputs}"
        msg = str(res.error.get("exception_message", res.error))
    except PromptRejected as e:
        msg = str(e.body)
    seconds = time.time() - t0
    print(f"refused in {seconds:.2f} s: {msg}")
    assert f"[{node}] input '{input_name}'" in msg, msg
    assert "Fix:" in msg, msg
    assert not memory or ("GB" in msg and "free" in msg), msg
    for text in also:
        assert text in msg, (text, msg)
    assert seconds < QUICK_S, f"refused after {seconds:.1f} s: {msg}"
    assert comfy.object_info()["VLOGGER_RenderControls"]          # the server still answers
    assert _outputs(comfy) == before, _outputs(comfy) - before       # nothing written
    return msg


@pytest.fixture(scope="module")
def fitted(comfy):
    """The fit the prompts below share, made once (ComfyUI caches it)."""
    res = comfy.run({**FIT_NODES(), "9": {"class_type": "PreviewImage", "inputs": {"images": ["3", 1]}}})
    assert res.error is None, res.error


# ----------------------------------------------------------------------------- at run time
# node, values per pixel it holds (float32), its size inputs
RANGE_NODES = [
    ("VLOGGER_RenderControls", 14, {"width": 4096, "height": 4096,
                                    "mask_part": "mouth (lips + interior + teeth + tongue)"}),
    ("VLOGGER_PoseVideo", 3, {"width": 2048, "height": 2048, "body_points": True, "hands": True,
                              "face": False, "style": "openpose", "channel_order": "RGB"}),
    ("VLOGGER_FaceVideo", 3, {"width": 2048, "height": 2048}),
    ("VLOGGER_DepthVideo", 10, {"width": 2048, "height": 2048}),
]


@pytest.mark.parametrize("node, channels, inputs", RANGE_NODES, ids=[n for n, *_ in RANGE_NODES])
@pytest.mark.parametrize("ranged", [False, True], ids=["whole_motion", "max_frames"])
def test_frame_batch_nodes_refuse_a_motion_too_long_for_free_memory(comfy, fitted, node, channels,
                                                                    inputs, ranged):
    size = inputs["width"] * inputs["height"]
    frames = _frames_over(size * channels * 4)
    prompt = {**FIT_NODES(),
              "10": {"class_type": "VLOGGER_LoadMotion", "inputs": {"motion_file": _motion(comfy, frames)}},
              "4": {"class_type": node, "inputs": {"body": ["2", 0], "fit": ["3", 0], "motion": ["10", 0],
                                                   "start_frame": 0, "max_frames": frames if ranged else 0,
                                                   **inputs}},
              "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}}}
    _refused(comfy, prompt, node, "max_frames" if ranged else "motion", f"{frames:,} frames at 2048x2048"
             if "2048" in str(inputs) else f"{frames:,} frames at 4096x4096")


def test_render_controls_reference_pose_still_renders_at_a_size_that_fits(comfy, fitted):
    """The free-memory rule refuses only what does not fit: one reference frame at 512 renders."""
    prompt = {**FIT_NODES(),
              "4": {"class_type": "VLOGGER_RenderControls",
                    "inputs": {"body": ["2", 0], "fit": ["3", 0], "width": 512, "height": 504, "start_frame": 0,
                               "max_frames": 0, "mask_part": "whole body"}},
              "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}}}
    res = comfy.run(prompt)
    assert res.error is None, res.error
    assert len(res.outputs["5"]["images"]) == 1


def test_region_inpaint_refuses_a_speech_too_long_for_its_frames(comfy, fitted):
    """Re-dubbing: as many new frames as the motion has, at the video's size (256 x 256), with
    their masks, listed and then joined."""
    fps = 25.0
    frames = _frames_over(256 * 256 * 8 * 4)
    prompt = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": "talking_astronaut.mp4"}},
        "2": {"class_type": "LoadAudio", "inputs": {"audio": _wav(comfy, frames / fps)}},
        "3": {"class_type": "VLOGGER_LoadMotion", "inputs": {"motion_file": _motion(comfy, frames, fps)}},
        "6": {"class_type": "VLOGGER_BodyModelLoader", "inputs": {"body": "anny_smplx"}},
        "7": {"class_type": "VLOGGER_RegionInpaint",
              "inputs": {"video": ["1", 0], "body": ["6", 0], "motion": ["3", 0], "speech": ["2", 0], "fps": fps,
                         "region": "mouth", "dilate": 6, "feather": 4, "detector": "auto", "seed": 0,
                         "steps": 25}},
        "8": {"class_type": "VLOGGER_SaveVideo",
              "inputs": {"images": ["7", 0], "fps": fps, "filename_prefix": "vlogger/memory_redub",
                         "audio": ["7", 2], "crf": 20}},
    }
    if frames <= REDUB_MAX_FRAMES:
        _refused(comfy, prompt, "VLOGGER_RegionInpaint", "motion", "re-dubbed frames")
    else:                   # over 42 GB free: the node's fixed frame cap answers first
        _refused(comfy, prompt, "VLOGGER_RegionInpaint", "motion", "use at most", memory=False)


# ----------------------------------------------------------------------------- long speech at once
def _speech_prompt(comfy, workflow: str, seconds: float, keep: list[str], **changes) -> dict:
    """`workflow`'s nodes `keep`, with a WAV of `seconds` and the literal inputs `changes`
    ({node: {input: value}}), each kept batch node previewed (so the prompt has an output)."""
    full = comfy.workflow(workflow)
    p = {k: full[k] for k in keep}
    for k, v in p.items():
        if v["class_type"] == "VLOGGER_LoadSpeech":
            v["inputs"]["audio"] = _wav(comfy, seconds)
    for k, inputs in changes.items():
        p[k]["inputs"].update(inputs)
    p["3"] = FIT_NODES()["3"]          # the fit made once by `fitted`
    return p


def test_load_speech_refuses_long_speech_for_render_controls_at_once(comfy, fitted):
    """The shipped render_controls workflow rendering every frame at 4096 x 4096: LoadSpeech
    refuses before the motion is sampled, naming Render Controls."""
    seconds = _frames_over(4096 * 4096 * 14 * 4, fps=24.0)
    p = _speech_prompt(comfy, "render_controls", seconds, ["1", "2", "3", "4", "5", "11", "12", "13"],
                       **{"4": {"width": 4096, "height": 4096, "max_frames": 0}})
    _refused(comfy, p, "VLOGGER_LoadSpeech", "audio", "VLOGGER_RenderControls (node 4)", "its batches",
             "Fix: render fewer frames at once")


def test_load_speech_refuses_long_speech_for_the_wan_bridge_videos_at_once(comfy, fitted):
    """wan_animate's VLOGGER part (speech -> motion -> Wan timing -> pose and face videos) at
    2048 x 2048: refused at LoadSpeech, naming a bridge video node."""
    seconds = _frames_over(2048 * 2048 * 3 * 4, fps=16.0)
    big = {"width": 2048, "height": 2048}
    p = _speech_prompt(comfy, "wan_animate", seconds, ["1", "2", "3", "4", "5", "6", "7", "8", "9"],
                       **{"8": big, "9": big})
    p["50"] = {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}
    p["51"] = {"class_type": "PreviewImage", "inputs": {"images": ["9", 0]}}
    msg = _refused(comfy, p, "VLOGGER_LoadSpeech", "audio", "Fix: make the video window by window")
    assert "VLOGGER_PoseVideo (node 8)" in msg or "VLOGGER_FaceVideo (node 9)" in msg, msg


def test_load_speech_refuses_long_speech_for_super_resolution_of_rendered_frames(comfy, fitted):
    """Rendered frames (512) fed to the x2 SR node: the frames alone fit, their upscaled copy
    does not. The size flows from Render Frames to SR's batch_shape, so LoadSpeech names SR."""
    fps = 24.0
    seconds = _frames_over(1024 * 1024 * 6 * 4, fps=fps)
    rendered = seconds * fps * 512 * 512 * 3 * 4
    assert rendered < 0.5 * BATCH_SHARE * available_gb() * 1e9      # Render Frames alone fits
    p = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "astronaut.png"}},
        **{k: v for k, v in FIT_NODES().items() if k != "1"},
        "4": {"class_type": "VLOGGER_LoadSpeech",
              "inputs": {"audio": _wav(comfy, seconds), "trim_silence": True, "silence_db": -40.0,
                         "normalize": True, "sample_rate": 16000}},
        "5": {"class_type": "VLOGGER_MotionModelLoader", "inputs": {"model": "vlogger_motion_default (shipped)"}},
        "6": {"class_type": "VLOGGER_MotionSampler",
              "inputs": {"audio": ["4", 0], "motion_model": ["5", 0], "fps": fps, "seed": 0, "steps": 25,
                         "guidance": 1.0, "expression_intensity": 1.0, "head_motion": 1.0, "gesture_amount": 1.0,
                         "window_frames": 256, "context_frames": 32, "sampler": "ddim", "add_blinks": True}},
        "7": {"class_type": "VLOGGER_RenderFrames",
              "inputs": {"body": ["2", 0], "fit": ["3", 0], "motion": ["6", 0], "resolution": "512",
                         "start_frame": 0, "max_frames": 0}},
        "8": {"class_type": "VLOGGER_VideoModelLoader",
              "inputs": {"model_folder": "tiny-random-sr64", "checkpoint": "(none: pixel-space model)",
                         "lora": "(none)", "lora_strength": 1.0}},
        "9": {"class_type": "VLOGGER_SuperResolution",
              "inputs": {"sr_model": ["8", 0], "images": ["7", 0], "steps": 4, "seed": 0, "scheduler": "ddim",
                         "tile": 0, "tile_overlap": 16, "window_overlap": 1}},
        "10": {"class_type": "PreviewImage", "inputs": {"images": ["9", 0]}},
    }
    _refused(comfy, p, "VLOGGER_LoadSpeech", "audio", "VLOGGER_SuperResolution (node 9)", "1024x1024",
             "Fix: upscale fewer frames at once")
