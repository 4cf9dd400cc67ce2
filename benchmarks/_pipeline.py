"""The default talking-video pipeline as the benchmarks drive it (no ComfyUI in the loop)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vlogger_core.body.model import load_body
from vlogger_core.body.reference import fit_reference
from vlogger_core.media import read_audio
from vlogger_core.motion.model import load_motion_model
from vlogger_core.motion.sampling import SampleSettings, sample_motion
from vlogger_core.paths import EXAMPLES, SHIPPED_MODELS
from vlogger_core.render.talking_video import (
    TalkingVideoRenderer,
    output_size,
    write_talking_video,
)

DEFAULT_MOTION = SHIPPED_MODELS / "motion" / "vlogger_motion_default.safetensors"


def example_photo() -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(EXAMPLES / "astronaut.png").convert("RGB"),
                                       np.float32) / 255)


def example_speech(seconds: float) -> torch.Tensor:
    """The shipped speech (16 kHz mono), repeated with short pauses to `seconds`."""
    wave, _ = read_audio(EXAMPLES / "speech.wav", 16000, mono=True)
    unit = torch.cat([wave, torch.zeros(int(0.4 * 16000))])
    reps = int(np.ceil(seconds * 16000 / unit.shape[0]))
    return unit.repeat(reps)[: int(seconds * 16000)].contiguous()


def load_models():
    body = load_body()
    motion_model = load_motion_model(str(DEFAULT_MOTION))
    return body, motion_model


def make_video(out: Path, body, motion_model, photo, wave16k, resolution: str, fps: float = 24.0,
               steps: int = 25) -> dict:
    """photo + speech -> MP4; returns the seconds spent in each step."""
    t = {}
    t0 = time.perf_counter()
    fit = fit_reference(photo, body)
    t["fit"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    motion = sample_motion(motion_model, wave16k, fps, SampleSettings(seed=0, steps=steps))
    t["motion"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    w, h = output_size(fit, resolution)
    renderer = TalkingVideoRenderer(body, fit, w, h)
    t["prepare"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    write_talking_video(str(out), renderer, motion, wave16k, 16000)
    t["render_encode"] = time.perf_counter() - t0
    t["total"] = sum(t.values())
    return t
