"""Fitting the body to a video (for editing it, edit/redub.py): the camera, shape and placement
come from one frame's full photo fit, the rest follows the person frame by frame.

- landmarks / mediapipe (detect.py's backends; "auto": the first that can run here): face
  landmarks tracked through the video (tracking mode), the first frame with a face fitted fully
  (reference.py), then every frame tracked from it (fit.py: track_frames: head/neck/jaw,
  expression and translation per frame, with smoothness).
- opencv (or "auto" where no landmark backend can run): one fit on the first frame and OpenCV's
  face box tracked as a 2D similarity per frame (coarser: the old mouth's motion is not known).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..callbacks import Interrupt, Progress, check, report
from .camera import PerspectiveCamera
from .detect import (
    BACKEND_FIX,
    BACKENDS,
    MP_STATIC,
    backend_problem,
    default_backend,
    detect,
    face_box,
)
from .fit import FitInputError, track_frames
from .reference import FitOverrides, fit_reference

VIDEO_DETECTORS = ["auto", *BACKENDS, "opencv"]
VIDEO_FIX = "use a video of one person facing the camera"


@dataclass
class VideoTrack:
    """The body fitted to the video's frames (shape, camera, placement shared)."""

    camera: PerspectiveCamera   # at the video's size
    betas: torch.Tensor         # [S]
    global_orient: torch.Tensor  # [3]
    transl: torch.Tensor        # [T,3]
    poses: torch.Tensor         # [T,55,3,3]
    expression: torch.Tensor    # [T,E]
    affine: np.ndarray | None   # [T,2,3] fit coordinates -> frame (opencv tracking), None = per-frame fit
    method: str
    lost: int                   # frames whose face was not found


def _box_corners(rgb: np.ndarray) -> np.ndarray | None:
    box = face_box(rgb)
    if box is None:
        return None
    x, y, bw, bh = box
    return np.array([[x, y], [x + bw, y], [x, y + bh], [x + bw, y + bh]], np.float32)


def _frame(frames: np.ndarray, i: int) -> torch.Tensor:
    return torch.from_numpy(frames[i].astype(np.float32) / 255.0)


def fit_video(body, frames: np.ndarray, detector: str = "auto", iters: int = 60, device="cpu",
              interrupt: Interrupt = None, progress: Progress = None) -> VideoTrack:
    """Fit the body to video frames [T,H,W,3] uint8 (see the module docstring). FitInputError's
    arg names what is at fault: 'frames' or 'detector'."""
    if detector not in VIDEO_DETECTORS:
        raise FitInputError(f"unknown detector {detector!r}", "detector", f"choose one of {VIDEO_DETECTORS}")
    problem = backend_problem(detector) if detector in BACKENDS else None
    if problem:
        raise FitInputError(f"the {detector} detector cannot run: {problem}", "detector", BACKEND_FIX[detector])
    backend = detector if detector in BACKENDS else default_backend() if detector == "auto" else None
    if backend is not None:
        face = detect(frames, tracking=True, parts=("face",), refine_face=False, backend=backend,
                      interrupt=interrupt, progress=progress).face[:, MP_STATIC]
        found = ~np.isnan(face[..., 0]).any(1)
        if not found.any():
            raise FitInputError("no face found in any frame of the video: the edit needs a visible face",
                                "frames", VIDEO_FIX)
        first = int(np.argmax(found))
        try:
            fit0 = fit_reference(_frame(frames, first), body, backend, FitOverrides(), device)
        except FitInputError as e:
            raise FitInputError(f"the body could not be fitted to frame {first} ({e})", "frames", VIDEO_FIX) from None
        b = track_frames(body, fit0, face, iters, interrupt)
        return VideoTrack(fit0.camera, fit0.betas, fit0.global_orient, b.transl[0], b.poses[0], b.expression[0],
                          None, f"{backend}: fit on one frame, tracked per frame", int((~found).sum()))
    T = len(frames)
    try:
        fit = fit_reference(_frame(frames, 0), body, "opencv", FitOverrides(), device)
    except FitInputError as e:
        raise FitInputError(f"no face found in the video's first frame ({e})", "frames", VIDEO_FIX) from None
    ref = _box_corners(frames[0])
    if ref is None:
        raise FitInputError("no face found in the video's first frame: the edit needs a visible face",
                            "frames", VIDEO_FIX)
    affine, last, lost = np.empty((T, 2, 3), np.float32), np.float32([[1, 0, 0], [0, 1, 0]]), 0
    for i, f in enumerate(frames):
        check(interrupt)
        pts = _box_corners(f)
        if pts is not None:
            m, _ = cv2.estimateAffinePartial2D(ref, pts, method=cv2.LMEDS)
            if m is not None:
                last = m.astype(np.float32)
        else:
            lost += 1
        affine[i] = last                                  # a lost face keeps the last transform
        report(progress, i + 1, T)
    return VideoTrack(fit.camera, fit.betas, fit.global_orient, fit.transl[None].repeat(T, 1),
                      fit.reference_pose[None].repeat(T, 1, 1, 1), fit.expression[None].repeat(T, 1),
                      affine, "opencv first-frame fit + face-box tracking", int(lost))
