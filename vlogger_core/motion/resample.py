"""Changing a motion's frame rate (the model runs at its native fps; nodes ask for any fps)."""
from __future__ import annotations

import torch

from .params import ROWS, Motion, orthonormalize_


def resample_motion(motion: Motion, fps: float, num_frames: int | None = None) -> Motion:
    """Linear interpolation at the new frame centres; 6D rotations re-orthonormalised."""
    n = int(round(motion.duration * fps)) if num_frames is None else int(num_frames)
    if n == motion.num_frames and abs(fps - motion.fps) < 1e-6:
        return motion
    x = motion.as_vector()
    pos = ((torch.arange(n, dtype=torch.float64) + 0.5) / fps * motion.fps - 0.5)
    pos = pos.clamp(0, motion.num_frames - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=motion.num_frames - 1)
    w = (pos - lo.double()).to(x.dtype)[:, None]
    y = torch.empty(n, x.shape[1], dtype=x.dtype, device=x.device)
    for a in range(0, n, ROWS):                 # small temporaries at any length
        b = min(a + ROWS, n)
        y[a:b] = x[lo[a:b]] * (1 - w[a:b]) + x[hi[a:b]] * w[a:b]
    out = Motion.from_vector(y, fps, motion.expression_set, motion.joints)
    del x, y
    orthonormalize_(out.rot6d)
    return out
