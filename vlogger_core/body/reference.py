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

Photos it refuses or notes (info["warnings"]): several people: the person with the largest face
is fitted (the detectors see a view of that person with the other faces painted over; crop the
photo to fit another); a face under MIN_FACE_PX tall is refused; a face cut by the edge is fitted
with a warning; RGBA (or a photo with its alpha mask) is composited over the artist's background
colour (default white; 'border': the photo's border colour), grayscale repeated; a large photo is detected on a
copy of at most MAX_DETECT_SIDE pixels (body/detect.py).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..motion.params import (
    SMPLX_INDEX,
    axis_angle_to_matrix,
    expression_names,
    matrix_to_axis_angle,
)
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
    face_boxes,
    person_view,
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

    def preview(self, max_side: int = 2048) -> "ReferenceFit":
        """The same fit on a copy of the photo whose long side is at most max_side (camera and
        the detected points in info scaled with it), for overlays and the editor: drawing a
        6000x6000 photo's overlay at full size takes gigabytes. Small photos: the fit itself."""
        s = max_side / max(self.width, self.height)
        if s >= 1:
            return self
        import cv2

        w, h = max(1, round(self.width * s)), max(1, round(self.height * s))
        img = cv2.resize(self.image.detach().cpu().numpy(), (w, h), interpolation=cv2.INTER_AREA)
        info = dict(self.info)
        for k in ("detected_landmarks", "face_box"):
            if k in info:
                info[k] = (np.asarray(info[k], np.float64) * s).tolist()
        if "detected_joints" in info:
            info["detected_joints"] = {j: [x * s, y * s] for j, (x, y) in info["detected_joints"].items()}
        return replace(self, image=torch.from_numpy(img), camera=self.camera.resized(w, h), info=info)


DETECTORS = ["auto", *BACKENDS, "opencv", "manual"]
IMAGE_FIX = "connect an RGB photo of a person, at least 64x64 pixels"
MIN_FACE_PX = 40          # the face's height in the photo below which the fit is refused
# What "auto" does when it finds no face at all (a cup, a cat, a wall): refuse, or place a centred
# default body and say so in info["warnings"].
NO_PERSON = ["refuse", "warn"]
NO_PERSON_FIX = ("use a photo of a person whose face looks roughly at the camera (at least "
                 f"{MIN_FACE_PX} px tall), or set no_person to 'warn' to place a default body anyway")
SMALL_FACE_FIX = ("use a photo in which the face is larger: crop it closer to the person (head and "
                  "shoulders filling most of the picture) or use a higher-resolution photo")
DETECTOR_FIX = ("use a photo with a clearly visible face, or detector 'opencv' / 'manual' and the scale / "
                "offset overrides")


def background_colour(text: str) -> tuple[float, float, float] | None:
    """'border' -> None (the photo's border colour, else white); 'white', 'black', 'grey' or
    '#rrggbb' -> RGB 0..1; anything else: a FitInputError blaming 'background'."""
    named = {"white": "#ffffff", "black": "#000000", "grey": "#808080", "gray": "#808080"}
    t = str(text).strip().lower()
    if t == "border":
        return None
    t = named.get(t, t)
    if len(t) == 7 and t[0] == "#" and all(c in "0123456789abcdef" for c in t[1:]):
        return tuple(int(t[i:i + 2], 16) / 255 for i in (1, 3, 5))
    raise FitInputError(f"{text!r} is not a colour", "background",
                        "use white, border, black, grey or a hex colour like #20a0ff")


def composite(rgb: torch.Tensor, alpha: torch.Tensor, background: str = "white") -> torch.Tensor:
    """RGB [H,W,3] over a plain colour where alpha [H,W] (1 = opaque) is below 1. 'border': the mean
    colour of the opaque pixels along the photo's edge when at least a tenth of the edge is
    opaque (the photo's own border), else white."""
    colour = background_colour(background)
    if colour is None:
        edge = torch.cat([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
        ea = torch.cat([alpha[0], alpha[-1], alpha[:, 0], alpha[:, -1]])
        solid = ea > 0.5
        colour = tuple(edge[solid].mean(0).tolist()) if solid.float().mean() >= 0.1 else (1.0, 1.0, 1.0)
    a = alpha.clamp(0, 1)[..., None]
    return rgb * a + torch.tensor(colour, dtype=rgb.dtype) * (1 - a)


def prepare_image(image, alpha=None, background: str = "white") -> torch.Tensor:
    """Any of [H,W], [H,W,1|3|4], [1,H,W,C] (torch or numpy, 0..1 floats or uint8) -> [H,W,3]
    float 0..1. Grayscale is repeated; the photo's alpha (its 2nd/4th channel, or `alpha`
    [H,W] / [1,H,W], 1 = opaque) is composited over `background` (see composite)."""
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
    a = None
    if c in (2, 4):   # grey+alpha / RGBA
        a, t = t[..., -1], t[..., :-1]
    if t.shape[-1] == 1:
        t = t.repeat(1, 1, 3)
    if alpha is not None:
        a = torch.as_tensor(alpha).float()
        a = a[0] if a.ndim == 3 else a
        if a.shape != t.shape[:2]:
            raise FitInputError(f"the alpha mask is {tuple(a.shape)}, the photo {tuple(t.shape[:2])}",
                                "alpha", "connect the MASK of the same photo (LoadImage's second output)")
    if a is not None:
        t = composite(t, a, background)
    h, w = t.shape[:2]
    if h < 16 or w < 16:
        raise FitInputError(f"the photo is only {w}x{h} pixels; at least 16x16 is needed "
                            f"(a face needs about 64x64 to be detected)", "image", IMAGE_FIX)
    lo, hi = torch.aminmax(t)            # (NaN propagates; no full-size temporaries for a large photo)
    if not bool(torch.isfinite(lo) & torch.isfinite(hi)):
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


def _detect(img: torch.Tensor, detector: str, info: dict, no_person: str = "refuse"
            ) -> tuple[str, dict, dict]:
    """(detector used, face targets, joint targets) in the photo's pixels, by the rules of
    `detector` (module docstring); warnings and what was found go into `info`."""
    rgb, s = detection_copy(img)
    info["detection_scale"] = s
    view, (ox, oy) = rgb, (0, 0)             # several people: the view of the largest face's
    if detector != "manual":
        faces = face_boxes(rgb)
        info["faces_found"] = len(faces)
        if len(faces) > 1:
            view, (ox, oy) = person_view(rgb, faces)
            x, y, w, h = (round(v * s) for v in faces[0])
            info["warnings"].append(
                f"{len(faces)} faces in the photo: fitted the person with the largest face (box at "
                f"x={x}, y={y}, {w}x{h} px); to fit another person, crop the photo to them (e.g. "
                "an ImageCrop node before this one)")
    if detector in ("auto", *BACKENDS):
        problem = backend_problem(detector) if detector in BACKENDS else None
        if problem:
            raise FitInputError(f"the {detector} detector cannot run: {problem}", "detector", BACKEND_FIX[detector])
        backend = detector if detector in BACKENDS else default_backend()
        if backend is not None:
            lms = detect(view[None], backend=backend).moved(ox, oy)
            found = lms.targets(0, s)
            if found is not None:
                ft, jt = found
                pts = lms.face[0][~np.isnan(lms.face[0, :, 0])] * s
                check_face(float(pts[:, 1].max() - pts[:, 1].min()), ft, img.shape[1], img.shape[0], info)
                info["pose_joints_used"] = sorted(k for k in jt if k.split("_", 1)[-1] not in FINGERS)
                info["hands_used"] = sorted(side for side in lms.hands if lms.hand_found(side)[0])
                return backend, ft, jt
            if detector == backend:
                raise FitInputError(f"the {backend} detector found no face in the photo", "detector", DETECTOR_FIX)
            info["warnings"].append(f"the {backend} detector found no face; trying OpenCV")
        else:
            info["warnings"].append(f"no landmark detector can run ({backend_problem(BACKENDS[0])}); "
                                    "using OpenCV")
    box = face_box(view) if detector in ("auto", "opencv") else None
    if box is not None:
        box, used = ((box[0] + ox) * s, (box[1] + oy) * s, box[2] * s, box[3] * s), "opencv"
        check_face(box[3], {}, img.shape[1], img.shape[0], info)
    elif detector == "opencv":
        raise FitInputError("OpenCV found no face in the photo", "detector",
                            "use a photo with a frontal face, or detector 'manual' and the scale / offset overrides")
    else:                                  # manual, or auto with nothing found
        if detector == "auto" and no_person == "refuse":
            raise FitInputError("no person found in the photo (no face for the landmark detector "
                                "or OpenCV)", "image", NO_PERSON_FIX)
        if detector == "auto":
            info["warnings"].append(f"no face found (a face must look roughly at the camera and be "
                                    f"at least {MIN_FACE_PX} px tall); placed a centred default body "
                                    "(adjust it with scale / offset_x / offset_y)")
        box, used = _default_box(img.shape[1], img.shape[0]), "manual"
    info["face_box"] = [float(v) for v in box]
    return used, box_targets(box), {}


def check_face(height_px: float, face_targets: dict, width: int, height: int, info: dict) -> None:
    """Refuse a face under MIN_FACE_PX tall; note in info a face cut by the photo's edge (its
    points beyond the edge are where the landmark model extrapolates them)."""
    if height_px < MIN_FACE_PX:
        raise FitInputError(f"the face is only {height_px:.0f} px tall in the photo; the fit needs at "
                            f"least {MIN_FACE_PX} px", "image", SMALL_FACE_FIX)
    out = sum(not (0 <= x < width and 0 <= y < height) for x, y, _ in face_targets.values())
    if out:
        info["face_points_outside"] = out
        info["warnings"].append(f"the face is cut by the photo's edge ({out} of its {len(face_targets)} "
                                "fitted points lie outside, placed where the landmark model extrapolates "
                                "them); a photo showing the whole face fits better")


def fit_reference(image, body, detector: str = "auto", overrides: FitOverrides | None = None,
                  device="cpu", iters: tuple[int, int] = PHOTO_ITERS, no_person: str = "refuse",
                  alpha=None, background: str = "white") -> ReferenceFit:
    """Estimate camera, shape, orientation, translation, reference pose and expression.
    `no_person`: what "auto" does with a photo in which it finds no face (NO_PERSON);
    `alpha` [H,W] (1 = opaque) and `background`: a transparent photo's matte (prepare_image)."""
    if detector not in DETECTORS:
        raise FitInputError(f"unknown detector {detector!r}", "detector", f"choose one of {DETECTORS}")
    if no_person not in NO_PERSON:
        raise FitInputError(f"unknown no_person {no_person!r}", "no_person", f"choose one of {NO_PERSON}")
    background_colour(background)                       # a bad colour is refused up front
    ov = overrides or FitOverrides()
    for name in ("scale", "offset_x", "offset_y", "rotation", "fov"):
        if not math.isfinite(getattr(ov, name)):
            raise FitInputError(f"{name} is {getattr(ov, name)}, not a finite number", name,
                                f"set {name} to a number (its default is {getattr(FitOverrides(), name)})")
    if not (0.05 <= ov.scale <= 20):
        raise FitInputError(f"scale {ov.scale} is outside 0.05..20", "scale", "use a scale between 0.05 and 20")
    if ov.fov and not (5.0 <= ov.fov <= 150.0):
        raise FitInputError(f"fov {ov.fov} deg is outside 5..150 (0 = automatic)", "fov",
                            "use 0 (automatic) or a value between 5 and 150")
    img = prepare_image(image, alpha, background)
    H, W = img.shape[:2]
    info: dict = {"warnings": []}
    t0 = time.time()
    used, ft, jt = _detect(img, detector, info, no_person)
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


# ARKit channels that part the lips (the photo's smile, brows and eyes stay as fitted)
LIP_PARTING = ("jawOpen", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft",
               "mouthUpperUpRight", "mouthFunnel", "mouthStretchLeft", "mouthStretchRight",
               "mouthShrugUpper", "mouthRollLower", "mouthRollUpper")
# inner-lip landmarks (iBUG upper 61, 62, 63 / lower 67, 66, 65) in the body's static set (iBUG 17..)
INNER_LIP_UPPER, INNER_LIP_LOWER = (61 - 17, 62 - 17, 63 - 17), (67 - 17, 66 - 17, 65 - 17)
CLOSE_STEPS = 11          # mouthClose values tried (0..1, steps of 0.1) to seal the lips


def inner_lip_gap(body, fit: ReferenceFit, expression: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """[B] the mesh's inner-lip gap in the photo (pixels, + = open) for expressions [B,E] and
    reference poses [B,55,3,3] at the fit's placement."""
    B = expression.shape[0]
    dev = body.device
    with torch.no_grad():
        lm = body.forward(fit.betas[None].to(dev).expand(B, -1), fit.global_orient[None].to(dev).expand(B, -1),
                          fit.transl[None].to(dev).expand(B, -1), pose.to(dev), expression.to(dev))["landmarks"]
    uv = fit.camera.project(lm.cpu())[0][..., 1]
    return (uv[:, list(INNER_LIP_LOWER)] - uv[:, list(INNER_LIP_UPPER)]).mean(-1)


def sealing_close(body, fit: ReferenceFit, expr: torch.Tensor, pose: torch.Tensor, k: int,
                  base: float) -> tuple[float, float]:
    """(the smallest mouthClose (channel k) in base..base+1 that seals the mesh's inner lips, the
    gap left in pixels) for expression [E] and pose [55,3,3]; the least open one if none seals."""
    cand = expr[None].repeat(CLOSE_STEPS, 1)
    cand[:, k] = base + torch.linspace(0, 1, CLOSE_STEPS)
    gap = inner_lip_gap(body, fit, cand, pose[None].expand(CLOSE_STEPS, -1, -1, -1))
    sealed = torch.nonzero(gap <= 0.0)
    i = int(sealed[0]) if len(sealed) else int(gap.argmin())
    return float(cand[i, k]), float(gap[i])


def closed_mouth_fit(body, fit: ReferenceFit) -> ReferenceFit:
    """The fit's rest state with the lips closed: what a talking video's motion is added to.

    The photo's expression (smile, eyes, brows) is kept; what parts its lips (jaw joint, jawOpen,
    the lip raisers / lowerers, LIP_PARTING) is set to rest, and mouthClose is chosen (a scan of
    0..1) so the mesh's inner lips meet: a photo that shows its teeth still rests with its lips
    together (the renderer stretches the photo's own lips over the teeth). The fit itself is not
    changed (its vertices are where the photo shows them: the renderer samples the photo there)."""
    names = expression_names(body.expression_set)
    expr = fit.expression.detach().clone().float()
    for n in LIP_PARTING:
        if n in names:
            expr[names.index(n)] = 0.0
    pose = fit.reference_pose.detach().clone().float()
    pose[SMPLX_INDEX["jaw"]] = body.rest_pose(1)[0, SMPLX_INDEX["jaw"]].cpu()
    out = copy.copy(fit)
    out.info = dict(fit.info)
    if "mouthClose" in names:
        k = names.index("mouthClose")
        expr[k], out.info["rest_lip_gap_px"] = sealing_close(body, fit, expr, pose, k, 0.0)
    out.expression, out.reference_pose = expr, pose
    return out


LIP_SEAL = 0.12           # jawOpen up to which soft lips stay together (the jaw opens a little first)
JAW_RAD_PER_OPEN = 0.32   # the motion's jaw joint pitch per jawOpen (motion/synthetic/priors.JAW_MAX_RAD)


def lip_seal_close(body, rest: ReferenceFit, jaw_open: float = LIP_SEAL) -> float:
    """The mouthClose that keeps the lips of `rest` (closed_mouth_fit) together when the jaw
    opens by jaw_open (jawOpen and the jaw joint's matching pitch): added in proportion below
    jaw_open, it makes small jaw openings (a pause's settling jaw, a bilabial's) keep the lips
    shut, as real lips do. 0 for a body without jawOpen / mouthClose."""
    names = expression_names(body.expression_set)
    if "jawOpen" not in names or "mouthClose" not in names:
        return 0.0
    expr = rest.expression.detach().clone().float()
    expr[names.index("jawOpen")] += jaw_open
    pose = rest.reference_pose.detach().clone().float()
    pose[SMPLX_INDEX["jaw"]] = pose[SMPLX_INDEX["jaw"]] @ axis_angle_to_matrix(
        torch.tensor([JAW_RAD_PER_OPEN * jaw_open, 0.0, 0.0]))
    k = names.index("mouthClose")
    base = float(expr[k])
    return sealing_close(body, rest, expr, pose, k, base)[0] - base
