"""The full-perspective camera VLOGGER renders with, parameterised by its DIAGONAL field of view.

Conventions (OpenCV): camera x right, y down, z forward; pixel (0, 0) is the top-left corner of
the top-left pixel, so the centre of pixel (u, v) is (u + 0.5, v + 0.5).
World -> camera: X_cam = R @ X_world + t. The body models are Y-up and face +Z, so a camera in
front of the body looking at it has R = diag(1, -1, -1) (before any extra rotation).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

FRONT_FACING = torch.diag(torch.tensor([1.0, -1.0, -1.0]))


@dataclass
class PerspectiveCamera:
    width: int
    height: int
    fov_diag_deg: float = 40.0
    rotation: torch.Tensor = field(default_factory=lambda: FRONT_FACING.clone())  # [3, 3]
    translation: torch.Tensor = field(default_factory=lambda: torch.zeros(3))      # [3]
    principal: tuple[float, float] | None = None   # pixels; None = image centre

    @property
    def focal(self) -> float:
        """Focal length in pixels from the diagonal field of view."""
        half_diag = 0.5 * math.hypot(self.width, self.height)
        return half_diag / math.tan(math.radians(self.fov_diag_deg) / 2)

    @property
    def center(self) -> tuple[float, float]:
        return self.principal if self.principal is not None else (self.width / 2, self.height / 2)

    def intrinsics(self) -> torch.Tensor:
        cx, cy = self.center
        f = self.focal
        return torch.tensor([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])

    def to_camera(self, points: torch.Tensor) -> torch.Tensor:
        """[..., 3] world -> [..., 3] camera coordinates."""
        R = self.rotation.to(points)
        return points @ R.T + self.translation.to(points)

    def project(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[..., 3] world points -> ([..., 2] pixel coordinates, [...] depth along +z)."""
        pc = self.to_camera(points)
        z = pc[..., 2]
        cx, cy = self.center
        uv = torch.stack([self.focal * pc[..., 0] / z.clamp_min(1e-6) + cx,
                          self.focal * pc[..., 1] / z.clamp_min(1e-6) + cy], dim=-1)
        return uv, z

    def resized(self, width: int, height: int) -> "PerspectiveCamera":
        """The same view at another resolution of the same aspect (fov and pose unchanged)."""
        p = None
        if self.principal is not None:
            p = (self.principal[0] * width / self.width, self.principal[1] * height / self.height)
        return PerspectiveCamera(width, height, self.fov_diag_deg, self.rotation.clone(),
                                 self.translation.clone(), p)

    def to_dict(self) -> dict:
        return {"width": self.width, "height": self.height, "fov_diag_deg": self.fov_diag_deg,
                "rotation": self.rotation.tolist(), "translation": self.translation.tolist(),
                "principal": list(self.principal) if self.principal else None}

    @classmethod
    def from_dict(cls, d: dict) -> "PerspectiveCamera":
        p = d.get("principal")
        return cls(int(d["width"]), int(d["height"]), float(d["fov_diag_deg"]),
                   torch.tensor(d["rotation"], dtype=torch.float32),
                   torch.tensor(d["translation"], dtype=torch.float32), tuple(p) if p else None)
