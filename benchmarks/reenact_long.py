"""Reenactment of a long driving video: flat memory (`python benchmarks/run.py reenact_long`).

A long driving video is made cheaply by looping examples/talking_astronaut.mp4's 96 frames
(256 x 256, 24 fps, silent: reenact_file reads only the frames) into a temporary MP4 with
media.StreamingMP4Writer. Each length is reenacted (motion/reenact.py reenact_file, default
settings) in a fresh process (peak RSS is per process; memory.py's run_child), after a warm-up
on the short example (models loaded, kernels compiled):
- peak_mb_1min / peak_mb_<N>min: the process's peak RSS for the short and the long video;
- growth_mb: the long peak minus the short peak (goal: <= 100 MB, flat);
- rss_mb_first_window / rss_mb_last_window: the long run's RSS after its first and its last
  window (the streamed part alone, before the motion is assembled);
- motion_mb: the size of the resulting motion (float32, expressions + 6D rotations per frame);
- ms_per_frame: the long run's wall time per driving frame, on this machine's CPU under the load
  it had (load_avg_1min).
The long video's minutes: REENACT_LONG_MINUTES (default 30; 30 min = 43,200 frames: about half an
hour on a quiet 2-core machine at 38.8 ms per frame, an hour under load at 77-86 ms), the short
one's: REENACT_LONG_SHORT_MINUTES (default 1).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from memory import run_child

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MINUTES = float(os.environ.get("REENACT_LONG_MINUTES", "30"))
SHORT_MINUTES = float(os.environ.get("REENACT_LONG_SHORT_MINUTES", "1"))

CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, {root!r})
import torch
from vlogger_core.body.model import load_body
from vlogger_core.motion.reenact import ReenactSettings, reenact_file
from vlogger_core.paths import EXAMPLES

def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024

torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
body = load_body()
reenact_file(EXAMPLES / "talking_astronaut.mp4", body, ReenactSettings(window=16, overlap=4, iters=5))
trace = []
t0 = time.perf_counter()
res = reenact_file({path!r}, body, progress=lambda done, total: trace.append(rss_mb()))
wall = time.perf_counter() - t0
m = res.motion
print(json.dumps({{"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_first": trace[0], "rss_last": trace[-1], "frames": m.num_frames, "seconds": wall,
                  "motion_mb": (m.expression.numel() + m.rot6d.numel()) * 4 / 2 ** 20,
                  "lost_frames": res.report["lost_frames"], "windows": res.report["windows"]}}))
"""


def make_video(path: Path, minutes: float) -> int:
    """examples/talking_astronaut.mp4's frames looped for `minutes` into `path`; returns the frames."""
    from vlogger_core.media import StreamingMP4Writer, read_frames
    from vlogger_core.paths import EXAMPLES

    frames, fps, _ = read_frames(EXAMPLES / "talking_astronaut.mp4")
    total = int(round(minutes * 60 * fps))
    with StreamingMP4Writer(path, fps, frames.shape[2], frames.shape[1]) as w:
        for a in range(0, total, len(frames)):
            w.write(frames[: min(len(frames), total - a)])
    return total


def measure(path: Path) -> dict:
    return run_child(CHILD.format(root=str(REPO), path=str(path)))


def run() -> dict:
    with tempfile.TemporaryDirectory() as d:
        short, long = Path(d) / "short.mp4", Path(d) / "long.mp4"
        make_video(short, SHORT_MINUTES)
        make_video(long, MINUTES)
        one = measure(short)
        many = measure(long)
    name = lambda m: f"{m:g}min"  # noqa: E731
    return {f"peak_mb_{name(SHORT_MINUTES)}": round(one["peak_mb"], 1),
            f"peak_mb_{name(MINUTES)}": round(many["peak_mb"], 1),
            "growth_mb": round(many["peak_mb"] - one["peak_mb"], 1),
            "rss_mb_first_window": round(many["rss_first"], 1), "rss_mb_last_window": round(many["rss_last"], 1),
            "motion_mb": round(many["motion_mb"], 1), "frames": many["frames"], "windows": many["windows"],
            "lost_frames": many["lost_frames"], "ms_per_frame": round(1000 * many["seconds"] / many["frames"], 1),
            "load_avg_1min": round(os.getloadavg()[0], 2)}
