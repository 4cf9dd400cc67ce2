"""Combining motions: the face (lips, expressions, jaw, eyes) from one motion, the head from a
second, the gestures (torso, arms, hands) from a third, with crossfades at the seams.

The first motion (`face`) sets the output's frame rate and length. Each other source is resampled
to that rate (motion/resample.py) and placed at its `start` frame; where it has no frames (before
its start, after its end) its part follows the face motion, and at both ends of its range the part
crossfades over `crossfade` frames (expressions linearly, rotations along the shortest arc), so
no seam jumps.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import VloggerError
from .params import (
    FACE_JOINTS,
    Motion,
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_rot6d,
)
from .reenact import HEAD_JOINTS
from .resample import resample_motion

PARTS = ("face", "head", "gestures")


def part_of(joint: str) -> str:
    """The part a motion joint belongs to: 'face' (jaw, eyes), 'head' (neck, head) or 'gestures'."""
    return "face" if joint in FACE_JOINTS else "head" if joint in HEAD_JOINTS else "gestures"


@dataclass
class Source:
    motion: Motion
    start: int = 0          # output frame its first frame lands on (may be negative: its head cut)


def ramp(n: int, start: int, length: int, crossfade: int) -> torch.Tensor:
    """[n] weight of a source covering output frames start..start+length-1: 1 inside, 0 outside,
    rising / falling linearly over `crossfade` frames inside each end that lies within 0..n."""
    t = torch.arange(n, dtype=torch.float32)
    w = ((t >= start) & (t < start + length)).float()
    if crossfade > 0:
        if start > 0:
            w = torch.minimum(w, ((t - start + 1) / (crossfade + 1)).clamp(0, 1))
        if start + length < n:
            w = torch.minimum(w, ((start + length - t) / (crossfade + 1)).clamp(0, 1))
    return w


def blend_rotations(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """[N,...,3,3] rotations from a (w 0) to b (w 1) along the shortest arc, w [N]."""
    rel = matrix_to_axis_angle(a.transpose(-1, -2) @ b)
    shape = (-1,) + (1,) * (rel.dim() - 1)
    return a @ axis_angle_to_matrix(rel * w.reshape(shape))


def combine_motions(face: Motion, head: Source | None = None, gestures: Source | None = None,
                    crossfade: int = 6) -> Motion:
    """The combined motion (module docstring). VloggerError arg 'head' / 'gestures' / 'crossfade'."""
    if crossfade < 0:
        raise VloggerError(f"crossfade {crossfade} is negative", "crossfade", "use 0 (cut) or a few frames (6 = 0.25 s)")
    n = face.num_frames
    out_R = face.rotation_matrices().clone()
    for name, src in (("head", head), ("gestures", gestures)):
        if src is None:
            continue
        m = src.motion
        missing = [j for j in face.joints if part_of(j) == name and j not in m.joints]
        if missing:
            raise VloggerError(f"the {name} motion has no joint {missing[0]}", name, "connect a VLOGGER motion")
        m = resample_motion(m, face.fps)
        w = ramp(n, src.start, m.num_frames, crossfade)
        if not bool((w > 0).any()):
            raise VloggerError(f"the {name} motion (start {src.start}, {m.num_frames} frames) lies outside the "
                               f"{n} frames of the face motion", name, f"use a start between {-m.num_frames + 1} "
                               f"and {n - 1}")
        idx = (torch.arange(n) - src.start).clamp(0, m.num_frames - 1)
        R = m.rotation_matrices()[idx]
        for k, j in enumerate(face.joints):
            if part_of(j) == name:
                out_R[:, k] = blend_rotations(out_R[:, k], R[:, m.joints.index(j)], w)
    return Motion(face.fps, face.expression_set, face.expression.clone(), matrix_to_rot6d(out_R).contiguous(),
                  list(face.joints))
