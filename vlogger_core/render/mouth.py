"""The mouth a warp of one photo cannot show: an open mouth's teeth, cavity and tongue, and the
crease where shut lips meet.

A moving mouth's upper teeth are the photo's own where it showed them (a smile): they are
sampled along the skull's motion (an affine map fitted per frame to the mesh's upper teeth), so
they stay fixed to the head as the jaw drops, with their real edges and gaps. Everything else
in the opening is painted from the front as a mouth is seen: a cavity that darkens toward the
back, the tongue on its floor once the jaw is open enough, the lower teeth's biting edges above
the lower lip, the upper teeth (painted, where the photo showed none) under the upper lip's
soft shadow. The opening's outline and every painted edge are sub-pixel curves (the raster's
column-by-column stair made dashes of a thin tooth band, which read as braces).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

LOWER_TEETH = "teeth_lower"    # the renderer's own label: the teeth that move with the jaw
LOWER_LIP = "lips_lower"       # the renderer's own label: the lip that moves with the jaw
MOUTH_PARTS = ("mouth_interior", "teeth", LOWER_TEETH, "tongue")
CREASE_DARK = 0.3              # where the lips meet: the lip colour this much darker, at the line

UPPER_TEETH_SHOWN = 0.13       # painted upper incisors' visible height, in mouth widths
LOWER_TEETH_SHOWN = 0.05       # the lower incisors' biting edges, in mouth widths, once open
LOWER_FROM = 0.22              # of the mouth's width: the opening's height where they show
LOWER_TEETH_SHADE = 0.9        # the lower teeth lie in the lower lip's shadow
TONGUE_FROM = 0.1              # of the mouth's width: the opening's height where the tongue shows
TONGUE_SHARE = 0.45            # of the opening's height past TONGUE_FROM: how much tongue shows
TONGUE_WIDTH = 0.72            # of the mouth's half width
TONGUE_TONE = (0.78, 0.46, 0.48)   # of the lips' colour: a tongue in the mouth's light
CAVITY_RIM = (0.42, 0.2, 0.21)     # of the lips' colour: the cavity just inside the lips
CAVITY_BACK = (0.14, 0.05, 0.06)   # and at its back, in the middle
LIP_SHADOW = 0.4               # how much the upper lip's shadow darkens the teeth at its edge
PAINTED_SHADOW = 0.2           # on painted teeth (their colour is already the face's light)
TEETH_LIGHT = 1.25             # painted teeth: this much lighter than the face's skin or lips
THIN = 0.05                    # of the mouth's width: an opening this high shows no teeth yet
TEETH_EXTEND = 0.12            # of the mouth's width: the photo's teeth continue up under the lip


@dataclass
class PhotoTeeth:
    """The photo's upper teeth, on their bounding box (x0, y0) in photo index coordinates:
    rgb [h,w,3] (continued upward under the lip) and a soft coverage alpha [h,w]."""

    x0: int
    y0: int
    rgb: np.ndarray
    alpha: np.ndarray


def painted_teeth_color(skin_color: np.ndarray, lip_color: np.ndarray) -> np.ndarray:
    """Teeth for a photo that shows none: an ivory lighter than the face's skin and lips (in the
    photo's own light and exposure), at most nearly white."""
    light = min(0.95, TEETH_LIGHT * max(float(np.mean(skin_color)), float(np.mean(lip_color))))
    return np.clip(light * np.array([1.02, 1.0, 0.93], np.float32), 0, 1)


def photo_teeth(photo: np.ndarray, opening: np.ndarray | None, lip_color: np.ndarray,
                teeth_color: np.ndarray | None) -> PhotoTeeth | None:
    """The upper row of teeth the photo shows inside its mouth opening (opening [Hp,Wp] uint8),
    or None when it shows none. A tooth pixel's colour lies nearer the teeth's (teeth_color, the
    mesh's teeth in the photo; a plain white without) than the lips' (lip_color); the upper row
    is what each column holds from the top down to the first gap
    (a lower row below a dark gap moves with the jaw and is painted instead)."""
    if opening is None or not opening.any():
        return None
    ys, xs = np.nonzero(opening)
    width = xs.max() - xs.min() + 1
    ext = max(2, int(round(TEETH_EXTEND * width)))
    pad = 2
    y0, y1 = max(0, ys.min() - pad), min(photo.shape[0], ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(photo.shape[1], xs.max() + pad + 1)
    box = np.clip(photo[y0:y1, x0:x1], 0, 1)
    inside = cv2.dilate(opening[y0:y1, x0:x1], np.ones((3, 3), np.uint8)) > 0
    white = np.asarray(teeth_color if teeth_color is not None else (0.9, 0.88, 0.84), np.float32)
    d = white - np.asarray(lip_color, np.float32)
    score = np.clip(((box - lip_color) @ d / max(1e-4, float(d @ d)) - 0.25) / 0.4, 0, 1)
    tooth = inside & (score > 0.5)
    if tooth.sum() < max(4, 0.02 * width * width):
        return None
    # per column: teeth from the first tooth pixel down to the first gap after it
    seen = np.cumsum(tooth, 0) > 0
    upper = tooth & ~(np.cumsum(seen & ~tooth, 0) > 0)
    upper = cv2.morphologyEx(upper.astype(np.uint8), cv2.MORPH_OPEN, np.ones((1, 3), np.uint8)) > 0  # no lone columns
    cols = np.nonzero(upper.any(0))[0]
    first = upper.argmax(0)
    # continued upward under the lip by the top row's colour (a lip that rises shows more tooth)
    top = max(0, y0 - ext)
    grow = y0 - top
    rgb = np.concatenate([np.zeros((grow, x1 - x0, 3), np.float32), box.astype(np.float32)], 0)
    mask = np.concatenate([np.zeros((grow, x1 - x0), np.float32), upper.astype(np.float32)], 0)
    for c in cols:
        r = first[c] + grow
        lo = max(0, r - ext)
        rgb[lo:r, c] = rgb[r, c]
        mask[lo:r, c] = 1.0
    alpha = cv2.GaussianBlur(mask, (0, 0), 0.6)
    return PhotoTeeth(int(x0), int(top), np.ascontiguousarray(rgb), np.ascontiguousarray(alpha, np.float32))


def _edge_curves(m: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Per column of the opening m [h,w] bool: its top and bottom edges (the boundary between
    pixel rows, smoothed across columns with a Gaussian of sigma px, so a stair of whole
    pixels becomes a sub-pixel curve); a column without any has no height."""
    has = m.any(0)
    rows = np.arange(m.shape[0], dtype=np.float32)[:, None]
    top = np.where(m, rows, np.inf).min(0)
    bottom = np.where(m, rows, -np.inf).max(0)
    w = has.astype(np.float32)[None]
    smooth = lambda v: (cv2.GaussianBlur((np.where(has, v, 0)[None] * w).astype(np.float32), (0, 0), sigma, sigmaY=0.01)
                        / np.maximum(cv2.GaussianBlur(w, (0, 0), sigma, sigmaY=0.01), 1e-6))[0]
    top, bottom = smooth(top) - 0.5, smooth(bottom) + 0.5
    mid = 0.5 * (top + bottom)      # a column without opening: no height (the corners taper)
    return np.where(has, top, mid), np.where(has, bottom, mid)


def _coverage(top: np.ndarray, bottom: np.ndarray, rows: int) -> np.ndarray:
    """[rows, w] the share of each pixel between the edge curves top and bottom [w] (edge
    positions between pixel rows), with 4 samples across each pixel (the curves interpolated
    between column centres), so steep edges at the corners are anti-aliased too."""
    x = np.arange(len(top), dtype=np.float32)
    r = np.arange(rows, dtype=np.float32)[:, None]
    acc = np.zeros((rows, len(top)), np.float32)
    for dx in (-0.375, -0.125, 0.125, 0.375):
        t, b = np.interp(x + dx, x, top)[None], np.interp(x + dx, x, bottom)[None]
        acc += np.clip(r + 0.5 - t, 0, 1) * np.clip(b - (r - 0.5), 0, 1)
    return acc / 4


def paint_mouth(img: np.ndarray, part_index: np.ndarray, part_ids: dict[str, int], ref,
                seen: np.ndarray, skull: np.ndarray | None = None) -> np.ndarray:
    """Paint the mouth opening (the union of MOUTH_PARTS pixels, part_index [H,W]) of img
    [H,W,3] in place, on its bounding box.

    ref: the CompositorReference (lip_color, teeth_color, teeth: PhotoTeeth or None). skull
    [2,3]: output index coordinates -> photo index coordinates of the skull in this frame (a
    moving mouth; the whole opening is painted, with the photo's own upper teeth where it
    showed them); None (the photo itself): only pixels the photo did not see (seen [H,W]) are
    painted."""
    ids = [part_ids[p] for p in MOUTH_PARTS if p in part_ids]
    if not ids:
        return img
    mouth = np.isin(part_index, ids)
    ys, xs = np.nonzero(mouth)
    if len(ys) == 0:
        return img
    pad = 4
    y0, y1 = max(0, ys.min() - pad), min(mouth.shape[0], ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(mouth.shape[1], xs.max() + pad + 1)
    m = mouth[y0:y1, x0:x1]
    width = float(xs.max() - xs.min() + 1)
    top, bottom = _edge_curves(m, max(1.0, width / 30))
    height = np.maximum(bottom - top, 0.0)[None]
    top, bottom = top[None], bottom[None]
    r = np.arange(m.shape[0], dtype=np.float32)[:, None]
    # a pixel row r spans r-0.5 .. r+0.5: the share of it below an edge e. The tongue and the
    # lower teeth go on below the opening's lower edge (behind the lip), the upper teeth above its
    # upper edge: its anti-aliased rim blends the lip with them, not with a dark fringe
    below = lambda e: np.clip(r + 0.5 - e, 0, 1)
    xc = ((np.arange(x0, x1, dtype=np.float32) - xs.min() + 0.5) / width * 2 - 1)[None]   # corner to corner
    across = np.sqrt(np.clip(1 - xc ** 2, 0, 1))
    v = np.clip((r - top) / np.maximum(height, 1.0), 0, 1)
    lip = np.asarray(ref.lip_color, np.float32)
    teeth_col = ref.teeth_color if ref.teeth_color is not None else np.array([0.86, 0.84, 0.78], np.float32)
    # the cavity: lit just inside the lips, dark at the back (the middle of the opening)
    deep = (np.sqrt(np.clip(4 * v * (1 - v), 0, 1)) * across ** 2)[..., None]
    paint = lip * np.array(CAVITY_RIM, np.float32) * (1 - deep) + lip * np.array(CAVITY_BACK, np.float32) * deep
    # the tongue on the mouth's floor: a soft dome whose top rises as the jaw opens
    tongue_h = TONGUE_SHARE * np.maximum(height - TONGUE_FROM * width, 0)
    dome = np.sqrt(np.clip(1 - (xc / TONGUE_WIDTH) ** 2, 0, 1))
    t_top = bottom - tongue_h * dome
    t_cov = (below(t_top) * np.clip(tongue_h * dome - 0.3, 0, 1))[..., None]   # (fades in: no pop)
    lit = np.exp(-np.maximum(r - t_top, 0) / np.maximum(0.6 * tongue_h, 1.0)) * (1 - 0.4 * (xc / TONGUE_WIDTH) ** 2)
    tongue = lip * np.array(TONGUE_TONE, np.float32) * (0.72 + 0.28 * lit)[..., None]
    paint = paint + (tongue - paint) * t_cov
    # the lower teeth's biting edges, in the middle, once the jaw is open enough
    open_low = np.clip((height - LOWER_FROM * width) / max(1.0, 0.05 * width), 0, 1)
    low_h = LOWER_TEETH_SHOWN * width * across * open_low * np.clip((0.55 - np.abs(xc)) / 0.12, 0, 1)
    low_h = np.minimum(low_h, 0.3 * height)
    l_top = bottom - low_h
    l_cov = (below(l_top) * np.clip(low_h - 1.5, 0, 1))[..., None]
    # (lit along their biting edge, warmed by the lip in front of them: a grey line otherwise)
    low_col = (0.85 * teeth_col + 0.15 * lip) * LOWER_TEETH_SHADE \
        * (0.85 + 0.15 * np.exp(-np.maximum(r - l_top, 0) / 1.5))[..., None]
    paint = paint + (low_col - paint) * l_cov
    # the upper teeth: the photo's own, moved with the skull (always, when the photo showed
    # them: switching to painted teeth on frames that show few would flicker), else painted
    lip_shadow = LIP_SHADOW
    if skull is not None and getattr(ref, "teeth", None) is not None:
        u_cov, u_col = _photo_teeth_at(ref.teeth, skull, x0, y0, m.shape)
        u_cov = u_cov * np.clip(1.0 - (np.abs(xc) - 0.85) / 0.15, 0, 1)
    else:
        lip_shadow = PAINTED_SHADOW
        tooth = np.minimum(UPPER_TEETH_SHOWN * width * across, 0.55 * height)
        # the front teeth only: the cheeks shade the back ones into the cavity's dark
        u_cov = np.clip(top + tooth - (r - 0.5), 0, 1) * np.clip(tooth - 0.3, 0, 1) * np.clip((0.8 - np.abs(xc)) / 0.25, 0, 1)
        # each tooth a little rounded (brighter in its middle): incisors, laterals, canines
        k = np.abs(xc) * 3.4
        bump = 1 - 0.08 * np.cos(np.pi * 2 * (k - np.floor(k))) ** 8
        u_col = teeth_col * ((1.0 - 0.25 * xc ** 2) * bump
                             * (1.0 - 0.1 * np.clip((r - top) / np.maximum(tooth, 1), 0, 1)))[..., None]
    # a thin opening shows a dark line between the lips, not a dashed row of tooth edges
    u_cov = u_cov * np.clip((height - THIN * width) / max(1.0, THIN * width), 0, 1)
    shadow = 1.0 - lip_shadow * np.exp(-np.maximum(r - top, 0) / max(0.8, width / 45))
    paint = paint + (u_col * shadow[..., None] - paint) * u_cov[..., None]
    paint = paint.astype(np.float32)
    if skull is not None:
        # the opening's outline from its sub-pixel edge curves (a thin opening is a smooth line,
        # not the raster's stair), and soft at the corners
        alpha = _coverage(top[0], bottom[0], m.shape[0])
        # the mesh's corners end in runs one pixel high: drawn whole, dark whiskers
        alpha = alpha * (1 - (1 - np.clip(height / 2.0, 0, 1)) * np.clip((np.abs(xc) - 0.6) / 0.2, 0, 1))
    else:
        unseen = (~seen[y0:y1, x0:x1]).astype(np.float32)
        alpha = cv2.GaussianBlur(m.astype(np.float32) * unseen, (0, 0), 0.6)
    box = img[y0:y1, x0:x1]
    img[y0:y1, x0:x1] = box + (paint - box) * alpha[..., None]
    return img


def _photo_teeth_at(teeth: PhotoTeeth, skull: np.ndarray, x0: int, y0: int,
                    shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The photo's teeth (coverage [h,w], colour [h,w,3]) seen at the output box (x0, y0,
    shape) when the skull maps output to photo coordinates by the affine skull [2,3]."""
    h, w = shape
    gx, gy = np.meshgrid(np.arange(x0, x0 + w, dtype=np.float32), np.arange(y0, y0 + h, dtype=np.float32))
    px = (skull[0, 0] * gx + skull[0, 1] * gy + skull[0, 2] - teeth.x0).astype(np.float32)
    py = (skull[1, 0] * gx + skull[1, 1] * gy + skull[1, 2] - teeth.y0).astype(np.float32)
    cov = cv2.remap(teeth.alpha, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    col = cv2.remap(teeth.rgb, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cov, col


def lip_crease(img: np.ndarray, part_index: np.ndarray, part_ids: dict[str, int]) -> np.ndarray:
    """Shut lips meet in a thin dark line (the shadow between them); a warp of one photo has no
    such line where the photo's lips were apart, so closed lips read as one soft pink band, to
    a viewer and to a landmark detector. Drawn, soft-edged, only where upper-lip pixels touch
    lower-lip pixels with no mouth opening between them. Changes img in place."""
    if "lips" not in part_ids or LOWER_LIP not in part_ids:
        return img
    upper, lower = part_index == part_ids["lips"], part_index == part_ids[LOWER_LIP]
    ys, xs = np.nonzero(upper | lower)
    if len(ys) == 0 or not lower.any() or not upper.any():
        return img
    pad = 3
    y0, y1 = max(0, ys.min() - pad), min(img.shape[0], ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(img.shape[1], xs.max() + pad + 1)
    u = upper[y0:y1, x0:x1].astype(np.uint8)
    lo = lower[y0:y1, x0:x1].astype(np.uint8)
    r = max(1, int(round((x1 - x0) / 60)))      # about 1 px at 256, 2 px at 512
    kern = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    line = (cv2.dilate(u, kern) & cv2.dilate(lo, kern)).astype(np.float32)
    if line.sum() == 0:
        return img
    alpha = CREASE_DARK * cv2.GaussianBlur(line, (0, 0), 0.5 * r)[..., None]
    img[y0:y1, x0:x1] *= 1 - 0.65 * alpha        # darker by up to 65 % of CREASE_DARK, in place
    return img
