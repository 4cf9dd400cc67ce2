"""Motion nodes through the real ComfyUI server, with the shipped default motion model."""
from __future__ import annotations

import io as _io

import numpy as np
import pytest
import soundfile as sf
from comfyui_server import PromptRejected
from PIL import Image

LOADER = {"class_type": "VLOGGER_MotionModelLoader", "inputs": {"model": "vlogger_motion_default (shipped)"}}


def _sampler(audio_ref, fps=25.0, steps=6, seed=0, **kw):
    inputs = {"audio": audio_ref, "motion_model": ["m", 0], "fps": fps, "seed": seed, "steps": steps,
              "guidance": 1.0, "expression_intensity": 1.0, "head_motion": 1.0, "gesture_amount": 1.0,
              "window_frames": 256, "context_frames": 32, "sampler": "ddim", "add_blinks": True}
    inputs.update(kw)
    return {"class_type": "VLOGGER_MotionSampler", "inputs": inputs}


def _wav(comfy, name, wave, sr=16000, subtype="FLOAT"):
    sf.write(str(comfy.input_dir / name), wave, sr, subtype=subtype)
    return name


def test_nodes_registered_with_tooltips(comfy):
    info = comfy.object_info()
    for nid in ("VLOGGER_MotionModelLoader", "VLOGGER_MotionSampler", "VLOGGER_MotionPreview",
                "VLOGGER_SaveMotion", "VLOGGER_LoadMotion"):
        node = info[nid]
        assert node["category"] == "VLOGGER/motion" and node["description"]
        for group in ("required", "optional"):
            for name, spec in node["input"].get(group, {}).items():
                assert len(spec) > 1 and spec[1].get("tooltip"), f"{nid}.{name} has no tooltip"
    g = info["VLOGGER_MotionSampler"]["input"]["required"]["gesture_amount"][1]
    assert (g["min"], g["default"], g["max"]) == (0.0, 1.0, 2.0)
    assert all(w in g["tooltip"] for w in ("0 = still", "1 = natural", "2 = animated"))
    opts = info["VLOGGER_MotionModelLoader"]["input"]["required"]["model"]
    assert "vlogger_motion_default (shipped)" in str(opts)


def test_shipped_workflow_runs(comfy):
    res = comfy.run(comfy.workflow("motion_from_speech"))
    assert res.error is None, res.error
    imgs = res.outputs["4"]["images"]
    img = Image.open(_io.BytesIO(comfy.fetch(imgs[0])))
    assert img.size == (1200, 800)
    arr = np.asarray(img.convert("L"), float)
    assert arr.std() > 10          # a drawn plot, not a blank
    saved = list((comfy.output_dir / "vlogger").glob("motion_*.npz"))
    assert saved
    with np.load(saved[-1]) as z:
        assert z["expression"].shape[1] == 52 and z["rot6d"].shape[1:] == (47, 6)
        assert float(z["fps"]) == 25.0


def test_tts_to_motion_save_and_load_roundtrip(comfy):
    prompt = {
        "t": {"class_type": "VLOGGER_TextToSpeech",
              "inputs": {"text": "Hello there, how are you today?", "voice": "en-us", "rate": 160,
                         "pitch": 50, "pitch_range": 50}},
        "m": LOADER,
        "s": _sampler(["t", 0], fps=30.0),
        "w": {"class_type": "VLOGGER_SaveMotion", "inputs": {"motion": ["s", 0], "filename_prefix": "motiontest/rt"}},
    }
    res = comfy.run(prompt)
    assert res.error is None, res.error
    files = sorted((comfy.output_dir / "motiontest").glob("rt_*.npz"))
    (comfy.input_dir / "rt_motion.npz").write_bytes(files[-1].read_bytes())
    with np.load(files[-1]) as z:
        n = z["expression"].shape[0]
        assert float(z["fps"]) == 30.0
    prompt2 = {"l": {"class_type": "VLOGGER_LoadMotion", "inputs": {"motion_file": "rt_motion.npz"}},
               "p": {"class_type": "VLOGGER_MotionPreview", "inputs": {"motion": ["l", 0], "width": 640, "height": 400}}}
    res = comfy.run(prompt2)
    assert res.error is None, res.error
    assert res.outputs["p"]["images"]
    assert n > 30


def test_silent_audio_gives_motion(comfy):
    name = _wav(comfy, "silence3s.wav", np.zeros(48000, np.float32))
    prompt = {"a": {"class_type": "LoadAudio", "inputs": {"audio": name}}, "m": LOADER,
              "s": _sampler(["a", 0]),
              "w": {"class_type": "VLOGGER_SaveMotion", "inputs": {"motion": ["s", 0], "filename_prefix": "motiontest/silent"}}}
    res = comfy.run(prompt)
    assert res.error is None, res.error
    f = sorted((comfy.output_dir / "motiontest").glob("silent_*.npz"))[-1]
    with np.load(f) as z:
        jaw = z["expression"][:, 17]        # jawOpen
        assert z["expression"].shape[0] == 75 and jaw.max() < 0.15


@pytest.mark.parametrize("case", ["short", "nan"])
def test_bad_audio_is_a_named_error(comfy, case):
    wave = np.zeros(1600, np.float32) if case == "short" else np.full(16000, np.nan, np.float32)
    name = _wav(comfy, f"bad_{case}.wav", wave)
    prompt = {"a": {"class_type": "LoadAudio", "inputs": {"audio": name}}, "m": LOADER,
              "s": _sampler(["a", 0]),
              "w": {"class_type": "VLOGGER_SaveMotion", "inputs": {"motion": ["s", 0], "filename_prefix": "motiontest/bad"}}}
    res = comfy.run(prompt)
    assert res.error is not None
    msg = str(res.error.get("exception_message", res.error))
    assert "[VLOGGER_MotionSampler] input 'audio'" in msg
    assert ("0.2 s" in msg) if case == "short" else ("NaN" in msg)


def test_fps_out_of_range_rejected(comfy):
    prompt = {"t": {"class_type": "VLOGGER_TextToSpeech",
                    "inputs": {"text": "Hi.", "voice": "en-us", "rate": 160, "pitch": 50, "pitch_range": 50}},
              "m": LOADER, "s": _sampler(["t", 0], fps=500.0),
              "w": {"class_type": "VLOGGER_SaveMotion", "inputs": {"motion": ["s", 0], "filename_prefix": "x"}}}
    with pytest.raises(PromptRejected) as e:
        comfy.run(prompt)
    assert "fps" in str(e.value)


def test_load_motion_missing_file_is_a_named_error(comfy):
    prompt = {"l": {"class_type": "VLOGGER_LoadMotion", "inputs": {"motion_file": "nope.npz"}},
              "p": {"class_type": "VLOGGER_MotionPreview", "inputs": {"motion": ["l", 0], "width": 640, "height": 400}}}
    try:
        res = comfy.run(prompt)
        msg = str(res.error)
    except PromptRejected as e:   # the combo validation may reject it first
        msg = str(e)
    assert "nope.npz" in msg


def test_context_not_below_the_window_names_context_frames(comfy):
    name = _wav(comfy, "ctx_speech.wav", (0.1 * np.sin(np.arange(16000) / 8)).astype(np.float32))
    prompt = {"a": {"class_type": "LoadAudio", "inputs": {"audio": name}}, "m": LOADER,
              "s": _sampler(["a", 0], window_frames=64, context_frames=64),
              "w": {"class_type": "VLOGGER_SaveMotion", "inputs": {"motion": ["s", 0], "filename_prefix": "x"}}}
    res = comfy.run(prompt)
    assert "[VLOGGER_MotionSampler] input 'context_frames'" in str(res.error), res.error


def test_unreadable_motion_and_model_files_are_typed_errors(tmp_path):
    """Core side (no server): what the loader nodes map to their file inputs."""
    import torch

    from vlogger_core.errors import VloggerError
    from vlogger_core.motion.model import load_motion_model
    from vlogger_core.motion.params import Motion
    from vlogger_core.motion.sampling import SampleSettings, sample_motion
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    for load in (Motion.load_npz, load_motion_model):
        with pytest.raises(VloggerError) as e:
            load(str(junk))
        assert e.value.arg == "path" and e.value.fix
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(VloggerError, match="not a VLOGGER motion file"):
        Motion.load_npz(str(tmp_path / "other.npz"))
    for settings, arg in ((SampleSettings(steps=0), "steps"), (SampleSettings(window=32, context=32), "context"),
                          (SampleSettings(sampler="euler"), "sampler")):
        with pytest.raises(VloggerError) as e:
            sample_motion(torch.nn.Linear(1, 1), torch.zeros(16000), 25.0, settings)
        assert e.value.arg == arg
    with pytest.raises(VloggerError) as e:
        sample_motion(torch.nn.Linear(1, 1), torch.zeros(16000), float("nan"))
    assert e.value.arg == "fps"
