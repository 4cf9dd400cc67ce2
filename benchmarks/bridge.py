"""The bridge's driving videos on this CPU (`python benchmarks/run.py bridge`).

The shipped photo and the shipped motion at 16 fps, 640 x 640 (the Wan templates' size), one
77-frame window (Wan's default length): ms per frame for the pose video (keypoints + drawing),
the face video (the default renderer's frames + crops) and the depth / normal / semantic videos,
after one warm-up chunk (numba compile / cache load excluded); the peak RSS growth of making a
2-minute speech's pose video window by window (VLOGGER Wan Window), which must stay flat.
"""
from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vlogger_core.body.model import load_body
from vlogger_core.body.reference import fit_reference
from vlogger_core.bridge import windows
from vlogger_core.bridge.pose_drawing import PoseStyle
from vlogger_core.bridge.videos import face_video, map_videos, pose_video, renderer_for
from vlogger_core.motion.params import Motion

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SIZE = 640
LENGTH = 77


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run() -> dict:
    body = load_body()
    photo = torch.from_numpy(np.asarray(Image.open(EXAMPLES / "astronaut.png").convert("RGB"), np.float32) / 255)
    fit = fit_reference(photo, body, "auto")
    motion = windows.whole_motion(Motion.load_npz(str(EXAMPLES / "talking_astronaut_motion.npz")))
    window = windows.window_motion(motion, windows.Window(0, 0, LENGTH, windows.WAN_FPS))
    r = renderer_for(body, fit, SIZE, SIZE)
    pose_video(r, window, PoseStyle(), 0, 16)          # warm-up
    face_video(r, window, 0, 2)
    map_videos(r, window, 0, 2)
    out = {"size": SIZE, "frames": LENGTH}
    for key, fn in (("pose_ms_per_frame", lambda: pose_video(r, window, PoseStyle(face=True))),
                    ("face_ms_per_frame", lambda: face_video(r, window)),
                    ("depth_ms_per_frame", lambda: map_videos(r, window))):
        t = time.perf_counter()
        fn()
        out[key] = round((time.perf_counter() - t) * 1000 / LENGTH, 1)
    # 2 minutes of speech, window by window: memory must not grow with the windows
    long = Motion.neutral(int(120 * windows.WAN_FPS), windows.WAN_FPS)
    plan = windows.plan(long.num_frames, LENGTH, "s2v")
    peaks = []
    for w in plan:
        pose_video(r, windows.window_motion(long, w), PoseStyle())
        peaks.append(_rss_mb())
    out.update(windows_2min=len(plan), peak_rss_mb_window_1=round(peaks[0], 1),
               peak_rss_mb_window_last=round(peaks[-1], 1), growth_mb=round(peaks[-1] - peaks[0], 1))
    return out
