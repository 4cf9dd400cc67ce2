"""Fit the body to the reference photo: camera (diagonal FOV), shape, orientation, translation,
upper-body reference pose and expression, so the body's silhouette and face align with the photo.

Detectors:
- "mediapipe": face mesh (478), pose (33) and hand landmarks; the body is fitted by minimising
  the 2D reprojection error of its joints and face landmarks (torch Adam, with priors).
- "opencv":    a face box from OpenCV's shipped Haar cascade; the body is placed from the box
  (scale from the face height, head at the box, torso below, facing the camera).
- "manual":    no detection: a centred head-and-shoulders framing.
- "auto":      mediapipe if importable and it finds a person, else opencv, else manual (with a
  warning in info).
The artist's overrides (scale, offset_x, offset_y, rotation, fov) apply on top of every detector.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .camera import PerspectiveCamera


@dataclass
class FitOverrides:
    """The artist's corrections, applied after detection and fitting.

    scale:    >1 makes the body larger in the image (moves it towards the camera).
    offset_x / offset_y: shift in fractions of the image width / height (+x right, +y down).
    rotation: extra turn of the body about its vertical axis, degrees (+ = turns to its left).
    fov:      diagonal field of view in degrees; 0 = keep the detector's value.
    """
    scale: float = 1.0
    offset_x: float = 0.0
    offset_y: float = 0.0
    rotation: float = 0.0
    fov: float = 0.0


@dataclass
class ReferenceFit:
    image: torch.Tensor                 # [H,W,3] float 0..1, the photo at its original resolution
    camera: PerspectiveCamera           # at the photo's resolution
    betas: torch.Tensor                 # [S]
    global_orient: torch.Tensor         # [3] axis-angle
    transl: torch.Tensor                # [3]
    reference_pose: torch.Tensor        # [55,3,3] local rotation matrices, SMPL-X joint order
    expression: torch.Tensor            # [E]
    body_name: str
    detector: str                       # "mediapipe" / "opencv" / "manual"
    info: dict = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


DETECTORS = ["auto", "mediapipe", "opencv", "manual"]
