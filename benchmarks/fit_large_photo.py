"""The reference fit on a 6000x6000 photo (`python benchmarks/run.py fit_large_photo`): what
VLOGGER_FitReference does with it (fit, overlay, editor data), in a fresh process.

input_mb: the photo as ComfyUI holds it (float32 [1,6000,6000,3]); peak_rss_mb: the process's
peak RSS during the fit (VmHWM, reset once the body was loaded and the photo made); extra_mb:
that peak minus the RSS before the fit (what the fit adds on top of its input; the fit keeps its
own copy of the photo, input_mb of it); seconds: fit + overlay + editor data; detector: the
detector "auto" used (the photo is the shipped one, upscaled). Linux only (/proc).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SIDE = 6000


def _status_mb(key: str) -> float:
    """/proc/self/status's VmRSS (now) or VmHWM (peak since the last reset), MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    """Start VmHWM afresh (Linux: writing 5 to clear_refs), so making the photo does not count."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _child() -> dict:
    import time

    import numpy as np
    import torch
    from PIL import Image

    from vlogger_core.body.model import load_body
    from vlogger_core.body.overlay import draw_fit_overlay, fit_editor_data
    from vlogger_core.body.reference import fit_reference
    from vlogger_core.paths import EXAMPLES

    body = load_body()
    big = Image.open(EXAMPLES / "astronaut.png").convert("RGB").resize((SIDE, SIDE), Image.BICUBIC)
    photo = torch.from_numpy(np.asarray(big)).float().div_(255)[None]
    del big
    base = _status_mb("VmRSS")
    _reset_peak()
    t0 = time.time()
    with torch.enable_grad():
        fit = fit_reference(photo, body, "auto")
    shown = fit.preview()                # as the node: overlay and editor at most 2048 px
    draw_fit_overlay(shown, body)
    fit_editor_data(shown, body)
    seconds = time.time() - t0
    peak = _status_mb("VmHWM")
    return {"side": SIDE, "detector": fit.detector, "input_mb": round(photo.numel() * 4 / 2**20),
            "peak_rss_mb": round(peak), "extra_mb": round(peak - base), "seconds": round(seconds, 2)}


def run() -> dict:
    out = subprocess.run([sys.executable, __file__, "--child"], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        print(json.dumps(_child()))
    else:
        print(json.dumps(run()))
