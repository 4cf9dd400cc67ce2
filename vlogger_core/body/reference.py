"""Fit the body to the reference photo: camera (diagonal FOV), shape, orientation, translation,
upper-body reference pose and expression, so the body's silhouette and face align with the photo.

Detectors (body/detect.py), fitted by the engine (body/fit.py):
- "landmarks": face mesh (478), pose (33) and hand (21 per hand) landmarks from mediapipe's
  models, shipped and run on LiteRT (body/landmark_models.py); the body is fitted by minimising
  the 2D reprojection error of its joints (fingers too, for a visible hand) and face landmarks
  (with priors); the diagonal FOV is estimated by a scan.
- "mediapipe": the same landmarks from the mediapipe package (optional; it pins numpy<2).
- "opencv":    a face box from OpenCV's shipped Haar cascade; the body is placed from the box
  (scale from the face height, head at the box, torso below, facing the camera).
- "manual":    no detection: a centred head-and-shoulders framing.
- "auto":      the first landmark backend that can run here ("landmarks", else "mediapipe") if it
  finds a person, else opencv, else manual (with a warning in info).
The artist's overrides (scale, offset_x, offset_y, rotation, fov) apply on top of every detector.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..motion.params import axis_angle_to_matrix, matrix_to_axis_angle
from .camera import PerspectiveCamera
from .detect import (
    BACKEND_FIX,
    BACKENDS,
    backend_problem,
    box_targets,
    default_backend,
    detect,
    detection_copy,
    face_box,
)
from .fit import FINGERS, PHOTO_ITERS, FitInputError, Targets, fit_photo


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
    detector: str                       # "landmarks" / "mediapipe" / "opencv" / "manual"
    info: dict = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


DETECTORS = ["auto", *BACKENDS, "opencv", "manual"]
IMAGE_FIX = "connect an RGB photo of a person, at least 64x64 pixels"
DETECTOR_FIX = ("use a photo with a clearly visible face, or detector 'opencv' / 'manual' and the scale / "
                "offset overrides")


def prepare_image(image) -> torch.Tensor:
    """Any of [H,W], [H,W,1|3|4], [1,H,W,C] (torch or numpy, 0..1 floats or uint8) -> [H,W,3]
    float 0..1. Grayscale is repeated, alpha dropped (composited over white)."""
    t = image if torch.is_tensor(image) else torch.from_numpy(np.array(image))
    if t.dtype == torch.uint8:
        t = t.float() / 255.0
    t = t.float()
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise FitInputError(f"expected one photo, got a batch of {t.shape[0]}", "image",
                                "connect one photo (use ImageFromBatch to pick one)")
        t = t[0]
    if t.ndim == 2:
        t = t[..., None]
    if t.ndim != 3 or t.shape[-1] not in (1, 2, 3, 4):
        raise FitInputError(f"expected an image [H,W,C] with 1, 3 or 4 channels, got shape "
                            f"{tuple(t.shape)}", "image", IMAGE_FIX)
    c = t.shape[-1]
    if c in (2, 4):   # grey+alpha / RGBA: composite over white
        a = t[..., -1:].clamp(0, 1)
        t = t[..., :-1] * a + (1 - a)
    if t.shape[-1] == 1:
        t = t.repeat(1, 1, 3)
    h, w = t.shape[:2]
    if h < 16 or w < 16:
        raise FitInputError(f"the photo is only {w}x{h} pixels; at least 16x16 is needed "
                            f"(a face needs about 64x64 to be detected)", "image", IMAGE_FIX)
    if not torch.isfinite(t).all():
        raise FitInputError("the photo contains NaN or infinite values", "image", IMAGE_FIX)
    return t.clamp(0, 1).contiguous()


def _default_box(width: int, height: int) -> tuple[float, float, float, float]:
    """Where a head-and-shoulders portrait puts the face: centred, upper third."""
    side = 0.26 * min(width, height)
    return (width - side) / 2, 0.33 * height - side / 2, side, side


def apply_overrides(fit: ReferenceFit, body, ov: FitOverrides) -> None:
    """The artist's corrections: rotation about the body's vertical axis, scale about the
    camera (moving the body along the ray through its face, so the face keeps its place and
    grows by `scale`), offsets in image fractions (exact at the face's depth)."""
    if ov.rotation:
        Ry = axis_angle_to_matrix(torch.tensor([0.0, math.radians(ov.rotation), 0.0]))
        R = Ry @ axis_angle_to_matrix(fit.global_orient.cpu())
        fit.global_orient = matrix_to_axis_angle(R)
    if ov.scale != 1.0 or ov.offset_x or ov.offset_y:
        face = body.pose_fit(fit)["landmarks"][0].mean(0).cpu()          # anchor: the face's centre
        cam = fit.camera
        Rc, tc = cam.rotation, cam.translation
        hc = Rc @ face + tc                                   # face in camera coordinates
        new = hc / max(ov.scale, 1e-3)
        new = new + torch.tensor([ov.offset_x * cam.width, ov.offset_y * cam.height, 0.0]) \
            * new[2] / cam.focal
        fit.transl = fit.transl + Rc.T @ (new - hc)


def _detect(img: torch.Tensor, detector: str, info: dict) -> tuple[str, dict, dict]:
    """(detector used, face targets, joint targets) in the photo's pixels, by the rules of
    `detector` (module docstring); warnings and what was found go into `info`."""
    rgb, s = detection_copy(img)
    info["detection_scale"] = s
    if detector in ("auto", *BACKENDS):
        problem = backend_problem(detector) if detector in BACKENDS else None
        if problem:
            raise FitInputError(f"the {detector} detector cannot run: {problem}", "detector", BACKEND_FIX[detector])
        backend = detector if detector in BACKENDS else default_backend()
        if backend is not None:
            lms = detect(rgb[None], backend=backend)
            found = lms.targets(0, s)
            if found is not None:
                ft, jt = found
                info["pose_joints_used"] = sorted(k for k in jt if k.split("_", 1)[-1] not in FINGERS)
                info["hands_used"] = sorted(side for side in lms.hands if lms.hand_found(side)[0])
                return backend, ft, jt
            if detector == backend:
                raise FitInputError(f"the {backend} detector found no face in the photo", "detector", DETECTOR_FIX)
            info["warnings"].append(f"the {backend} detector found no face; trying OpenCV")
        else:
            info["warnings"].append(f"no landmark detector can run ({backend_problem(BACKENDS[0])}); "
                                    "using OpenCV")
    box = face_box(rgb) if detector in ("auto", "opencv") else None
    if box is not None:
        box, used = tuple(v * s for v in box), "opencv"
    elif detector == "opencv":
        raise FitInputError("OpenCV found no face in the photo", "detector",
                            "use a photo with a frontal face, or detector 'manual' and the scale / offset overrides")
    else:                                  # manual, or auto with nothing found
        if detector == "auto":
            info["warnings"].append("no face found; placed a centred default body (adjust it "
                                    "with scale / offset_x / offset_y)")
        box, used = _default_box(img.shape[1], img.shape[0]), "manual"
    info["face_box"] = [float(v) for v in box]
    return used, box_targets(box), {}


def fit_reference(image, body, detector: str = "auto", overrides: FitOverrides | None = None,
                  device="cpu", iters: tuple[int, int] = PHOTO_ITERS) -> ReferenceFit:
    """Estimate camera, shape, orientation, translation, reference pose and expression."""
    if detector not in DETECTORS:
        raise FitInputError(f"unknown detector {detector!r}", "detector", f"choose one of {DETECTORS}")
    ov = overrides or FitOverrides()
    if not (0.05 <= ov.scale <= 20):
        raise FitInputError(f"scale {ov.scale} is outside 0.05..20", "scale", "use a scale between 0.05 and 20")
    if ov.fov and not (5.0 <= ov.fov <= 150.0):
        raise FitInputError(f"fov {ov.fov} deg is outside 5..150 (0 = automatic)", "fov",
                            "use 0 (automatic) or a value between 5 and 150")
    img = prepare_image(image)
    H, W = img.shape[:2]
    info: dict = {"warnings": []}
    t0 = time.time()
    used, ft, jt = _detect(img, detector, info)
    info["detect_seconds"] = round(time.time() - t0, 3)
    t1 = time.time()
    targets = Targets.from_frames([(ft, jt)])
    cam, r, scores = fit_photo(body, W, H, targets, ov.fov, free_pose=used in BACKENDS, iters=iters)
    info["fov_diag_deg"] = cam.fov_diag_deg
    info["fov_source"] = "override" if ov.fov else ("estimated" if scores else "default")
    if scores:
        info["fov_scores"] = scores
    info["fit_seconds"] = round(time.time() - t1, 3)
    ids = sorted(ft)
    err = r.error_px[0, 0, ids].cpu().numpy()
    info["landmarks_used"] = [17 + k for k in ids]
    info["detected_landmarks"] = [[ft[k][0], ft[k][1]] for k in ids]
    info["detected_joints"] = {k: [v[0], v[1]] for k, v in jt.items()}
    info["landmark_error_px"] = float(np.mean(err))
    info["landmark_error_max_px"] = float(np.max(err))
    b = r.body.cpu()
    fit = ReferenceFit(image=img, camera=cam, betas=b.betas[0], global_orient=b.global_orient[0, 0],
                       transl=b.transl[0, 0], reference_pose=b.poses[0, 0], expression=b.expression[0, 0],
                       body_name=body.name, detector=used, info=info)
    apply_overrides(fit, body, ov)
    info["overrides"] = dict(scale=ov.scale, offset_x=ov.offset_x, offset_y=ov.offset_y,
                             rotation=ov.rotation, fov=ov.fov)
    return fit
