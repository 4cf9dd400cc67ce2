"""Frames without diffusion weights: warp the reference photo along the posed body and composite.

Where no trained video-diffusion weights exist (none are public), each frame is made from the
reference photo itself, driven by the same body renders VLOGGER's diffusion model consumes:

1. Once per reference: a soft person mask of the photo (mediapipe's selfie segmentation, run by
   LiteRT, so hair and clothes beyond the mesh count as person, joined with the fitted body's
   silhouette; GrabCut seeded by the silhouette where LiteRT cannot run) and a background plate
   (the photo with the person inpainted away), so a head or arm moving away leaves no hole.
2. Per frame: every body pixel knows which point of the photo it shows (the reference-image
   position of the surface point under it, interpolated from the vertices). That mapping,
   extended smoothly off the body, backward-warps the photo (cv2.remap): eyelids, lips, hair and
   clothes follow the mesh. Body points the photo never showed (mouth interior, sides of the
   head, the back of a turned hand) are filled: the mouth with a shaded cavity, teeth and tongue
   from the mesh's mouth parts; the rest from the smooth warp of nearby colours.
3. Person over plate with a feathered edge. Colours come from the one photo every frame, so
   they cannot drift or flicker.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..body import landmark_models
from . import compositor_kernels as kernels
from .mouth import (
    LOWER_LIP,
    LOWER_TEETH,
    PhotoTeeth,
    lip_crease,
    paint_mouth,
    painted_teeth_color,
    photo_teeth,
)


@dataclass
class CompositorReference:
    """What the compositor precomputes once for a reference photo at one output size."""

    photo: np.ndarray          # [Hp, Wp, 3] float32 0..1, full resolution (sampled by remap)
    person_mask: np.ndarray    # [Hp, Wp] float32 0..1, soft
    plate: np.ndarray          # [H, W, 3] float32, output resolution: photo without the person
    lip_color: np.ndarray      # [3] mean lip colour, for the mouth cavity
    skin_color: np.ndarray     # [3] mean face-skin colour
    width: int
    height: int
    teeth_color: np.ndarray | None = None   # [3] the photo's own teeth, when it shows them
    photo_closed: np.ndarray | None = None  # the photo with its mouth opening filled from its lips
    teeth: PhotoTeeth | None = None         # the photo's own upper teeth, when it shows them


SEGMENT_SIDE = 1024     # the selfie mask is made at most at this size (its model sees 256x256)


def _disk(r: int) -> np.ndarray:
    """A round structuring element of radius r."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def person_mask(photo: np.ndarray, silhouette: np.ndarray) -> np.ndarray:
    """The soft person (and hair) mask [H,W] float32 0..1 of the photo [H,W,3] float 0..1, given
    the fitted body's silhouette [H,W] bool: from the selfie segmentation where LiteRT can run
    (person_mask_from_segmentation), else GrabCut (person_mask_from_silhouette)."""
    if landmark_models.unavailable_reason() is None:
        return person_mask_from_segmentation(photo, silhouette)
    return person_mask_from_silhouette(photo, silhouette)


def person_mask_from_segmentation(photo: np.ndarray, silhouette: np.ndarray,
                                  max_side: int = SEGMENT_SIDE) -> np.ndarray:
    """The person of the fitted body from mediapipe's selfie segmentation (landmark_models.
    segment_person), soft [H,W] float32 0..1.

    The model's 256x256 probability map is upsampled bilinearly (to the photo, or to at most
    max_side on the long side and then to the photo): it is smooth, and its soft edge already
    sits within a few pixels of the hair's edge (a guided filter on the photo was tried: it
    widened the edge's tail and dented the mask inside textured hair). The fitted body's
    silhouette is joined in (a little eroded: the fit may overlap the background by a few
    pixels), and only the segments touching the body are kept (another person, or a stray blob,
    is background). The soft edge is kept for compositing."""
    h, w = silhouette.shape
    sil = silhouette.astype(np.uint8)
    if sil.sum() < 16:  # no body in the photo: nothing is this person
        return np.zeros((h, w), np.float32)
    s = min(1.0, max_side / max(h, w))
    sw, sh = max(1, round(w * s)), max(1, round(h * s))
    small = photo if s == 1.0 else cv2.resize(photo, (sw, sh), interpolation=cv2.INTER_AREA)
    small = np.ascontiguousarray(small, np.float32)
    seg = landmark_models.segment_person((np.clip(small, 0, 1) * 255 + 0.5).astype(np.uint8))
    cell = max(sw, sh) / 256                          # one cell of the model's output, in pixels
    sil_s = sil if s == 1.0 else (cv2.resize(sil, (sw, sh), interpolation=cv2.INTER_AREA) > 0).astype(np.uint8)
    inner = cv2.erode(sil_s, _disk(max(1, round(max(sw, sh) / 100))))
    seg = np.maximum(seg, cv2.GaussianBlur(inner.astype(np.float32), (0, 0), max(0.8, cell / 2)))
    # keep the segments that touch the body (with their soft rim), drop the others
    _, lab = cv2.connectedComponents((seg > 0.5).astype(np.uint8))
    keep = np.unique(lab[(sil_s > 0) & (lab > 0)])
    region = np.isin(lab, keep[keep > 0]).astype(np.uint8)
    gate = cv2.GaussianBlur(cv2.dilate(region, _disk(max(2, round(2 * cell)))).astype(np.float32),
                            (0, 0), max(1.0, cell))
    seg = (seg * np.minimum(1.0, 2 * gate)).astype(np.float32)
    if s != 1.0:
        seg = cv2.resize(seg, (w, h), interpolation=cv2.INTER_LINEAR)
    return seg


def person_mask_from_silhouette(photo: np.ndarray, silhouette: np.ndarray,
                                iterations: int = 4, max_side: int = 320) -> np.ndarray:
    """GrabCut the person out of the photo, seeded by the body's rendered silhouette.

    photo [H,W,3] float 0..1; silhouette [H,W] bool (the fitted body rendered in the reference
    pose at the photo's resolution). Returns a soft mask [H,W] float32. GrabCut runs on a copy
    whose long side is at most max_side (its cost grows with the pixel count; the mask is
    smooth at that scale anyway) and the mask is scaled back.
    """
    h, w = silhouette.shape
    if max(h, w) > max_side:
        s = max_side / max(h, w)
        sw, sh = max(1, round(w * s)), max(1, round(h * s))
        small = person_mask_from_silhouette(
            cv2.resize(photo, (sw, sh), interpolation=cv2.INTER_AREA),
            cv2.resize(silhouette.astype(np.uint8), (sw, sh), interpolation=cv2.INTER_NEAREST) > 0,
            iterations, max_side)
        return np.maximum(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR),
                          silhouette.astype(np.float32))
    sil = silhouette.astype(np.uint8)
    if sil.sum() < 16:  # nothing to seed from: everything is background
        return np.zeros((h, w), np.float32)
    size = max(h, w)
    sure_fg = cv2.erode(sil, _disk(max(1, size // 64)))
    probable = cv2.dilate(sil, _disk(max(2, size // 14)))
    # hair sits above the mesh's scalp: extend the probable region upward
    ys, xs = np.nonzero(sil)
    top = ys.min()
    head_cols = xs[ys < top + max(4, (ys.max() - top) // 6)]
    if len(head_cols):
        x0, x1 = head_cols.min(), head_cols.max()
        pad = (x1 - x0) // 3
        probable[max(0, top - (x1 - x0) // 2):top + 1, max(0, x0 - pad):x1 + pad + 1] = 1
    mask = np.full((h, w), cv2.GC_BGD, np.uint8)
    mask[cv2.dilate(probable, _disk(max(2, size // 10))) > 0] = cv2.GC_PR_BGD
    mask[probable > 0] = cv2.GC_PR_FGD
    mask[sure_fg > 0] = cv2.GC_FGD
    img = (np.clip(photo, 0, 1) * 255).astype(np.uint8)[..., ::-1].copy()
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(img, mask, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:  # degenerate colour models (e.g. a flat image): keep the seed
        pass
    fg = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    # keep the component(s) touching the body, drop stray blobs
    n, lab = cv2.connectedComponents(fg)
    keep = np.unique(lab[(sil > 0) & (fg > 0)])
    fg = np.isin(lab, keep[keep > 0]).astype(np.float32)
    fg = np.maximum(fg, sil.astype(np.float32))
    return cv2.GaussianBlur(fg, (0, 0), max(0.8, size / 400))


def prepare_reference(photo: np.ndarray, silhouette: np.ndarray, width: int, height: int,
                      part_mean_colors: dict[str, np.ndarray] | None = None,
                      identity: np.ndarray | None = None,
                      mouth_opening: np.ndarray | None = None) -> CompositorReference:
    """Person mask + inpainted background plate at the output size.

    identity [H,W,2]: for each output pixel, the photo pixel (index coordinates) it shows when
    nothing moves; None = a plain resize of the whole photo. mouth_opening [Hp,Wp] uint8: where
    the photo shows the inside of its mouth (teeth, dark corners); filled from the lips around
    it into photo_closed, which a closed or moving mouth samples instead (a warp of the photo's
    lips would otherwise drag the teeth and the dark corners into the seal)."""
    photo = np.ascontiguousarray(photo, dtype=np.float32)
    person = person_mask(photo, silhouette)
    if identity is None:
        identity = plain_identity(photo.shape[:2], width, height)
    # pre-blur before sampling down so the plate and mask are not aliased
    k = max(0.0, 0.5 * (photo.shape[1] / width - 1))
    src, pm_src = (photo, person) if k < 0.3 else (cv2.GaussianBlur(photo, (0, 0), k),
                                                  cv2.GaussianBlur(person, (0, 0), k))
    small = cv2.remap(src, identity[..., 0], identity[..., 1], cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REPLICATE)
    pm = cv2.remap(pm_src, identity[..., 0], identity[..., 1], cv2.INTER_LINEAR,
                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    # the plate loses the whole body too (a mesh rim the mask leaves out would stay behind)
    sil = cv2.remap(silhouette.astype(np.float32), identity[..., 0], identity[..., 1], cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    # (a wide margin: the mask's soft rim and the dark rim of clothes it leaves out, inpainted
    # from closer in, smear into the plate as dark dashes the moving head uncovers)
    grow = _disk(max(2, width // 80))
    hole = (cv2.dilate(((pm > 0.02) | (sil > 0.05)).astype(np.uint8), grow) > 0).astype(np.uint8)
    plate = cv2.inpaint((small * 255).astype(np.uint8), hole, max(3, width // 64),
                        cv2.INPAINT_TELEA).astype(np.float32) / 255
    colors = part_mean_colors or {}
    lip = np.asarray(colors.get("lips", (0.55, 0.3, 0.3)), np.float32)
    skin = np.asarray(colors.get("face_skin", (0.8, 0.6, 0.5)), np.float32)
    teeth = np.asarray(colors["teeth"], np.float32) if "teeth" in colors else None
    # the photo is sampled once per output pixel: sample the pre-blurred one (no aliasing)
    closed = fill_mouth_opening(src, mouth_opening) if mouth_opening is not None else None
    own = photo_teeth(src, mouth_opening, lip, teeth)
    if own is None:     # the mesh's teeth saw lips, not teeth: paint them in the face's light
        teeth = painted_teeth_color(skin, lip)
    return CompositorReference(src, pm_src, plate, lip, skin, width, height, teeth, closed, own)


def fill_mouth_opening(photo: np.ndarray, opening: np.ndarray) -> np.ndarray | None:
    """The photo with `opening` (uint8 mask) inpainted from its border (the lips), on the
    opening's bounding box only (any photo size). None for an empty mask."""
    ys, xs = np.nonzero(opening)
    if len(ys) == 0:
        return None
    pad = max(4, int(0.5 * (ys.max() - ys.min() + 1)))
    y0, y1 = max(0, ys.min() - pad), min(photo.shape[0], ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(photo.shape[1], xs.max() + pad + 1)
    roi = (np.clip(photo[y0:y1, x0:x1], 0, 1) * 255 + 0.5).astype(np.uint8)
    hole = cv2.dilate(opening[y0:y1, x0:x1], np.ones((3, 3), np.uint8))
    out = photo.copy()
    out[y0:y1, x0:x1] = cv2.inpaint(roi, hole, max(2, pad // 3), cv2.INPAINT_TELEA).astype(np.float32) / 255
    return out


def plain_identity(photo_hw: tuple[int, int], width: int, height: int) -> np.ndarray:
    """Output pixel -> photo pixel for a plain resize (index coordinates, centres aligned)."""
    ph, pw = photo_hw
    gx = (np.arange(width) + 0.5) * pw / width - 0.5
    gy = (np.arange(height) + 0.5) * ph / height - 0.5
    return np.stack(np.meshgrid(gx, gy), -1).astype(np.float32)


def identity_affine(identity: np.ndarray) -> np.ndarray:
    """[2,3] output index -> photo index coordinates of an identity map [H,W,2] (a scale and a
    shift per axis, as plain_identity and the renderer make them)."""
    h, w = identity.shape[:2]
    ax = (identity[0, -1, 0] - identity[0, 0, 0]) / max(1, w - 1)
    ay = (identity[-1, 0, 1] - identity[0, 0, 1]) / max(1, h - 1)
    return np.array([[ax, 0, identity[0, 0, 0]], [0, ay, identity[0, 0, 1]]], np.float32)


def split_jaw_parts(face_labels: np.ndarray, part_ids: dict[str, int],
                    jaw_weight: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """The teeth and lips that move with the jaw (face's mean jaw skinning weight jaw_weight
    [F] > 0.5) get labels of their own (LOWER_TEETH, LOWER_LIP), so the mouth painter tells
    upper from lower teeth and finds where the lips meet. Returns (labels [F], part ids with
    the new labels added)."""
    ids, out = dict(part_ids), face_labels.copy()
    for part, lower in (("teeth", LOWER_TEETH), ("lips", LOWER_LIP)):
        if part not in part_ids or lower in ids:
            continue
        ids[lower] = max(ids.values()) + 1
        out[(face_labels == ids[part]) & (jaw_weight > 0.5)] = ids[lower]
    return out, ids


def composite_frame(ref: CompositorReference, tri: np.ndarray, attrs: np.ndarray,
                    face_labels: np.ndarray, part_ids: dict[str, int],
                    identity: np.ndarray, closed: bool = False, skull: np.ndarray | None = None) -> np.ndarray:
    """One output frame [H, W, 3] float32 from one frame's raster.

    tri [H,W]: triangle id under each pixel (-1 = background); attrs [H,W,3]: per pixel, the
    photo position (index coordinates x, y) of the surface point and whether the photo saw it
    (1) or not (0), interpolated from the vertices; face_labels [F]: part id per triangle
    (part_ids: name -> id); identity [H,W,2]: the photo pixel each output pixel shows when
    nothing moves; closed: sample ref.photo_closed (a moving mouth) where there is one; skull
    [2,3]: output -> photo index coordinates of the skull (a moving mouth, for mouth.paint_mouth:
    the photo's upper teeth move with it; None = the identity).
    """
    h, w = tri.shape
    attrs = solid_seen(tri, attrs)
    known = np.empty((h, w, 3), np.float32)
    labels = np.empty((h, w), np.uint8)
    kernels.known_flow(tri, attrs, face_labels, identity, known, labels)
    out = np.empty((h, w, 3), np.float32)
    source = ref.photo_closed if closed and ref.photo_closed is not None else ref.photo
    head = np.isin(labels, [part_ids[p] for p in LAYERS[0] if p in part_ids]) & (known[..., 2] > 0)
    kernels.warp_composite(tri, attrs, identity, fill_flow(known), near_body(known, head), source,
                           ref.person_mask[..., None], ref.plate, out)
    if closed and skull is None:    # the skull where the photo has it: identity's own affine map
        skull = identity_affine(identity)
    out = paint_mouth(out, labels, part_ids, ref, known[..., 2] > 0.5, skull if closed else None)
    out = lip_crease(out, labels, part_ids)
    return _smooth_layer_edges(out, labels, part_ids)


def solid_seen(tri: np.ndarray, attrs: np.ndarray) -> np.ndarray:
    """attrs with its seen flag cleared on seen pixels that are not part of a 3x3 block of seen
    pixels (a morphological opening). Why: in the unseen rim of a turned head, a lone pixel of
    a triangle whose vertices the photo "saw" (an ear under the hair, a cheek at a grazing
    angle) samples the photo exactly and shows as a dark speck amid the filled rim."""
    seen = ((tri >= 0) & (attrs[..., 2] > 0.999)).astype(np.uint8)
    solid = cv2.dilate(cv2.erode(seen, np.ones((3, 3), np.uint8)), np.ones((3, 3), np.uint8))
    lone = (seen > 0) & (solid == 0)
    if lone.any():
        attrs = attrs.copy()
        attrs[..., 2][lone] = 0.0
    return attrs


def fill_flow(known: np.ndarray) -> np.ndarray:
    """[H,W,2] flow for every pixel from the seen body's exact flow (known [H,W,3] = flow x *
    c, flow y * c, c): push-pull interpolation (an image pyramid of (flow * c, c) averaged down,
    then filled back up level by level: each pixel keeps its own flow as far as it has coverage
    and takes the coarser level's for the rest). The fill meets the exact flow at the body's
    edge and varies smoothly away from it, so hair, clothes and the unseen rim of a turned
    head move with the nearest body surface, and the hair as far as it reaches (a single wide
    blur averaged the whole head's flow and re-sampled the photo's face edge into the cheek
    and hair; fading it out with the distance from the body stretched the hair's far side
    into a wing on a turn, so near_body fades it out only past the hair's reach)."""
    levels = [known]
    while min(levels[-1].shape[:2]) > 2:
        h, w = levels[-1].shape[:2]
        levels.append(cv2.resize(levels[-1], ((w + 1) // 2, (h + 1) // 2), interpolation=cv2.INTER_AREA))
    fill = None
    for k, lv in enumerate(reversed(levels)):
        c = lv[..., 2:3]
        own = lv[..., :2] / np.maximum(c, 1e-6)
        if fill is None:
            fill = own * (c > 0)
            continue
        # a coarse cell a quarter covered holds real flow; a frame pixel only its own
        trust = np.clip(c if k == len(levels) - 1 else 4 * c, 0, 1)
        up = cv2.resize(fill, (lv.shape[1], lv.shape[0]), interpolation=cv2.INTER_LINEAR)
        fill = trust * own + (1 - trust) * up
    return np.ascontiguousarray(fill, dtype=np.float32)


NEAR_SIGMA = 1 / 20     # of the frame's width: the body coverage's blur for near_body
HEAD_REACH = 0.4        # of the seen head's size (the root of its area): the head coverage's blur
HEAD_FULL = 0.02        # the blurred head coverage up to which the filled flow is full


def near_body(known: np.ndarray, head: np.ndarray | None = None) -> np.ndarray:
    """[H,W] how near the seen body each pixel is: its coverage blurred by NEAR_SIGMA of the frame
    (on a 4x smaller grid). warp_composite fades the filled flow out below 0.05 of it (past about
    twice NEAR_SIGMA from the body), so what the person mask holds away from the body (a held
    helmet, a chair) and the background stay where they are.

    head [H,W] bool: the seen head's pixels. Their coverage, blurred by HEAD_REACH of the head's
    own size, counts as nearness too, full up to HEAD_FULL of it (about twice HEAD_REACH from
    the head): the hair around a head reaches further than twice NEAR_SIGMA (a big hairdo, a
    close-up, a rough fit), and where the fade fell inside the hair, a turn stretched the hair
    between its old and new outline into a bun beside the head."""
    h, w = known.shape[:2]
    k = 4 if min(h, w) >= 64 else 1
    size = (max(1, w // k), max(1, h // k))
    small = cv2.resize(np.ascontiguousarray(known[..., 2]), size, interpolation=cv2.INTER_AREA)
    near = cv2.GaussianBlur(small, (0, 0), max(2.0, w * NEAR_SIGMA) / k)
    if head is not None and head.any():
        sigma = max(2.0, HEAD_REACH * float(np.sqrt(head.sum())))
        cov = cv2.resize(head.astype(np.float32), size, interpolation=cv2.INTER_AREA)
        near = np.maximum(near, cv2.GaussianBlur(cov, (0, 0), sigma / k) * (0.05 / HEAD_FULL))
    return np.ascontiguousarray(cv2.resize(near, (w, h), interpolation=cv2.INTER_LINEAR))


# parts that move as one layer: where two layers meet, one occludes the other (the chin over the
# neck, a hand over the torso) and the raster's edge is a stair of whole pixels
LAYERS = (("face_skin", "lips", LOWER_LIP, "mouth_interior", "teeth", LOWER_TEETH, "tongue", "eyes",
           "eyebrows", "scalp_hair", "ears"), ("neck", "torso", "legs_other"), ("upper_arms", "forearms"),
          ("hands",))


def _smooth_layer_edges(img: np.ndarray, part_index: np.ndarray, part_ids: dict[str, int]) -> np.ndarray:
    """Anti-aliased occlusion edges: the pixels on a boundary between two LAYERS take a 3x3
    Gaussian of their neighbourhood (compositor_kernels.smooth_edges)."""
    lut = np.zeros(256, np.uint8)
    for k, names in enumerate(LAYERS):
        for n in names:
            if n in part_ids:
                lut[part_ids[n]] = k + 1
    out = np.empty_like(img)
    kernels.smooth_edges(lut[part_index], img, out)
    return out


