"""Tait-Bryan Euler angles in any axis order, float64 (the exchange formats' rotations).

R = R_a(angle[0]) @ R_b(angle[1]) @ R_c(angle[2]) for order "abc" (e.g. "ZXY": BVH's channel
order Zrotation Xrotation Yrotation), right-handed rotations about the fixed x/y/z axes of the
joint's parent frame, composed as intrinsic rotations in the listed order.
"""
from __future__ import annotations

import torch

AXES = {"X": 0, "Y": 1, "Z": 2}


def axis_rotation(axis: int, angle: torch.Tensor) -> torch.Tensor:
    """[...] radians -> [..., 3, 3] rotation about x (0), y (1) or z (2)."""
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    if axis == 0:
        rows = [one, zero, zero, zero, c, -s, zero, s, c]
    elif axis == 1:
        rows = [c, zero, s, zero, one, zero, -s, zero, c]
    else:
        rows = [c, -s, zero, s, c, zero, zero, zero, one]
    return torch.stack(rows, -1).reshape(*angle.shape, 3, 3)


def euler_to_matrix(angles: torch.Tensor, order: str) -> torch.Tensor:
    """[..., 3] radians (in `order`'s axis order) -> [..., 3, 3]."""
    a = torch.as_tensor(angles, dtype=torch.float64)
    i, j, k = (AXES[c] for c in order)
    return axis_rotation(i, a[..., 0]) @ axis_rotation(j, a[..., 1]) @ axis_rotation(k, a[..., 2])


def matrix_to_euler(R: torch.Tensor, order: str) -> torch.Tensor:
    """[..., 3, 3] -> [..., 3] radians in `order` (the middle angle in [-pi/2, pi/2])."""
    R = torch.as_tensor(R, dtype=torch.float64)
    i, j, k = (AXES[c] for c in order)
    s = 1.0 if (i, j, k) in ((0, 1, 2), (1, 2, 0), (2, 0, 1)) else -1.0
    b = torch.asin((s * R[..., i, k]).clamp(-1.0, 1.0))
    a = torch.atan2(-s * R[..., j, k], R[..., k, k])
    c = torch.atan2(-s * R[..., i, j], R[..., i, i])
    return torch.stack([a, b, c], -1)
