"""The shipped SD 1.5 + ControlNet OpenPose workflow run END TO END through the real server, on
TINY RANDOM weights that ComfyUI's own model detection takes as SD 1.5 (scripts/
make_tiny_comfy_models.py). This checks the wiring only: with random weights the frames are noise,
and nothing here says anything about image quality.

Every node and link of workflows/api/sd15_openpose.json is kept; only what makes it slow on a CPU
is shrunk (a short speech, 6 frames, 64 x 64, 2 sampler steps). The files exist only while this
module runs: elsewhere in the session the shipped workflow must still be refused for its absent
weights (tests/test_workflows_api.py).

The Wan workflows cannot be run this way here: their text encoder (umt5-xxl) has a fixed ~5.7 B
parameter config in ComfyUI (README, GPU-bridge section)."""
from __future__ import annotations

import json
import wave

import numpy as np
import pytest
import requests
from make_tiny_comfy_models import make_sd15_openpose_models
from test_bridge_workflows import run
from test_workflows_api import read_audio

from vlogger_core.paths import EXAMPLES

FRAMES = 6
SIZE = 64          # pixels (an 8 x 8 latent): the tiny UNet's 2 levels still fit
FPS = 12.0


@pytest.fixture(scope="module")
def sd15_files(comfy):
    files = make_sd15_openpose_models(comfy.models_dir)
    yield files
    for f in files.values():          # the shipped workflow is refused again for absent weights
        f.unlink(missing_ok=True)
    requests.post(comfy.url + "/free", json={"unload_models": True, "free_memory": True}, timeout=60)


def short_speech(comfy, name: str, seconds: float) -> str:
    """The first `seconds` of the shipped speech under a name of its own (no cached node output)."""
    with wave.open(str(EXAMPLES / "speech.wav")) as src, wave.open(str(comfy.input_dir / name), "wb") as dst:
        dst.setparams(src.getparams())
        dst.writeframes(src.readframes(int(seconds * src.getframerate())))
    return name


def best_correlation(a: np.ndarray, b: np.ndarray, max_lag: int) -> float:
    """The highest normalised correlation of a and b over shifts up to max_lag samples (the AAC
    encoder's priming may shift the muxed audio a little)."""
    n = min(len(a), len(b)) - max_lag
    best = -1.0
    for lag in range(-max_lag, max_lag + 1, 4):
        x, y = a[max(lag, 0):max(lag, 0) + n], b[max(-lag, 0):max(-lag, 0) + n]
        best = max(best, float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y) + 1e-12)))
    return best


def test_sd15_openpose_runs_end_to_end_on_tiny_random_weights(comfy, sd15_files):
    shipped = comfy.workflow("sd15_openpose")
    p = json.loads(json.dumps(shipped))
    p["4"]["inputs"]["audio"] = short_speech(comfy, "tiny_sd15_speech.wav", 1.5)
    p["7"]["inputs"].update(width=SIZE, height=SIZE, max_frames=FRAMES)
    p["13"]["inputs"].update(width=SIZE, height=SIZE)
    p["14"]["inputs"]["steps"] = 2
    p["16"]["inputs"]["filename_prefix"] = "bridge_test/sd15_tiny"
    for k, v in shipped.items():      # the shipped graph, whole: same nodes, same links
        assert p[k]["class_type"] == v["class_type"]
        assert {n: x for n, x in p[k]["inputs"].items() if isinstance(x, list)} == \
               {n: x for n, x in v["inputs"].items() if isinstance(x, list)}
    p["90"] = {"class_type": "PreviewAudio", "inputs": {"audio": ["4", 0]}}     # probe: the speech
    log_start = len(comfy.server.log(10 ** 9))
    r = run(comfy, p)
    log = comfy.server.log(10 ** 9)[log_start:]

    # ComfyUI took the files as SD 1.5 (its SD1 CLIP target, the whole checkpoint, no key missing),
    # not as a bare diffusion model or an unknown ControlNet
    assert "Requested to load SD1ClipModel" in log and "model_type EPS" in log, log[-3000:]
    for problem in ("not a checkpoint file", "unet missing", "clip missing", "missing vae keys",
                    "missing controlnet keys", "could not detect", "leftover keys"):
        assert problem not in log.lower(), log[-3000:]

    video, speech = r.video("16"), r.audio("90")
    assert video.frames.shape == (FRAMES, SIZE, SIZE, 3) and video.fps == FPS, (video.frames.shape, video.fps)
    assert video.audio_seconds is not None and abs(video.audio_seconds - FRAMES / FPS) <= 0.1, video.audio_seconds
    assert np.isfinite(video.frames).all() and video.frames.std() > 0      # noise, but an image
    assert speech.seconds > 1.0 and speech.rms_dbfs > -40, (speech.seconds, speech.rms_dbfs)
    (f,) = r.files("16", "images")
    muxed = read_audio(comfy.fetch(f))
    assert muxed.rate == speech.rate, (muxed.rate, speech.rate)
    a = muxed.samples.mean(0)
    corr = best_correlation(a, speech.samples.mean(0)[:len(a)], max_lag=2048)
    assert corr > 0.8, f"the MP4's audio is not the speech's start (correlation {corr:.2f})"

    # the pose video reaches the sampler through the ControlNet: at strength 0 (ComfyUI then
    # skips the ControlNet) the same seed gives other frames (the loaders' outputs are cached)
    p["12"]["inputs"]["strength"] = 0.0
    p["16"]["inputs"]["filename_prefix"] = "bridge_test/sd15_tiny_no_control"
    uncontrolled = run(comfy, p).video("16")
    assert uncontrolled.frames.shape == video.frames.shape
    change = np.abs(uncontrolled.frames.astype(int) - video.frames).mean()
    assert change > 2, f"the ControlNet does not change the frames ({change:.2f} levels)"
