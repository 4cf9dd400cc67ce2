"""Fit the body to the reference photo: camera (diagonal FOV), shape, orientation, translation,
upper-body reference pose and expression, so the body's silhouette and face align with the photo.

Detectors:
- "mediapipe": face mesh (478), pose (33) and hand (21 per hand) landmarks; the body is fitted
  by minimising the 2D reprojection error of its joints (fingers too, for a visible hand) and
  face landmarks (torch Adam, with priors); the diagonal FOV is estimated by a scan.
- "opencv":    a face box from OpenCV's shipped Haar cascade; the body is placed from the box
  (scale from the face height, head at the box, torso below, facing the camera).
- "manual":    no detection: a centred head-and-shoulders framing.
- "auto":      mediapipe if importable and it finds a person, else opencv, else manual (with a
  warning in info).
The artist's overrides (scale, offset_x, offset_y, rotation, fov) apply on top of every detector.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import VloggerError
from ..motion.params import SMPLX_INDEX, axis_angle_to_matrix, matrix_to_axis_angle
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

DEFAULT_FOV = 45.0   # diagonal degrees when not overridden: a typical portrait lens

# mediapipe face-mesh index of each iBUG-68 point (the usual correspondence); the body's static
# landmarks are iBUG 17..67.
MP_FOR_IBUG68 = [
    162, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454, 389,
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    168, 197, 5, 4, 75, 97, 2, 326, 305,
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,
    78, 82, 13, 312, 308, 317, 14, 87,
]
MP_STATIC = MP_FOR_IBUG68[17:]            # 51 points, in the body's landmark order
# mediapipe pose landmark -> SMPL-X joint (mediapipe's left = the person's left, like SMPL-X).
MP_POSE_JOINTS = {11: "left_shoulder", 12: "right_shoulder", 13: "left_elbow", 14: "right_elbow",
                  15: "left_wrist", 16: "right_wrist", 23: "left_hip", 24: "right_hip"}
# iBUG points the OpenCV box path places (eye corners, nose tip, mouth corners), in the Haar
# box's normalised coordinates ((x - x0) / w, (y - y0) / h): a frontal face's layout, measured
# with mediapipe inside OpenCV's box on the shipped photo and made left/right symmetric (a box
# cannot tell a face's asymmetry).
BOX_LAYOUT = {36: (0.205, 0.385), 39: (0.395, 0.395), 42: (0.605, 0.395), 45: (0.795, 0.385),
              30: (0.50, 0.62), 48: (0.285, 0.78), 54: (0.715, 0.78)}
# Joints whose local rotation the fit may change (upper body + head); arms start hanging down.
FIT_JOINTS = ["spine1", "spine2", "spine3", "neck", "head", "left_collar", "right_collar",
              "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
              "right_wrist", "jaw"]
# mediapipe hand landmark -> SMPL-X finger joint (per side); the wrist comes from the pose.
MP_HAND_JOINTS = {0: "wrist", 1: "thumb1", 2: "thumb2", 3: "thumb3", 5: "index1", 6: "index2",
                  7: "index3", 9: "middle1", 10: "middle2", 11: "middle3", 13: "ring1",
                  14: "ring2", 15: "ring3", 17: "pinky1", 18: "pinky2", 19: "pinky3"}
FINGERS = [f"{f}{k}" for f in ("index", "middle", "pinky", "ring", "thumb") for k in (1, 2, 3)]
HAND_WEIGHT = 0.4        # per hand point; hand points are many and small, shoulders matter more
ARMS_DOWN_DEG = 72.0
# FOV estimation (mediapipe path, shoulders visible): the fit is run at each of these diagonal
# FOVs and the reprojection loss plus a weak prior towards DEFAULT_FOV is minimised over them
# (a parabola in log-FOV through the best three, then a final fit there). Perspective is a weak
# cue in one photo (the face sits nearer than the shoulders, the nose nearer than the ears): a
# joint gradient descent on the focal length stalls (tried), the scan does not. Coarse: on
# synthetic landmarks 20 / 45 / 70 degree cameras come out ordered, not exact.
FOV_GRID = (20.0, 32.0, 50.0, 80.0)
FOV_PRIOR = 4e-4
MAX_DETECT_SIDE = 1280


class FitInputError(VloggerError):
    """A photo the fit cannot use (the node turns it into an artist-facing message)."""


# ----------------------------------------------------------------------------- image handling
def prepare_image(image) -> torch.Tensor:
    """Any of [H,W], [H,W,1|3|4], [1,H,W,C] (torch or numpy, 0..1 floats or uint8) -> [H,W,3]
    float 0..1. Grayscale is repeated, alpha dropped (composited over white)."""
    t = image if torch.is_tensor(image) else torch.from_numpy(np.array(image))
    if t.dtype == torch.uint8:
        t = t.float() / 255.0
    t = t.float()
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise FitInputError(f"expected one photo, got a batch of {t.shape[0]}")
        t = t[0]
    if t.ndim == 2:
        t = t[..., None]
    if t.ndim != 3 or t.shape[-1] not in (1, 2, 3, 4):
        raise FitInputError(f"expected an image [H,W,C] with 1, 3 or 4 channels, got shape "
                            f"{tuple(t.shape)}")
    c = t.shape[-1]
    if c in (2, 4):   # grey+alpha / RGBA: composite over white
        a = t[..., -1:].clamp(0, 1)
        t = t[..., :-1] * a + (1 - a)
    if t.shape[-1] == 1:
        t = t.repeat(1, 1, 3)
    h, w = t.shape[:2]
    if h < 16 or w < 16:
        raise FitInputError(f"the photo is only {w}x{h} pixels; at least 16x16 is needed "
                            f"(a face needs about 64x64 to be detected)")
    if not torch.isfinite(t).all():
        raise FitInputError("the photo contains NaN or infinite values")
    return t.clamp(0, 1).contiguous()


def _detection_copy(img: torch.Tensor) -> tuple[np.ndarray, float]:
    """uint8 RGB for the detectors, downscaled so the long side <= MAX_DETECT_SIDE; and the
    factor that maps its pixel coordinates back to the photo's."""
    import cv2

    a = (img.cpu().numpy() * 255 + 0.5).astype(np.uint8)
    h, w = a.shape[:2]
    s = max(h, w) / MAX_DETECT_SIDE
    if s > 1:
        a = cv2.resize(a, (max(1, round(w / s)), max(1, round(h / s))),
                       interpolation=cv2.INTER_AREA)
        return a, s
    return a, 1.0


# ----------------------------------------------------------------------------- detectors
def mediapipe_available() -> bool:
    try:
        import mediapipe as mp  # noqa: F401
        return hasattr(mp, "solutions")
    except Exception:
        return False


def detect_mediapipe(rgb: np.ndarray) -> dict | None:
    """Face mesh (478) + pose (33) landmarks in pixels of `rgb`; None if no face was found."""
    import mediapipe as mp

    h, w = rgb.shape[:2]
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                         refine_landmarks=True,
                                         min_detection_confidence=0.5) as fm:
        res = fm.process(rgb)
    if not res.multi_face_landmarks:
        return None
    face = np.array([[p.x * w, p.y * h] for p in res.multi_face_landmarks[0].landmark])
    pose = None
    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as pm:
        pr = pm.process(rgb)
    if pr.pose_landmarks:
        pose = np.array([[p.x * w, p.y * h, p.visibility] for p in pr.pose_landmarks.landmark])
    return {"face": face, "pose": pose, "hands": _detect_hands(rgb, pose)}


def _detect_hands(rgb: np.ndarray, pose: np.ndarray | None) -> dict[str, np.ndarray]:
    """{'left'/'right': [21,2] pixels} for the hands mediapipe finds. A hand is the person's
    left or right by the nearer pose wrist (mediapipe's handedness label assumes a mirrored
    selfie, so for an ordinary photo it is swapped: used only without a pose)."""
    import mediapipe as mp

    h, w = rgb.shape[:2]
    with mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=2,
                                  min_detection_confidence=0.5) as hm:
        res = hm.process(rgb)
    found: dict[str, np.ndarray] = {}
    for lms, hd in zip(res.multi_hand_landmarks or [], res.multi_handedness or []):
        pts = np.array([[p.x * w, p.y * h] for p in lms.landmark])
        if pose is not None:
            d = {side: np.linalg.norm(pts[0] - pose[i, :2]) for side, i in (("left", 15), ("right", 16))}
            side = min(d, key=d.get)
        else:
            side = "right" if hd.classification[0].label == "Left" else "left"
        if side not in found:
            found[side] = pts
    return found


def detect_opencv(rgb: np.ndarray) -> tuple[float, float, float, float] | None:
    """The largest frontal face box (x, y, w, h) from OpenCV's shipped Haar cascades."""
    import cv2

    gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    m = max(24, min(gray.shape) // 12)
    for name in ("haarcascade_frontalface_default.xml", "haarcascade_frontalface_alt2.xml"):
        det = cv2.CascadeClassifier(cv2.data.haarcascades + name)
        boxes = det.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(m, m))
        if len(boxes):
            x, y, bw, bh = max(boxes, key=lambda b: b[2] * b[3])
            return float(x), float(y), float(bw), float(bh)
    return None


# ----------------------------------------------------------------------------- the optimiser
def _rest_fit_pose(body) -> torch.Tensor:
    """[55,3,3] start pose: the body's rest pose with the arms hanging down at the sides."""
    aa = body.pose_mean.clone()
    aa[SMPLX_INDEX["left_shoulder"]] = torch.tensor([0, 0, -math.radians(ARMS_DOWN_DEG)])
    aa[SMPLX_INDEX["right_shoulder"]] = torch.tensor([0, 0, math.radians(ARMS_DOWN_DEG)])
    aa[SMPLX_INDEX["left_elbow"]] = torch.tensor([0, -0.15, 0])
    aa[SMPLX_INDEX["right_elbow"]] = torch.tensor([0, 0.15, 0])
    return axis_angle_to_matrix(aa.to(body.device))


def _optimise(body, cam: PerspectiveCamera, face_targets: dict[int, tuple], joint_targets: dict,
              free_pose: bool, iters: tuple[int, int], device) -> dict:
    """Minimise 2D reprojection error of landmarks (index into the body's landmark list ->
    (x, y, weight)) and joints (SMPL-X name -> (x, y, weight)) with priors.
    Returns the fitted tensors and the final per-landmark pixel errors."""
    return _optimise_batch(body, cam, [cam.focal], face_targets, joint_targets, free_pose,
                           iters, device)[0]


def _optimise_batch(body, cam: PerspectiveCamera, focals: list[float], face_targets: dict,
                    joint_targets: dict, free_pose: bool, iters: tuple[int, int], device) -> list[dict]:
    """_optimise for several focal lengths of `cam` at once: one independent fit per focal
    (Adam is element-wise, so the summed loss of a batch optimises each member on its own),
    for about the cost of one: the fit is hundreds of tiny ops, dominated by overhead."""
    dev = body.device
    f32 = dict(device=dev, dtype=torch.float32)
    B = len(focals)
    lmk_vid, lmk_w = body.landmark_vertex_weights()
    uniq, inv = torch.unique(lmk_vid.reshape(-1), return_inverse=True)
    inv = inv.reshape(-1, 3)
    base = _rest_fit_pose(body).to(**f32)
    # a hand seen in the photo also frees its fingers (with the same small-rotation prior)
    hands = [side for side in ("left", "right") if f"{side}_index1" in joint_targets]
    fit_joints = FIT_JOINTS + [f"{side}_{f}" for side in hands for f in FINGERS]
    jidx = torch.tensor([SMPLX_INDEX[j] for j in fit_joints], device=dev)
    L = sorted(face_targets)
    lt = torch.tensor([face_targets[k][:2] for k in L], **f32)
    lw = torch.tensor([face_targets[k][2] for k in L], **f32)
    J = sorted(joint_targets)
    jt = torch.tensor([joint_targets[k][:2] for k in J], **f32).reshape(-1, 2)
    jw = torch.tensor([joint_targets[k][2] for k in J], **f32)
    jsel = torch.tensor([SMPLX_INDEX[k] for k in J], device=dev, dtype=torch.long)
    Ltensor = torch.tensor(L, device=dev, dtype=torch.long)
    K = cam.intrinsics().to(**f32)
    Rc = cam.rotation.to(**f32)
    fb = torch.tensor(focals, **f32)[:, None, None]         # [B,1,1]

    def project(p):                                         # [B,K,3] -> [B,K,2]
        pc = p @ Rc.T
        z = pc[..., 2:3].clamp_min(1e-3)
        return pc[..., :2] / z * fb + K[:2, 2]

    # --- initial translation: depth from the landmarks' spread, position from their centre
    betas = torch.zeros(B, body.num_betas, **f32)
    expr = torch.zeros(B, body.num_expression, **f32)
    orient = torch.zeros(B, 3, **f32)
    with torch.no_grad():
        pts, _ = body.posed_points(uniq, betas[:1], orient[:1], torch.zeros(1, 3, **f32),
                                   base[None], expr[:1])
        lm = (pts[0][inv] * lmk_w[..., None]).sum(1)[Ltensor]
        spread3 = (lm[:, :2] - lm[:, :2].mean(0)).norm(dim=1).mean()
        spread2 = (lt - lt.mean(0)).norm(dim=1).mean().clamp_min(1.0)
        c2 = (lt * lw[:, None]).sum(0) / lw.sum()
        c3 = (lm * lw[:, None]).sum(0) / lw.sum()
        transl0 = []
        for f in focals:
            depth = float(f * spread3 / spread2)
            # camera ray through c2 at that depth, in world coordinates (camera at the origin)
            ray_cam = torch.tensor([(c2[0] - K[0, 2]) / f, (c2[1] - K[1, 2]) / f, 1.0], **f32) * depth
            transl0.append(Rc.T @ (ray_cam - cam.translation.to(**f32)) - c3)
    transl = torch.stack(transl0).clone().requires_grad_(True)
    orient = orient.clone().requires_grad_(True)
    betas = betas.clone().requires_grad_(True)
    expr = expr.clone().requires_grad_(True)
    dpose = torch.zeros(B, len(fit_joints), 3, **f32, requires_grad=True)
    n_body = max(1.0, float(sum(1 for k in J if k.split("_", 1)[-1] not in FINGERS)))
    scale = float(spread2) * 2.0     # normalise pixel errors by the face size
    arkit = body.expression_set == "arkit52"

    def loss_fn():
        R = axis_angle_to_matrix(dpose)
        pose = base[None].repeat(B, 1, 1, 1)
        pose[:, jidx] = base[jidx][None] @ R
        pts, joints = body.posed_points(uniq, betas, orient, transl, pose, expr, bool(hands))
        lm = (pts[:, inv] * lmk_w[None, ..., None]).sum(2)[:, Ltensor]
        e_f = ((project(lm) - lt) / scale).pow(2).sum(-1)
        loss = (lw * e_f).sum(-1) / lw.sum().clamp_min(1e-6)
        if len(J):
            e_j = ((project(joints[:, jsel]) - jt) / scale).pow(2).sum(-1)
            loss = loss + 0.5 * (jw * e_j).sum(-1) / n_body
        loss = loss + 1e-3 * betas.pow(2).sum(-1) + 2e-2 * dpose.pow(2).sum((-1, -2))
        loss = loss + (1e-3 if arkit else 1e-2) * expr.pow(2).sum(-1)
        return loss, lm                                    # [B], [B,L,3]

    stages = [([transl, orient], iters[0], 0.03)]
    if free_pose:
        stages.append(([transl, orient, betas, dpose, expr], iters[1], 0.02))
    else:
        stages.append(([transl, orient, dpose], iters[1] // 2, 0.01))
    for params, n, lr in stages:
        opt = torch.optim.Adam(params, lr=lr)
        for _ in range(n):
            opt.zero_grad()
            loss, _ = loss_fn()
            loss.sum().backward()
            opt.step()
            with torch.no_grad():
                if arkit:
                    expr.clamp_(0.0, 1.0)
                transl[:, 2].clamp_(max=-0.05)   # stay in front of the camera
    with torch.no_grad():
        loss, lm = loss_fn()
        err = (project(lm) - lt).norm(dim=-1)
        R = axis_angle_to_matrix(dpose)
    out = []
    for b in range(B):
        pose = base.clone()
        pose[jidx] = base[jidx] @ R[b]
        out.append({"transl": transl.detach()[b], "global_orient": orient.detach()[b],
                    "betas": betas.detach()[b], "expression": expr.detach()[b], "pose": pose,
                    "loss": float(loss[b]), "landmark_error_px": err[b].cpu().numpy(),
                    "landmark_ids": L, "focal": float(focals[b])})
    return out


def estimate_fov(body, width: int, height: int, face_targets: dict, joint_targets: dict,
                 iters: tuple[int, int], device) -> tuple[float, dict, dict]:
    """(diagonal FOV in degrees whose fit explains the landmarks best, the scan's scores, the
    fit at that FOV). The grid is fitted as one batch."""
    cams = {fov: PerspectiveCamera(width, height, fov) for fov in FOV_GRID}
    fits = dict(zip(FOV_GRID, _optimise_batch(body, cams[FOV_GRID[0]], [c.focal for c in cams.values()],
                                              face_targets, joint_targets, True, iters, device)))
    scores = {fov: fits[fov]["loss"] + FOV_PRIOR * math.log(fov / DEFAULT_FOV) ** 2 for fov in FOV_GRID}
    grid = list(FOV_GRID)
    i = min(range(len(grid)), key=lambda k: scores[grid[k]])
    best, fit = grid[i], fits[grid[i]]
    if 0 < i < len(grid) - 1:           # refine: vertex of the parabola through 3 points
        x = [math.log(grid[j]) for j in (i - 1, i, i + 1)]
        y = [scores[grid[j]] for j in (i - 1, i, i + 1)]
        den = (x[0] - x[1]) * (x[0] - x[2]) * (x[1] - x[2])
        a = (x[2] * (y[1] - y[0]) + x[1] * (y[0] - y[2]) + x[0] * (y[2] - y[1])) / den
        b = (x[2] ** 2 * (y[0] - y[1]) + x[1] ** 2 * (y[2] - y[0]) + x[0] ** 2 * (y[1] - y[2])) / den
        if a > 0:
            vertex = round(math.exp(min(max(-b / (2 * a), x[0]), x[2])), 1)
            if abs(vertex - best) > 0.5:
                refit = _optimise(body, PerspectiveCamera(width, height, vertex), face_targets,
                                  joint_targets, True, iters, device)
                if refit["loss"] + FOV_PRIOR * math.log(vertex / DEFAULT_FOV) ** 2 < scores[best]:
                    best, fit = vertex, refit
    return float(best), {str(k): round(v, 7) for k, v in scores.items()}, fit


# ----------------------------------------------------------------------------- public API
def _targets_from_mediapipe(det: dict, s: float) -> tuple[dict, dict]:
    face = det["face"] * s
    ft = {k: (float(face[mp][0]), float(face[mp][1]), 1.0) for k, mp in enumerate(MP_STATIC)}
    for k in (36 - 17, 39 - 17, 42 - 17, 45 - 17, 30 - 17, 48 - 17, 54 - 17):
        ft[k] = (ft[k][0], ft[k][1], 3.0)         # the stable points count more
    jt = {}
    if det.get("pose") is not None:
        pose = det["pose"]
        for i, name in MP_POSE_JOINTS.items():
            x, y, vis = pose[i]
            if vis > 0.6:
                w = 1.0 if "hip" not in name else 0.3   # hip joints sit differently on bodies
                jt[name] = (float(x * s), float(y * s), w)
    for side, pts in (det.get("hands") or {}).items():
        for i, joint in MP_HAND_JOINTS.items():
            jt[f"{side}_{joint}"] = (float(pts[i][0] * s), float(pts[i][1] * s),
                                     1.0 if joint == "wrist" else HAND_WEIGHT)
    return ft, jt


def _targets_from_box(box) -> dict:
    x, y, w, h = box
    return {i - 17: (x + u * w, y + v * h, 1.0) for i, (u, v) in BOX_LAYOUT.items()}


def _default_box(width: int, height: int) -> tuple[float, float, float, float]:
    """Where a head-and-shoulders portrait puts the face: centred, upper third."""
    side = 0.26 * min(width, height)
    return (width - side) / 2, 0.33 * height - side / 2, side, side


def apply_overrides(fit: "ReferenceFit", body, ov: FitOverrides) -> None:
    """The artist's corrections: rotation about the body's vertical axis, scale about the
    camera (moving the body along the ray through its face, so the face keeps its place and
    grows by `scale`), offsets in image fractions (exact at the face's depth)."""
    dev = body.device
    if ov.rotation:
        Ry = axis_angle_to_matrix(torch.tensor([0.0, math.radians(ov.rotation), 0.0]))
        R = Ry @ axis_angle_to_matrix(fit.global_orient.cpu())
        fit.global_orient = matrix_to_axis_angle(R)
    if ov.scale != 1.0 or ov.offset_x or ov.offset_y:
        with torch.no_grad():
            out = body.forward(fit.betas[None].to(dev), fit.global_orient[None].to(dev),
                               fit.transl[None].to(dev), fit.reference_pose[None].to(dev),
                               fit.expression[None].to(dev))
        face = out["landmarks"][0].mean(0).cpu()          # anchor: the face's centre
        cam = fit.camera
        Rc, tc = cam.rotation, cam.translation
        hc = Rc @ face + tc                                   # face in camera coordinates
        new = hc / max(ov.scale, 1e-3)
        new = new + torch.tensor([ov.offset_x * cam.width, ov.offset_y * cam.height, 0.0]) \
            * new[2] / cam.focal
        fit.transl = fit.transl + Rc.T @ (new - hc)


def fit_reference(image, body, detector: str = "auto", overrides: FitOverrides | None = None,
                  device="cpu", iters: tuple[int, int] = (40, 100)) -> ReferenceFit:
    """Estimate camera, shape, orientation, translation, reference pose and expression."""
    if detector not in DETECTORS:
        raise FitInputError(f"unknown detector {detector!r}; choose one of {DETECTORS}")
    ov = overrides or FitOverrides()
    if not (0.05 <= ov.scale <= 20):
        raise FitInputError(f"scale {ov.scale} is outside 0.05..20")
    if ov.fov and not (5.0 <= ov.fov <= 150.0):
        raise FitInputError(f"fov {ov.fov} deg is outside 5..150 (0 = automatic)")
    img = prepare_image(image)
    H, W = img.shape[:2]
    cam = PerspectiveCamera(W, H, ov.fov or DEFAULT_FOV)
    info: dict = {"warnings": [], "fov_diag_deg": cam.fov_diag_deg,
                  "fov_source": "override" if ov.fov else "default"}
    t0 = time.time()
    rgb, s = _detection_copy(img)
    info["detection_scale"] = s
    used, ft, jt, free = None, None, {}, False
    if detector in ("auto", "mediapipe"):
        if mediapipe_available():
            det = detect_mediapipe(rgb)
            if det is not None:
                ft, jt = _targets_from_mediapipe(det, s)
                used, free = "mediapipe", True
                info["pose_joints_used"] = sorted(k for k in jt if k.split("_", 1)[-1] not in FINGERS)
                info["hands_used"] = sorted(det.get("hands") or {})
            elif detector == "mediapipe":
                raise FitInputError("mediapipe found no face in the photo: use a photo with a "
                                    "clearly visible face, or detector 'opencv' / 'manual'")
            else:
                info["warnings"].append("mediapipe found no face; trying OpenCV")
        elif detector == "mediapipe":
            raise FitInputError("mediapipe is not installed (optional extra: pip install "
                                "mediapipe==0.10.21); use detector 'opencv' or 'manual'")
        else:
            info["warnings"].append("mediapipe not installed; using OpenCV")
    if used is None and detector in ("auto", "opencv"):
        box = detect_opencv(rgb)
        if box is not None:
            box = tuple(v * s for v in box)
            ft, used = _targets_from_box(box), "opencv"
            info["face_box"] = [float(v) for v in box]
        elif detector == "opencv":
            raise FitInputError("OpenCV found no face in the photo: use a photo with a frontal "
                                "face, or detector 'manual' and the scale/offset overrides")
        else:
            info["warnings"].append("no face found; placed a centred default body (adjust it "
                                    "with scale / offset_x / offset_y)")
    if used is None:                      # manual, or auto with nothing found
        box = _default_box(W, H)
        ft, used = _targets_from_box(box), "manual"
        info["face_box"] = [float(v) for v in box]
    info["detect_seconds"] = round(time.time() - t0, 3)
    t1 = time.time()
    # The fit is hundreds of tiny tensor ops: intra-op threads only add overhead (measured on
    # 2 cores: 3.7 s with 1 thread vs 14.5 s with 2 for the mediapipe fit), so use one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode(False), torch.enable_grad():   # callers may run no-grad
            if not ov.fov and used == "mediapipe" and len(jt) >= 2:
                fov, info["fov_scores"], r = estimate_fov(body, W, H, ft, jt, iters, device)
                cam = PerspectiveCamera(W, H, fov)
                info["fov_diag_deg"], info["fov_source"] = cam.fov_diag_deg, "estimated"
            else:
                r = _optimise(body, cam, ft, jt, free, iters, device)
    finally:
        torch.set_num_threads(threads)
    info["fit_seconds"] = round(time.time() - t1, 3)
    info["landmarks_used"] = [17 + k for k in r["landmark_ids"]]
    info["detected_landmarks"] = [[ft[k][0], ft[k][1]] for k in r["landmark_ids"]]
    info["detected_joints"] = {k: [v[0], v[1]] for k, v in jt.items()}
    info["landmark_error_px"] = float(np.mean(r["landmark_error_px"]))
    info["landmark_error_max_px"] = float(np.max(r["landmark_error_px"]))
    fit = ReferenceFit(image=img, camera=cam, betas=r["betas"].cpu(),
                       global_orient=r["global_orient"].cpu(), transl=r["transl"].cpu(),
                       reference_pose=r["pose"].cpu(), expression=r["expression"].cpu(),
                       body_name=body.name, detector=used, info=info)
    apply_overrides(fit, body, ov)
    info["overrides"] = dict(scale=ov.scale, offset_x=ov.offset_x, offset_y=ov.offset_y,
                             rotation=ov.rotation, fov=ov.fov)
    return fit


def project_fit(fit: ReferenceFit, body) -> dict:
    """The fitted body seen by the fitted camera: pixel positions of vertices, joints and
    landmarks (for overlays and tests)."""
    dev = body.device
    with torch.no_grad():
        out = body.forward(fit.betas[None].to(dev), fit.global_orient[None].to(dev),
                           fit.transl[None].to(dev), fit.reference_pose[None].to(dev),
                           fit.expression[None].to(dev))
    res = {}
    for k in ("vertices", "joints", "landmarks"):
        uv, z = fit.camera.project(out[k][0].cpu())
        res[k] = uv
        res[k + "_depth"] = z
    return res


def fit_editor_data(fit: ReferenceFit, body, max_outline: int = 400) -> dict:
    """What the frontend's fit editor (web/js/vlogger_fit_editor.js) draws and edits, as plain
    JSON in photo pixels: the body's silhouette outline, its face landmarks and face centre
    (the point the scale override keeps fixed), and the overrides this fit was made with."""
    import cv2

    from ..render.rasterizer import rasterize

    p = project_fit(fit, body)
    H, W = fit.height, fit.width
    uvz = torch.cat([p["vertices"], p["vertices_depth"][:, None]], 1).numpy().astype(np.float32)
    on = (rasterize(uvz[None], body.faces, W, H).tri_id[0] >= 0).astype(np.uint8)
    cnts, _ = cv2.findContours(on, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    outline = max(cnts, key=cv2.contourArea)[:, 0, :] if cnts else np.zeros((0, 2), int)
    if len(outline) > max_outline:
        outline = outline[np.linspace(0, len(outline) - 1, max_outline).astype(int)]
    lm = p["landmarks"].numpy()
    return {"width": W, "height": H, "detector": fit.detector,
            "fov_diag_deg": round(float(fit.camera.fov_diag_deg), 2),
            "outline": [[int(x), int(y)] for x, y in outline],
            "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in lm],
            "face_center": [round(float(v), 2) for v in lm.mean(0)],
            "overrides": dict(fit.info.get("overrides", {}))}


def draw_fit_overlay(fit: ReferenceFit, body, alpha: float = 0.45) -> torch.Tensor:
    """[H,W,3] float: the photo with the fitted body (shaded, coloured by part, with its
    silhouette outlined), the body's landmarks (green) and the detected points (red)."""
    import cv2

    from ..render.rasterizer import rasterize

    img = fit.image.cpu().numpy()
    H, W = img.shape[:2]
    p = project_fit(fit, body)
    uvz = torch.cat([p["vertices"], p["vertices_depth"][:, None]], 1).numpy().astype(np.float32)
    frags = rasterize(uvz[None], body.faces, W, H)
    tri = frags.tri_id[0]
    v = uvz
    f = body.faces
    # screen-space shading: how much each triangle faces the camera
    a = v[f[:, 1], :2] - v[f[:, 0], :2]
    b = v[f[:, 2], :2] - v[f[:, 0], :2]
    area = np.abs(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0])
    pal = _part_palette(len(body.part_names))
    col = pal[body.face_labels] * (0.6 + 0.4 * np.tanh(area * 4))[:, None]
    out = img.copy()
    on = tri >= 0
    out[on] = (1 - alpha) * img[on] + alpha * col[tri[on]]
    o8 = (np.clip(out, 0, 1) * 255).astype(np.uint8).copy()
    mask = on.astype(np.uint8)
    cnts, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    r = max(1, round(max(H, W) / 400))
    cv2.drawContours(o8, cnts, -1, (255, 255, 0), r)
    for x, y in fit.info.get("detected_landmarks", []):
        cv2.circle(o8, (int(x), int(y)), r + 1, (255, 40, 40), -1)
    for x, y in fit.info.get("detected_joints", {}).values():
        cv2.circle(o8, (int(x), int(y)), r + 3, (255, 40, 40), -1)
    for x, y in p["landmarks"].numpy():
        cv2.circle(o8, (int(x), int(y)), r, (40, 255, 40), -1)
    for j in MP_POSE_JOINTS.values():
        x, y = p["joints"][SMPLX_INDEX[j]].numpy()
        cv2.circle(o8, (int(x), int(y)), r + 2, (40, 255, 40), -1)
    return torch.from_numpy(o8.astype(np.float32) / 255.0)


def _part_palette(n: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    pal = rng.uniform(0.25, 1.0, (n, 3)).astype(np.float32)
    pal[0] = 0
    return pal
