"""Test footage written to MP4: constant-rate (with or without a speech track) or with
variable frame steps (each frame at its own timestamp)."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vlogger_core.media import StreamingMP4Writer


def write_mp4(path: Path, frames: np.ndarray, fps: float = 24.0, audio=None) -> Path:
    """uint8 frames [T,H,W,3]; audio: 16 kHz mono or None (a silent video)."""
    with StreamingMP4Writer(path, fps, frames.shape[2], frames.shape[1], audio,
                            16000 if audio is not None else None) as w:
        w.write(frames)
    return path


def write_vfr_mp4(path: Path, frames: np.ndarray, times) -> Path:
    """Frame k shown from times[k] seconds (lossless H.264, 1/3000 s time base)."""
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height = frames.shape[2], frames.shape[1]
        s.pix_fmt, s.time_base, s.options = "yuv420p", Fraction(1, 3000), {"crf": "0"}
        for f, t in zip(frames, times):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            vf.pts, vf.time_base = int(round(t * 3000)), Fraction(1, 3000)
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def alternating_times(n: int) -> np.ndarray:
    """Timestamps whose steps alternate 1/15 and 1/30 s (20 fps on average)."""
    return np.cumsum([0] + [1 / 30 if k % 2 else 1 / 15 for k in range(n - 1)])
