"""Face video for Wan 2.2 Animate: crops of the talking face from the default renderer's frames.

Wan's own preprocessing crops the driving video's face by its 68 face landmarks: their box,
grown to 1.3 times its area at the same aspect, the extra width split evenly left and right,
the extra height three quarters above the box and one quarter below (so the forehead is in,
the neck mostly out), clipped to the image, then resized to 512 x 512. Here the landmarks are
the posed body's own 68 face points (keypoints.py), all of them whether or not each is visible,
as a face-landmark detector reports a whole face.
"""
from __future__ import annotations

import cv2
import numpy as np

FACE_SIZE = 512             # the face encoder's input (WanAnimateToVideo resizes to 512 x 512)
AREA_SCALE = 1.3
UP_SHARE = 0.75             # of the added height, above the landmarks' box


def face_box(face: np.ndarray, width: int, height: int, scale: float = AREA_SCALE) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) pixel box of one frame's face points [68, >=2] (NaN-free rows used)."""
    pts = face[:, :2][np.isfinite(face[:, :2]).all(1)]
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    grow_w = np.sqrt(w * h * scale * w / h) - w
    grow_h = np.sqrt(w * h * scale * h / w) - h
    bx0 = max(x0 - grow_w / 2, 0.0)
    bx1 = min(x1 + grow_w / 2, float(width))
    by0 = max(y0 - UP_SHARE * grow_h, 0.0)
    by1 = min(y1 + (1 - UP_SHARE) * grow_h, float(height))
    return int(bx0), int(by0), max(int(bx0) + 1, int(bx1)), max(int(by0) + 1, int(by1))


def face_crops(frames: np.ndarray, faces: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """frames [n,H,W,3] float 0..1 + face points [n,68,>=2] in their pixels -> [n,size,size,3]."""
    n, H, W = frames.shape[:3]
    out = np.empty((n, size, size, 3), np.float32)
    for i in range(n):
        x0, y0, x1, y1 = face_box(faces[i], W, H)
        out[i] = cv2.resize(frames[i, y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_LINEAR)
    return np.clip(out, 0.0, 1.0, out=out)
