"""Stage-1 speed: seconds of motion generated per second of compute (60 s of speech, 24 fps,
25 steps, the shipped model, default settings: no CFG), plus the CFG figure and peak memory."""
import resource
import time

import numpy as np
import torch

from vlogger_core.audio.tts import synthesize
from vlogger_core.media import resample
from vlogger_core.motion.model import load_motion_model
from vlogger_core.motion.sampling import SampleSettings, sample_motion
from vlogger_core.paths import SHIPPED_MODELS

SECONDS, FPS, STEPS = 60.0, 24.0, 25


def _speech(seconds: float) -> torch.Tensor:
    """Real TTS speech (held-out voice) looped to the requested length."""
    text = ("Good evening, and welcome back to the show. Tonight we talk about the weather, "
            "the price of fresh bread, and why my neighbour keeps a tiny puppy on the roof.")
    w, sr, _ = synthesize(text, voice="en-us+f4")
    w16 = resample(torch.from_numpy(w), sr, 16000)
    reps = int(np.ceil(seconds * 16000 / len(w16)))
    return w16.repeat(reps)[: int(seconds * 16000)].contiguous()


def run() -> dict:
    model = load_motion_model(str(SHIPPED_MODELS / "motion" / "vlogger_motion_default.safetensors"))
    wave = _speech(SECONDS)
    sample_motion(model, wave[:16000 * 2], FPS, SampleSettings(steps=2))   # warm-up
    out = {}
    for key, guidance in (("realtime_factor", 1.0), ("realtime_factor_cfg2", 2.0)):
        t = time.perf_counter()
        mo = sample_motion(model, wave, FPS, SampleSettings(seed=0, steps=STEPS, guidance=guidance))
        dt = time.perf_counter() - t
        out[key] = round(SECONDS / dt, 2)
        out[f"seconds_{key}"] = round(dt, 3)
    out.update({"frames": mo.num_frames, "fps": FPS, "steps": STEPS, "audio_seconds": SECONDS,
                "model_params": model.num_parameters(), "threads": SampleSettings().cpu_threads,
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)})
    return out
