"""Region-inpainting edits (the paper's "Editing"): re-dub an existing video of a person with new
speech by regenerating only chosen regions (mouth, eyes, face) and keeping every other pixel.

How (default renderer, no weights):
1. The body is fitted to the video's first frame (shape, camera, pose, expression).
2. The face is tracked through the video (mediapipe face mesh, else OpenCV's face box): each
   frame gets a 2D similarity transform from the first frame's face to its own.
3. The new motion keeps only the region's expression channels (e.g. jaw + mouth for "mouth")
   and the jaw rotation; head and body stay as the first frame's fit. The default renderer draws
   the first frame's person with that new region, and the region's mask comes from the semantic
   maps of the same posed body (the new region united with the region at rest, so an old open
   mouth is covered too), dilated and feathered.
4. Rendering and mask are moved onto each frame by its face transform and composited:
   out = original * (1 - m) + new * m, and where m == 0 the ORIGINAL PIXEL is copied, so
   everything outside the feathered band is bit-identical to the input.
The output follows the speech's length: a video shorter than the speech is played back and forth
(ping-pong, no jump cut); a longer one is cut.
Not yet: the same edit with a trained diffusion video model inside the mask (the masks and
tracking here are what it would use).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np
import torch

from .callbacks import Interrupt, Progress, check, report
from .control_maps import render_motion
from .motion_params import ARKIT52, IDENTITY_6D, Motion
from .reference_fit import FitInputError, FitOverrides, fit_reference, mediapipe_available
from .talking_video import TalkingVideoRenderer

REGIONS = {
    "mouth": ["lips", "mouth_interior", "teeth", "tongue"],
    "eyes": ["eyes", "eyebrows"],
    "face": ["face_skin", "lips", "mouth_interior", "teeth", "tongue", "eyes", "eyebrows"],
}
_PREFIXES = {"mouth": ("jaw", "mouth", "cheek", "tongue"), "eyes": ("eye", "brow"), "face": ("",)}
REGION_JOINTS = {"mouth": ["jaw"], "eyes": ["left_eye_smplhf", "right_eye_smplhf"],
                 "face": ["jaw", "left_eye_smplhf", "right_eye_smplhf"]}


class InpaintError(ValueError):
    """A video or setting the edit cannot use (the node names the input)."""


@dataclass
class RedubSettings:
    region: str = "mouth"
    dilate: int = 6          # pixels the region grows by (at the video's size)
    feather: int = 4         # pixels of soft edge outside the grown region
    detector: str = "auto"
    window: int = 24


def region_motion(motion: Motion, region: str) -> Motion:
    """The new motion restricted to the region: its expression channels and joints, all else
    neutral (the first frame's own expression and pose)."""
    if region not in REGIONS:
        raise InpaintError(f"unknown region {region!r}; choose one of {sorted(REGIONS)}")
    out = Motion.neutral(motion.num_frames, motion.fps, motion.expression_set)
    if motion.expression_set == "arkit52":
        keep = [i for i, n in enumerate(ARKIT52) if n.startswith(_PREFIXES[region])]
        out.expression[:, keep] = motion.expression[:, keep]
    for j in REGION_JOINTS[region]:
        if j in motion.joints and j in out.joints:
            out.rot6d[:, out.joints.index(j)] = motion.rot6d[:, motion.joints.index(j)]
    return out


def pingpong(t: int, n: int) -> int:
    """Frame index t of a video of n frames played back and forth."""
    if n <= 1:
        return 0
    p = t % (2 * n - 2)
    return p if p < n else 2 * n - 2 - p


# ----------------------------------------------------------------------------- face tracking
def _face_points(rgb: np.ndarray, detector: str, mesh) -> np.ndarray | None:
    h, w = rgb.shape[:2]
    if mesh is not None:
        res = mesh.process(rgb)
        if res.multi_face_landmarks:
            return np.array([[p.x * w, p.y * h] for p in res.multi_face_landmarks[0].landmark], np.float32)
        return None
    from .reference_fit import detect_opencv
    box = detect_opencv(rgb)
    if box is None:
        return None
    x, y, bw, bh = box
    return np.array([[x, y], [x + bw, y], [x, y + bh], [x + bw, y + bh]], np.float32)


def track_face(frames: np.ndarray, detector: str = "auto",
               interrupt: Interrupt = None) -> tuple[list[np.ndarray], int]:
    """[T] 2x3 similarity transforms from the first frame's face to each frame's (identity where
    the face is lost: the last good transform is kept), and how many frames lost the face."""
    use_mp = detector in ("auto", "mediapipe") and mediapipe_available()
    mesh = None
    if use_mp:
        import mediapipe as mp
        mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1,
                                               refine_landmarks=False, min_detection_confidence=0.5)
    try:
        ref = _face_points(frames[0], detector, mesh)
        if ref is None:
            raise InpaintError("no face found in the video's first frame: the edit needs a visible "
                               "face (a video of a person facing the camera)")
        out, last, lost = [], np.float32([[1, 0, 0], [0, 1, 0]]), 0
        for f in frames:
            check(interrupt)
            pts = _face_points(f, detector, mesh)
            if pts is not None and len(pts) == len(ref):
                m, _ = cv2.estimateAffinePartial2D(ref, pts, method=cv2.LMEDS)
                if m is not None:
                    last = m.astype(np.float32)
            else:
                lost += 1
            out.append(last)
        return out, lost
    finally:
        if mesh is not None:
            mesh.close()


# ----------------------------------------------------------------------------- the edit
def feathered_mask(region: np.ndarray, dilate: int, feather: int) -> np.ndarray:
    """[H,W] float 0..1: the region grown by `dilate` px, with a soft edge `feather` px wide
    OUTSIDE it (1 on the grown region, exactly 0 beyond the band)."""
    m = region.astype(np.uint8)
    if dilate > 0:
        m = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate + 1,) * 2))
    if feather <= 0:
        return m.astype(np.float32)
    d = cv2.distanceTransform((1 - m).astype(np.uint8), cv2.DIST_L2, 5)     # px outside the region
    return np.clip(1.0 - d / (feather + 1.0), 0.0, 1.0).astype(np.float32)


def composite(original: np.ndarray, new: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """original * (1 - m) + new * m; pixels with m == 0 are the original's, bit for bit."""
    m = mask[..., None]
    blend = original * (1.0 - m) + new * m
    return np.where(m > 0, blend, original).astype(original.dtype)


def redub_frames(body, frames: np.ndarray, motion: Motion, settings: RedubSettings = RedubSettings(),
                 device="cpu", progress: Progress = None,
                 interrupt: Interrupt = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (frames [n,H,W,3] float32 0..1, masks [n,H,W]) window by window, for
    motion.num_frames output frames built on the video `frames` [T,H,W,3] float 0..1."""
    if frames.ndim != 4 or frames.shape[0] < 1 or frames.shape[-1] != 3:
        raise InpaintError(f"expected video frames [T,H,W,3], got {tuple(frames.shape)}")
    T, H, W = frames.shape[:3]
    if min(H, W) < 64:
        raise InpaintError(f"the video is {W}x{H}; at least 64x64 is needed to find the face")
    if settings.region not in REGIONS:
        raise InpaintError(f"unknown region {settings.region!r}; choose one of {sorted(REGIONS)}")
    frames = np.ascontiguousarray(frames, np.float32)
    u8 = (np.clip(frames, 0, 1) * 255 + 0.5).astype(np.uint8)
    det = "opencv" if settings.detector == "manual" else settings.detector
    try:
        fit = fit_reference(torch.from_numpy(frames[0]), body, det, FitOverrides(), device)
    except FitInputError as e:
        raise InpaintError(f"no face found in the video's first frame ({e})") from None
    if fit.detector == "manual":
        raise InpaintError("no face found in the video's first frame: the edit needs a visible face")
    transforms, _ = track_face(u8, det, interrupt)
    edit = region_motion(motion, settings.region)
    renderer = TalkingVideoRenderer(body, fit, W, H)
    parts = [p for p in REGIONS[settings.region] if p in body.part_names]
    rest = render_motion(body, fit, None, W, H).mask(parts)[0].numpy() > 0.5
    n = motion.num_frames
    for start in range(0, n, settings.window):
        check(interrupt)
        stop = min(n, start + settings.window)
        new = renderer.render(edit, start, stop)
        sem = render_motion(body, fit, edit, W, H, start, stop).mask(parts).numpy() > 0.5
        out = np.empty((stop - start, H, W, 3), np.float32)
        masks = np.empty((stop - start, H, W), np.float32)
        for i in range(stop - start):
            src = pingpong(start + i, T)
            A = transforms[src]
            m = feathered_mask(sem[i] | rest, settings.dilate, settings.feather)
            mw = cv2.warpAffine(m, A, (W, H), flags=cv2.INTER_LINEAR, borderValue=0)
            mw[mw < 1e-3] = 0.0                      # interpolation dust is not an edit
            nw = cv2.warpAffine(new[i], A, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            out[i] = composite(frames[src], nw, mw)
            masks[i] = mw
        report(progress, stop, n)
        yield out, masks
