"""End to end, after the models are loaded: photo + 10 s of speech -> MP4 at 24 fps.

Prints seconds_10s_256 and seconds_10s_512 (goals on a 2-core CPU: <= 5 s and <= 10 s) and the
split between fitting the photo, sampling the motion, preparing the reference and rendering +
encoding.
"""
import tempfile
from pathlib import Path

from _pipeline import example_photo, example_speech, load_models, make_video

from vlogger_core.render import rasterizer


def run() -> dict:
    body, motion_model = load_models()
    rasterizer.warm_up()
    photo, wave = example_photo(), example_speech(10.0)
    out = {}
    with tempfile.TemporaryDirectory() as d:
        make_video(Path(d) / "warm.mp4", body, motion_model, photo, wave[:16000], "256")  # JIT warm-up
        for res in ("256", "512"):
            t = make_video(Path(d) / f"{res}.mp4", body, motion_model, photo, wave, res)
            out[f"seconds_10s_{res}"] = round(t["total"], 2)
            out[f"split_{res}"] = {k: round(v, 2) for k, v in t.items() if k != "total"}
    return out
