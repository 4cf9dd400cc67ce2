"""BVH export of the body (and a parser, for round trips and for reading BVH back).

The hierarchy is the body model's 55 SMPL-X joints (names and parents from its kinematic tree),
each OFFSET the joint's rest position relative to its parent in the FITTED body's shape (betas),
in metres. Every frame holds the fitted body's pose with the motion's residuals composed on it
(what the renderer poses: body.frame_pose_args): the root (pelvis) has
Xposition Yposition Zposition Zrotation Xrotation Yrotation (its world position = the fit's
translation + the pelvis' rest position; its rotation = the fit's global orientation composed
with the pelvis pose), every other joint Zrotation Xrotation Yrotation (its local rotation),
degrees, R = Rz @ Rx @ Ry. End Sites close the leaf joints (head, eyes, jaw, feet, finger tips).

Axes and scale: SMPL-X's own: Y up, the person faces +Z, 1 unit = 1 metre. Blender's BVH import
with its defaults (File > Import > Motion Capture (.bvh): Scale 1.0, Forward -Z, Up Y) turns
that into Blender's Z up, the person facing the front view (-Y), at real size (about 1.7 m).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..params import SMPLX_JOINTS, Motion, axis_angle_to_matrix, matrix_to_rot6d
from .arkit_csv import ExchangeError
from .euler import euler_to_matrix, matrix_to_euler

ORDER = "ZXY"
DIGITS = 6
END_SITE = 0.03                 # metres a leaf's End Site lies beyond it


@dataclass
class BVH:
    """A parsed BVH: joints (in file order), parents (index, -1 for the root), offsets [J,3],
    fps, root positions [N,3] and local rotations [N,J,3,3] (float64)."""
    joints: list
    parents: list
    offsets: np.ndarray
    fps: float
    positions: np.ndarray
    rotations: torch.Tensor


def rest_joints(body, betas: torch.Tensor) -> np.ndarray:
    """[55,3] rest joint positions of the body in the shape `betas` (no pose, no expression)."""
    m = body.smplx
    with torch.no_grad():
        dirs = m.shapedirs[..., : betas.shape[-1]].to(torch.float32)
        v = m.v_template + torch.einsum("vcs,s->vc", dirs, betas.to(dirs))
        return (m.J_regressor @ v).double().cpu().numpy()


def _arm_note(fit) -> str | None:
    used = (fit.info or {}).get("pose_joints_used")
    if used is not None and not any(k in used for k in ("left_elbow", "right_elbow", "left_wrist", "right_wrist")):
        return ("the photo showed no arms: their rest pose is the fit's default (hanging at the sides) and the "
                "motion's arm rotations apply to that")
    return None


def bvh_text(body, fit, motion: Motion) -> tuple[str, list[str]]:
    """(BVH text of the fitted body posed by the motion, notes). ExchangeError arg 'motion'."""
    if motion.num_frames < 1:
        raise ExchangeError("the motion has no frames", "motion", "connect a motion with at least one frame")
    args = body.frame_pose_args(fit, motion, 0, motion.num_frames)
    betas, orient, transl, pose, _ = args
    pose = pose.double().cpu()
    root = axis_angle_to_matrix(orient.double().cpu()) @ pose[:, 0]
    local = torch.cat([root[:, None], pose[:, 1:]], 1)                  # [N,55,3,3]
    J = rest_joints(body, fit.betas)
    parents = [int(p) for p in body.smplx.parents.tolist()]
    children = {j: [c for c in range(len(parents)) if parents[c] == j] for j in range(len(parents))}
    lines = ["HIERARCHY"]
    fmt = lambda v: " ".join(f"{float(x):.{DIGITS}f}" for x in v)  # noqa: E731

    def write(j: int, depth: int) -> None:
        pad = "  " * depth
        off = np.zeros(3) if parents[j] < 0 else J[j] - J[parents[j]]
        lines.append(f"{pad}{'ROOT' if parents[j] < 0 else 'JOINT'} {SMPLX_JOINTS[j]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {fmt(off)}")
        lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation"
                     if parents[j] < 0 else f"{pad}  CHANNELS 3 Zrotation Xrotation Yrotation")
        if children[j]:
            for c in children[j]:
                write(c, depth + 1)
        else:
            d = off / max(np.linalg.norm(off), 1e-9) * END_SITE if np.linalg.norm(off) > 0 else [0, END_SITE, 0]
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET {fmt(d)}", f"{pad}  }}"])
        lines.append(f"{pad}}}")

    order = []

    def visit(j: int) -> None:
        order.append(j)
        for c in children[j]:
            visit(c)

    write(0, 0)
    visit(0)
    pos = transl.double().cpu().numpy() + J[0][None]
    ang = np.degrees(matrix_to_euler(local, ORDER).numpy())              # [N,55,3]
    lines += ["MOTION", f"Frames: {motion.num_frames}", f"Frame Time: {1.0 / motion.fps:.{DIGITS + 2}f}"]
    for t in range(motion.num_frames):
        lines.append(" ".join([fmt(pos[t]), *(fmt(ang[t, j]) for j in order)]))
    notes = [n for n in [_arm_note(fit)] if n]
    return "\n".join(lines) + "\n", notes


def write_bvh(path, body, fit, motion: Motion) -> list[str]:
    """bvh_text written whole or not at all (files.atomic_write); returns its notes."""
    from ...files import atomic_write

    text, notes = bvh_text(body, fit, motion)
    with atomic_write(path) as tmp:
        Path(tmp).write_text(text, encoding="ascii")
    return notes


def parse_bvh(text: str) -> BVH:
    """BVH text -> BVH (any joint names, any rotation channel order per joint)."""
    tokens = text.split()
    joints, parents, offsets, channels = [], [], [], []
    stack, i, end_site = [], 0, 0
    fix = "use a BVH file (HIERARCHY ... MOTION)"
    try:
        while tokens[i] != "MOTION":
            tok = tokens[i]
            if tok in ("ROOT", "JOINT"):
                joints.append(tokens[i + 1])
                parents.append(stack[-1] if stack else -1)
                i += 2
            elif tok == "End":
                end_site += 1
                i += 2
            elif tok == "{":
                stack.append(len(joints) - 1 if not end_site else -2)
                i += 1
            elif tok == "}":
                if stack.pop() == -2:
                    end_site -= 1
                i += 1
            elif tok == "OFFSET":
                if not end_site:
                    offsets.append([float(v) for v in tokens[i + 1:i + 4]])
                i += 4
            elif tok == "CHANNELS":
                n = int(tokens[i + 1])
                channels.append(tokens[i + 2:i + 2 + n])
                i += 2 + n
            else:
                i += 1
        frames = int(tokens[i + 2])
        frame_time = float(tokens[i + 5])
        values = np.array([float(v) for v in tokens[i + 6:]], np.float64)
    except (IndexError, ValueError) as e:
        raise ExchangeError(f"not a readable BVH ({e})", "path", fix) from None
    width = sum(len(c) for c in channels)
    if values.size != frames * width:
        raise ExchangeError(f"the BVH's MOTION has {values.size} values, {frames} frames x {width} channels "
                            "expected", "path", fix)
    values = values.reshape(frames, width)
    pos = np.zeros((frames, 3))
    rots = torch.eye(3, dtype=torch.float64).repeat(frames, len(joints), 1, 1)
    c = 0
    for j, ch in enumerate(channels):
        rot_order = "".join(x[0] for x in ch if x.endswith("rotation"))
        for k, name in enumerate(ch):
            if name.endswith("position"):
                pos[:, "XYZ".index(name[0])] = values[:, c + k]
        idx = [c + k for k, x in enumerate(ch) if x.endswith("rotation")]
        if len(idx) == 3:
            rots[:, j] = euler_to_matrix(torch.from_numpy(np.radians(values[:, idx])), rot_order)
        c += len(ch)
    return BVH(joints, parents, np.array(offsets), 1.0 / frame_time if frame_time > 0 else math.nan, pos, rots)


def bvh_motion(parsed: BVH, fit, expression_set: str = "arkit52") -> Motion:
    """A parsed BVH of the SMPL-X hierarchy back to a Motion relative to `fit` (the inverse of
    bvh_text: residual = reference pose^T @ local; the root without the fit's orientation).
    Expressions are not in BVH: they read as 0."""
    missing = [j for j in SMPLX_JOINTS if j not in parsed.joints]
    if missing:
        raise ExchangeError(f"the BVH is not of the SMPL-X skeleton (no joint {missing[0]})", "path",
                            "use a BVH written by VLOGGER Save BVH")
    n = len(parsed.positions)
    m = Motion.neutral(n, parsed.fps, expression_set)
    ref = fit.reference_pose.double().cpu()
    R0 = axis_angle_to_matrix(fit.global_orient.double().cpu())
    for k, j in enumerate(m.joints):
        local = parsed.rotations[:, parsed.joints.index(j)]
        if j == "pelvis":
            local = R0.T[None] @ local
        m.rot6d[:, k] = matrix_to_rot6d(ref[SMPLX_JOINTS.index(j)].T[None] @ local).float()
    return m
