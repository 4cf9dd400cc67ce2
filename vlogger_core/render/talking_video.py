"""The default talking-video path: motion -> posed body -> rasterized controls -> frames -> MP4.

`TalkingVideoRenderer` holds everything that is computed once per reference (reference vertex
positions in the photo, their visibility, the compositor's person mask and plate) and renders any
range of frames of a motion; `render_windows` yields frames window by window, so a 10-minute
video streams into the MP4 writer with flat memory.
"""
from __future__ import annotations

from typing import Iterator

import cv2
import numpy as np
import torch

from ..body.model import BodyModel
from ..body.reference import LIP_SEAL, ReferenceFit, closed_mouth_fit, lip_seal_close
from ..callbacks import Interrupt, Progress, check, report
from ..errors import VloggerError
from ..media import StreamingMP4Writer
from ..motion.params import SMPLX_INDEX, Motion, expression_names
from . import controls as control_maps
from . import rasterizer
from .compositor import (
    LOWER_LIP,
    LOWER_TEETH,
    composite_frame,
    prepare_reference,
    split_jaw_parts,
)


def output_size(fit: ReferenceFit, resolution: str) -> tuple[int, int]:
    """'256' / '512' -> square; 'photo' -> the photo's aspect with the long side at 512.
    Sizes are rounded to multiples of 8 (video codecs and the diffusion path need it)."""
    h, w = fit.image.shape[:2]
    if resolution in ("256", "512"):
        s = int(resolution)
        return s, s
    if resolution == "photo":
        scale = 512 / max(h, w)
        return max(8, int(round(w * scale / 8)) * 8), max(8, int(round(h * scale / 8)) * 8)
    raise VloggerError(f"resolution must be '256', '512' or 'photo', got {resolution!r}", "resolution",
                       "pick 256, 512 or photo")


# iBUG contours of the lips (corners 48 / 54): outer and inner, upper and lower, left to right
LIP_MARGIN = 0.3            # the inner edge's target: this share of the lip's height into the lip
CORNER_SHARE = 0.7          # the share of the inner points' error kept at the mouth's corners
LIP_CONTOURS = {"upper": ((48, 49, 50, 51, 52, 53, 54), (48, 61, 62, 63, 54)),
                "lower": ((48, 59, 58, 57, 56, 55, 54), (48, 67, 66, 65, 54))}


INNER_LIP = (60, 61, 62, 63, 64, 65, 66, 67)   # iBUG inner lip contour, corner to corner and back


def detected_points(fit: ReferenceFit) -> dict[int, list[float]]:
    """iBUG index -> the detected landmark (photo pixels) the fit used."""
    return dict(zip(fit.info.get("landmarks_used", []), fit.info.get("detected_landmarks", [])))


def photo_mouth_opening(fit: ReferenceFit) -> np.ndarray | None:
    """[Hp, Wp] uint8 mask of what the photo shows inside its lips (the detected inner-lip
    polygon: teeth, the dark corners), None without detected inner-lip landmarks."""
    det = detected_points(fit)
    if not all(i in det for i in INNER_LIP):
        return None
    h, w = fit.image.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    poly = np.round((np.array([det[i] for i in INNER_LIP]) - 0.5) * 16).astype(np.int32)
    cv2.fillPoly(mask, [poly], 255, cv2.LINE_AA, shift=4)
    return (mask > 64).astype(np.uint8)


def fit_lips_to_photo(src_xy: np.ndarray, body: BodyModel, fit: ReferenceFit, jaw_weight: np.ndarray) -> None:
    """Where the lip vertices sample the photo, corrected in place (src_xy [V,2]) so the mesh's
    inner lip edges sample the photo's own inner lip edges (the detected landmarks): the fitted
    lips of a smile showing teeth otherwise reach over the teeth, and a closed mouth would show
    a white line of teeth between its lips. Each lip vertex moves vertically by the inner edge's
    error times its place between the outer (0) and the inner (1) edge: the photo's own lips are
    stretched over the teeth. No-op without detected inner-lip landmarks (OpenCV / manual fits)."""
    det = detected_points(fit)
    if not all(i in det for i in (61, 62, 63, 65, 66, 67)):
        return
    lm = body.pose_fit(fit)["landmarks"][0].cpu()
    mesh = fit.camera.project(lm)[0].numpy() - 0.5                     # [51,2], iBUG 17..67
    at = lambda i: mesh[i - 17]
    lip_v = np.unique(body.faces[body.face_labels == body.part_id("lips")])
    for side, (outer, inner) in LIP_CONTOURS.items():
        v = lip_v[(jaw_weight[lip_v] > 0.5) == (side == "lower")]
        ox, oy = np.array([at(i) for i in outer]).T
        ix, iy = np.array([at(i) for i in inner]).T
        # the target: the photo's inner edge, LIP_MARGIN of the lip's height into the lip (bilinear
        # samples on the edge itself mix in the teeth)
        dy = np.array([det[i][1] - 0.5 for i in inner[1:-1]])
        dx = np.array([det[i][0] - 0.5 for i in inner[1:-1]])
        dy = dy + LIP_MARGIN * (np.interp(dx, *_sorted(ox, oy)) - dy)
        e = dy - iy[1:-1]
        # a smile shows its teeth almost to the corners: most of the error reaches them too
        err = np.concatenate([[CORNER_SHARE * e[0]], e, [CORNER_SHARE * e[-1]]])
        x, y = src_xy[v, 0], src_xy[v, 1]
        yo, yi = np.interp(x, *_sorted(ox, oy)), np.interp(x, *_sorted(ix, iy))
        w = np.clip((y - yo) / np.where(np.abs(yi - yo) < 1e-3, 1e-3, yi - yo), 0.0, 1.0)
        src_xy[v, 1] = y + np.interp(x, *_sorted(ix, err)) * w


# The most bytes one window's float32 frames may take: under glibc's largest mmap threshold
# (32 MB), so each window's arrays come back from the heap instead of fresh pages (at 512 with
# 48-frame windows, page faults were a third of the render's time: 6.4-10.6 s vs 4.3 s for 10 s).
WINDOW_BYTES = 24 << 20
# The seal (sealed) holds the lips together up to LIP_SEAL of jawOpen and lets go by SEAL_GONE:
# held at every opening, it took LIP_SEAL's worth of opening off every vowel (the detector on the
# output saw a mouth opened to 0.16 of its width as a thin line, lip_gap_r 0.85 -> 0.93 without)
SEAL_GONE = 3 * LIP_SEAL
# Lips cannot round while they smile: a rounded viseme (mouthPucker + mouthFunnel, ROUND_FULL at
# full) lets SMILE_RELEASE of the photo's own smile and dimples go, so an 'o' or 'w' narrows the
# mouth instead of opening a grin (the motion's own smile channels are left as they are).
ROUND_FULL = 0.5
SMILE_RELEASE = 0.9
SMILE_CHANNELS = ("mouthSmileLeft", "mouthSmileRight", "mouthDimpleLeft", "mouthDimpleRight")
# below this |cos| between a vertex normal and the photo's line of sight the photo saw the
# surface too edge-on to sample it exactly (about 75 degrees)
GRAZING = 0.25
NOT_SKIN = 0.5    # of the face's mean skin brightness: below it a skin vertex shows no skin
RIM = 0.02        # of the photo's size: how near the outline an edge-on vertex is "rim"


def _sorted(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    o = np.argsort(x)
    return x[o], y[o]


class TalkingVideoRenderer:
    def __init__(self, body: BodyModel, fit: ReferenceFit, width: int, height: int,
                 device: torch.device | str = "cpu"):
        control_maps.check_body_inputs(body, fit)
        self.body, self.fit, self.device = body, fit, torch.device(device)
        self.width, self.height = width, height
        self.camera = control_maps.camera_for(fit.camera, width, height)
        self.faces = np.ascontiguousarray(body.faces, dtype=np.int32)
        jaw = body.smplx.lbs_weights[:, SMPLX_INDEX["jaw"]].detach().cpu().numpy()
        labels, self.part_ids = split_jaw_parts(np.ascontiguousarray(body.face_labels, dtype=np.uint8),
                                                  {n: i for i, n in enumerate(body.part_names)},
                                                  jaw[self.faces].mean(1))
        self.labels = np.ascontiguousarray(labels, dtype=np.uint8)
        photo = fit.image.detach().cpu().numpy().astype(np.float32)
        ref_verts = body.pose_frames(fit, None, 0, 1, "cpu")
        # where every vertex lies in the photo (remap's pixel-index coordinates) and whether
        # the photo saw it
        pts = control_maps.project(fit.camera, ref_verts)
        self.src_xy = pts[0, :, :2] - 0.5
        frags = rasterizer.rasterize(pts, self.faces, fit.camera.width, fit.camera.height)
        self.ref_visible = rasterizer.vertex_visibility(pts, self.faces, frags)[0]
        silhouette = frags.tri_id[0] >= 0
        labels_ref = rasterizer.face_label_map(frags, self.labels)[0]
        means = {}
        for name, parts in (("lips", ("lips", LOWER_LIP)), ("face_skin", ("face_skin",)),
                            ("teeth", ("teeth", LOWER_TEETH))):   # teeth: where the photo shows them
            sel = np.isin(labels_ref, [self.part_ids[p] for p in parts if p in self.part_ids])
            if sel.sum() > 3:
                px = photo[sel]
                if name == "teeth":   # the teeth themselves, not the gaps and gums between them
                    px = px[px.sum(1) >= np.percentile(px.sum(1), 60)]
                means[name] = px.mean(0)
        # output pixel index -> photo pixel index (same camera pose, other intrinsics)
        a = fit.camera.focal / self.camera.focal
        (cpx, cpy), (cox, coy) = fit.camera.center, self.camera.center
        gx = (np.arange(width) + 0.5 - cox) * a + cpx - 0.5
        gy = (np.arange(height) + 0.5 - coy) * a + cpy - 0.5
        self.identity = np.stack(np.meshgrid(gx, gy), -1).astype(np.float32)
        self.reference = prepare_reference(photo, silhouette, width, height, means, self.identity,
                                           photo_mouth_opening(fit))
        # motion None renders the photo itself; a motion's frames sample the photo's own lips
        # for the mesh's lips (fit_lips_to_photo)
        self.attrs_photo = np.concatenate([self.src_xy, self.ref_visible[:, None]], 1).astype(np.float32)
        fit_lips_to_photo(self.src_xy, body, fit, jaw)
        # a smile shows its upper teeth; the mesh's lower teeth lie behind them in the photo and
        # would carry that row down with the jaw (a second row of upper teeth floating in the
        # mouth): in a moving mouth they are painted (their edges over the lip's shadow)
        moving_seen = self.ref_visible.copy()
        moving_seen[self.part_vertices(LOWER_TEETH)] = False
        # what the photo saw edge-on at the body's outline (the head's rim, an ear under the
        # hair) is a smear of few pixels, often of the hair or background beside it: a turn that
        # brings it into view stretches that smear (a seam across the cheek, a grey wash in the
        # hair); the fill carries the nearby surface's flow over it instead
        moving_seen &= ~self.rim_vertices(fit, ref_verts, silhouette)
        # the ears, too: the hair often hides them, and the photo's hair sampled by the ear's
        # own flow shows as dark specks beside the eyes when the head turns
        moving_seen[self.part_vertices("ears")] = False
        # and the face's skin where the photo shows something much darker than skin there (the
        # hair's shadow at a fit's edge): it too moves with the fill, not as a dark speck
        if "face_skin" in means:
            skin = self.part_vertices("face_skin")
            lum = control_maps.sample_bilinear(photo, self.src_xy[skin] + 0.5).mean(1)
            moving_seen[skin[lum < NOT_SKIN * float(means["face_skin"].mean())]] = False
        self.attrs = np.concatenate([self.src_xy, moving_seen[:, None]], 1).astype(np.float32)
        self.upper_teeth = self.part_vertices("teeth")      # they move with the skull alone
        # a motion moves the face from rest with the lips closed (the photo may show its teeth:
        # its own lips are stretched over them); the vertices above still sample the photo
        self.rest_fit = closed_mouth_fit(body, fit)
        self.seal = lip_seal_close(body, self.rest_fit)
        names = expression_names(body.expression_set)
        smiles = {names.index(n): float(self.rest_fit.expression[names.index(n)]) for n in SMILE_CHANNELS if n in names}
        self.rest_smile = {k: v for k, v in smiles.items() if v > 0}     # what a rounded viseme lets go

    def part_vertices(self, part: str) -> np.ndarray:
        """The vertices of one body part's triangles (none when the body has no such part)."""
        if part not in self.part_ids:
            return np.zeros(0, np.int64)
        return np.unique(self.faces[self.labels == self.part_ids[part]])

    def rim_vertices(self, fit: ReferenceFit, ref_verts: torch.Tensor, silhouette: np.ndarray) -> np.ndarray:
        """[V] bool: vertices the photo saw edge-on (GRAZING) within RIM of its size of the
        body's outline (not the lips' and eyes' own curling edges deeper in)."""
        inside = cv2.distanceTransform(silhouette.astype(np.uint8), cv2.DIST_L2, 3)
        h, w = silhouette.shape
        x = np.clip(np.round(self.src_xy[:, 0]).astype(int), 0, w - 1)
        y = np.clip(np.round(self.src_xy[:, 1]).astype(int), 0, h - 1)
        near_outline = inside[y, x] <= RIM * max(h, w)
        return near_outline & (control_maps.facing_camera(fit.camera, ref_verts, self.faces)[0] < GRAZING)

    def render(self, motion: Motion | None, start: int, stop: int) -> np.ndarray:
        """Frames [stop-start, H, W, 3] float32 0..1 of the motion from the closed-mouth rest
        state (motion None: the photo's own pose and expression, i.e. the photo)."""
        if motion is not None:
            motion = self.sealed(motion, start, stop)
            start, stop = 0, motion.num_frames
        verts = self.body.pose_frames(self.fit if motion is None else self.rest_fit, motion, start, stop, "cpu")
        pts = control_maps.project(self.camera, verts)
        frags = rasterizer.rasterize(pts, self.faces, self.width, self.height)
        attrs = rasterizer.interpolate(frags, self.attrs_photo if motion is None else self.attrs)  # [n,H,W,3]
        frames = np.empty((len(verts), self.height, self.width, 3), np.float32)
        for i in range(len(verts)):
            skull = None if motion is None else self.skull_affine(pts[i])
            frames[i] = composite_frame(self.reference, frags.tri_id[i], attrs[i], self.labels,
                                        self.part_ids, self.identity, closed=motion is not None, skull=skull)
        return frames

    def skull_affine(self, pts: np.ndarray) -> np.ndarray | None:
        """[2,3] output index -> photo index coordinates of the skull in one frame (pts [V,3],
        its projected vertices): the least-squares affine map of the upper teeth, which move
        with the skull alone (None without them)."""
        if len(self.upper_teeth) < 3:
            return None
        x = np.concatenate([np.asarray(pts[self.upper_teeth, :2], np.float64) - 0.5,
                            np.ones((len(self.upper_teeth), 1))], 1)
        m, *_ = np.linalg.lstsq(x, self.src_xy[self.upper_teeth].astype(np.float64), rcond=None)
        return m.T.astype(np.float32)

    @property
    def fitting_window(self) -> int:
        """The most frames a window renders at this size (WINDOW_BYTES)."""
        return max(1, WINDOW_BYTES // (self.width * self.height * 3 * 4))

    def sealed(self, motion: Motion, start: int, stop: int) -> Motion:
        """Frames start..stop of the motion with soft lips: below LIP_SEAL of jawOpen the lips
        stay together (mouthClose raised in proportion, self.seal at LIP_SEAL, let go again by
        SEAL_GONE), so a settling jaw in a pause or a bilabial's small opening shows closed
        lips while a vowel opens them by all of its jaw; and rounded visemes
        release the photo's smile (SMILE_RELEASE)."""
        m = motion.slice(max(0, start), min(motion.num_frames, stop))
        names = expression_names(motion.expression_set)
        seal = self.seal > 0 and "jawOpen" in names and "mouthClose" in names
        release = bool(self.rest_smile) and "mouthPucker" in names and "mouthFunnel" in names
        if not seal and not release:
            return m
        expr = m.expression.clone()
        if seal:
            jaw = expr[:, names.index("jawOpen")]
            hold = (jaw.clamp(0, LIP_SEAL) / LIP_SEAL) * ((SEAL_GONE - jaw) / (SEAL_GONE - LIP_SEAL)).clamp(0, 1)
            expr[:, names.index("mouthClose")] += self.seal * hold
        if release:       # independent of the seal: a photo whose lips already meet smiles too
            rounded = (expr[:, names.index("mouthPucker")] + expr[:, names.index("mouthFunnel")]).clamp_min(0)
            give = SMILE_RELEASE * (rounded / ROUND_FULL).clamp(max=1.0)
            for k, smile in self.rest_smile.items():
                expr[:, k] -= smile * give
        return Motion(m.fps, m.expression_set, expr, m.rot6d, list(m.joints))

    def render_windows(self, motion: Motion, window: int = 48, progress: Progress = None,
                       interrupt: Interrupt = None, start: int = 0,
                       stop: int | None = None) -> Iterator[np.ndarray]:
        """Frames start..stop (None: to the motion's end), `window` frames at a time (at most
        fitting_window)."""
        control_maps.check_body_inputs(self.body, self.fit, motion)
        window = max(1, min(window, self.fitting_window))
        n = motion.num_frames
        stop = n if stop is None else min(n, stop)
        if not 0 <= start < stop:
            raise VloggerError(f"frame {start} is past the motion's {n} frames", "start",
                               f"start below {n}")
        for s in range(start, stop, window):
            check(interrupt)
            e = min(stop, s + window)
            yield self.render(motion, s, e)
            report(progress, e - start, stop - start)

    def render_range(self, motion: Motion, start: int = 0, stop: int | None = None, window: int = 48,
                     progress: Progress = None, interrupt: Interrupt = None) -> np.ndarray:
        """Frames start..stop as one array [n, H, W, 3], rendered window by window into it."""
        stop = motion.num_frames if stop is None else min(motion.num_frames, stop)
        out = np.empty((max(0, stop - start), self.height, self.width, 3), np.float32)
        at = 0
        for frames in self.render_windows(motion, window, progress, interrupt, start, stop):
            out[at:at + len(frames)] = frames
            at += len(frames)
        return out


def write_talking_video(path: str, renderer: TalkingVideoRenderer, motion: Motion,
                        audio: torch.Tensor | None, sample_rate: int | None, window: int = 48,
                        progress: Progress = None, interrupt: Interrupt = None) -> str:
    """Render `motion` window by window straight into an MP4 with the speech muxed in."""
    control_maps.check_body_inputs(renderer.body, renderer.fit, motion)
    with StreamingMP4Writer(path, motion.fps, renderer.width, renderer.height, audio,
                            sample_rate) as writer:
        for frames in renderer.render_windows(motion, window, progress, interrupt):
            writer.write(frames)
    return str(path)
