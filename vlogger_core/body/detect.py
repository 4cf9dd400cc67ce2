"""The one detector module: face mesh (478 points), pose (33) and hands (21 per hand) on one
image (static mode) or a video (tracking mode: each model follows the person from frame to
frame) into one `Landmarks` container; OpenCV's Haar face box; and the conversion of both into
the body's 2D fitting targets (body/fit.py).

Two landmark backends give the same points (mediapipe 0.10.21's models and settings), by the
same rules here (the hand side from the nearer pose wrist, the first hand of a side wins):
- "landmarks" (the default): body/landmark_models.py, mediapipe's models shipped in
  models/landmarks/ and run on LiteRT (`ai-edge-litert`, in requirements.txt);
- "mediapipe": the mediapipe package itself (optional: it pins numpy<2).

Everything is in pixels of the frames given; `detection_copy` downscales a large photo first and
returns the factor back to the photo's pixels.
"""
from __future__ import annotations

import logging
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from ..callbacks import Interrupt, Progress, check, report
from . import landmark_models
from .landmark_models import FrameLandmarks

log = logging.getLogger("VLOGGER")
BACKENDS = ("landmarks", "mediapipe")      # landmark backends, the default first
BACKEND_FIX = {
    "landmarks": "pip install ai-edge-litert (wheels for Linux x86_64 / aarch64, Windows x64, macOS arm64) and "
                 "restart; or use detector 'mediapipe' (pip install mediapipe==0.10.21, needs numpy<2) or 'opencv'",
    "mediapipe": "pip install mediapipe==0.10.21 (it needs numpy<2) and restart, or use detector 'landmarks'",
}

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
STABLE_POINTS = (36, 39, 42, 45, 30, 48, 54)   # eye corners, nose tip, mouth corners (iBUG)
STABLE_WEIGHT = 3.0                        # they count more than the other face points
# mediapipe pose landmark -> SMPL-X joint (mediapipe's left = the person's left, like SMPL-X).
MP_POSE_JOINTS = {11: "left_shoulder", 12: "right_shoulder", 13: "left_elbow", 14: "right_elbow",
                  15: "left_wrist", 16: "right_wrist", 23: "left_hip", 24: "right_hip"}
POSE_VISIBLE = 0.6                         # a pose joint is a target when mediapipe sees it this well
HIP_WEIGHT = 0.3                           # hip joints sit differently on bodies
MP_WRISTS = {"left": 15, "right": 16}
# mediapipe hand landmark -> SMPL-X finger joint (per side); the wrist comes from the pose.
MP_HAND_JOINTS = {0: "wrist", 1: "thumb1", 2: "thumb2", 3: "thumb3", 5: "index1", 6: "index2",
                  7: "index3", 9: "middle1", 10: "middle2", 11: "middle3", 13: "ring1",
                  14: "ring2", 15: "ring3", 17: "pinky1", 18: "pinky2", 19: "pinky3"}
HAND_WEIGHT = 0.4        # per hand point; hand points are many and small, shoulders matter more
# mediapipe's eyelid centres (upper, lower) per ARKit blink shape: the person's left eye 386 / 374,
# right eye 159 / 145.
MP_EYELIDS = {"eyeBlinkLeft": (386, 374), "eyeBlinkRight": (159, 145)}
# iBUG points the OpenCV box path places, in the Haar box's normalised coordinates
# ((x - x0) / w, (y - y0) / h): a frontal face's layout, measured with mediapipe inside OpenCV's
# box on the shipped photo and made left/right symmetric (a box cannot tell a face's asymmetry).
BOX_LAYOUT = {36: (0.205, 0.385), 39: (0.395, 0.395), 42: (0.605, 0.395), 45: (0.795, 0.385),
              30: (0.50, 0.62), 48: (0.285, 0.78), 54: (0.715, 0.78)}
MAX_DETECT_SIDE = 1280
FACE_POINTS, POSE_POINTS, HAND_POINTS = 478, 33, 21


def mediapipe_available() -> bool:
    try:
        import mediapipe as mp  # noqa: F401
        return hasattr(mp, "solutions")
    except Exception:
        return False


def backend_problem(backend: str) -> str | None:
    """Why a landmark backend cannot run here (None: it can)."""
    if backend == "landmarks":
        return landmark_models.unavailable_reason()
    if backend == "mediapipe":
        return None if mediapipe_available() else "mediapipe cannot be imported (optional; it needs numpy<2)"
    raise ValueError(f"unknown landmark backend {backend!r}; choose one of {BACKENDS}")


_LOGGED: set[str] = set()      # problems already logged


def default_backend() -> str | None:
    """The first landmark backend that can run here (None: none can). The reason the default
    cannot run is logged once, in one line."""
    for b in BACKENDS:
        problem = backend_problem(b)
        if problem is None:
            return b
        if b == BACKENDS[0] and problem not in _LOGGED:
            _LOGGED.add(problem)
            log.warning("VLOGGER: the default landmark detector is unavailable: %s", problem)
    return None


def detection_copy(img: torch.Tensor) -> tuple[np.ndarray, float]:
    """uint8 RGB of an [H,W,3] 0..1 image for the detectors, downscaled so the long side <=
    MAX_DETECT_SIDE; and the factor that maps its pixel coordinates back to the image's."""
    import cv2

    src = img.cpu().numpy()
    h, w = src.shape[:2]
    a = np.empty((h, w, src.shape[2]), np.uint8)
    for y in range(0, h, 512):      # in bands: a large photo needs no full-size float copies
        a[y:y + 512] = (src[y:y + 512] * 255 + 0.5).astype(np.uint8)
    s = max(h, w) / MAX_DETECT_SIDE
    if s > 1:
        a = cv2.resize(a, (max(1, round(w / s)), max(1, round(h / s))),
                       interpolation=cv2.INTER_AREA)
        return a, s
    return a, 1.0


@dataclass
class Landmarks:
    """A landmark backend's detections per frame, in pixels; NaN where not found."""
    face: np.ndarray                # [T,478,2] (without refined landmarks the last 10 stay NaN)
    pose: np.ndarray                # [T,33,3] x, y, visibility
    hands: dict                     # 'left' / 'right' (the person's) -> [T,21,2]

    def __len__(self):
        return len(self.face)

    def slice(self, a: int, b: int) -> "Landmarks":
        return Landmarks(self.face[a:b], self.pose[a:b], {k: v[a:b] for k, v in self.hands.items()})

    def face_found(self) -> np.ndarray:
        return ~np.isnan(self.face[:, 0, 0])

    def pose_found(self) -> np.ndarray:
        return ~np.isnan(self.pose[..., 0]).all(-1)

    def hand_found(self, side: str) -> np.ndarray:
        return ~np.isnan(self.hands[side][:, 0, 0])

    def moved(self, dx: float, dy: float) -> "Landmarks":
        """The same points in a frame whose origin is (-dx, -dy) here (e.g. a crop's landmarks
        in the full image's pixels)."""
        d = np.array([dx, dy], np.float32)
        pose = self.pose.copy()
        pose[..., :2] += d
        return Landmarks(self.face + d, pose, {k: v + d for k, v in self.hands.items()})

    def targets(self, t: int, scale: float = 1.0) -> tuple[dict, dict] | None:
        """Frame t as the fit's targets (None without a face), in pixels times `scale`:
        ({body landmark index: (x, y, weight)}, {SMPL-X joint: (x, y, weight)}). The face's
        stable points count more; pose joints count when seen well (hips less); a seen hand
        gives its wrist and fingers (its wrist replaces the pose's)."""
        if not self.face_found()[t]:
            return None
        face = self.face[t, MP_STATIC] * scale
        stable = {i - 17 for i in STABLE_POINTS}
        ft = {k: (float(x), float(y), STABLE_WEIGHT if k in stable else 1.0) for k, (x, y) in enumerate(face)}
        jt = {}
        if self.pose_found()[t]:
            for i, name in MP_POSE_JOINTS.items():
                x, y, vis = self.pose[t, i]
                if vis > POSE_VISIBLE:
                    jt[name] = (float(x * scale), float(y * scale), HIP_WEIGHT if "hip" in name else 1.0)
        for side, pts in self.hands.items():
            if np.isnan(pts[t, 0, 0]):
                continue
            for i, joint in MP_HAND_JOINTS.items():
                jt[f"{side}_{joint}"] = (float(pts[t, i, 0] * scale), float(pts[t, i, 1] * scale),
                                         1.0 if joint == "wrist" else HAND_WEIGHT)
        return ft, jt


def hand_side(wrist: np.ndarray, pose: np.ndarray | None, label: str) -> str:
    """The person's side ('left' / 'right') of a hand whose wrist is at `wrist` [2]: the side of
    the nearer pose wrist (pose [33,>=2] or None). Without a pose, mediapipe's handedness label,
    swapped: it assumes a mirrored selfie, so for an ordinary image it names the other hand."""
    if pose is not None:
        d = {side: float(np.linalg.norm(wrist - pose[i, :2])) for side, i in MP_WRISTS.items()}
        return min(d, key=d.get)
    return "right" if label == "Left" else "left"


def detect(frames: np.ndarray, tracking: bool = False, parts: tuple[str, ...] = ("face", "pose", "hands"),
           refine_face: bool = True, backend: str = "landmarks", interrupt: Interrupt = None,
           progress: Progress = None) -> Landmarks:
    """Landmarks on uint8 RGB frames [T,H,W,3]: one face, its pose and up to two hands per frame.
    tracking=False treats every frame as a separate photo; True follows the person through a
    video. `parts` picks the models run (the others stay NaN); refine_face adds the iris points
    and refines eyes and lips. `backend`: one of BACKENDS (check backend_problem first)."""
    T = len(frames)
    face = np.full((T, FACE_POINTS, 2), np.nan, np.float32)
    pose = np.full((T, POSE_POINTS, 3), np.nan, np.float32)
    hands = {s: np.full((T, HAND_POINTS, 2), np.nan, np.float32) for s in MP_WRISTS}
    with frame_detector(backend, tracking, parts, refine_face) as run:
        for i, f in enumerate(frames):
            check(interrupt)
            r = run(np.ascontiguousarray(f))
            if r.face is not None:
                face[i, :len(r.face)] = r.face
            if r.pose is not None:
                pose[i] = r.pose
            for pts, label in r.hands:
                side = hand_side(pts[0], r.pose, label)
                if np.isnan(hands[side][i, 0, 0]):      # the first hand of a side wins
                    hands[side][i] = pts
            report(progress, i + 1, T)
    return Landmarks(face, pose, hands)


@contextmanager
def frame_detector(backend: str, tracking: bool, parts: tuple[str, ...], refine_face: bool):
    """A function uint8 RGB frame -> FrameLandmarks (pixels), for one image or video."""
    if backend == "landmarks":
        models = landmark_models.LandmarkModels(parts, refine_face)
        yield models.video() if tracking else models.detect_image
    elif backend == "mediapipe":
        with _mediapipe_solutions(tracking, parts, refine_face) as run:
            yield run
    else:
        raise ValueError(f"unknown landmark backend {backend!r}; choose one of {BACKENDS}")


@contextmanager
def _mediapipe_solutions(tracking: bool, parts: tuple[str, ...], refine_face: bool):
    """mediapipe's legacy solutions with the settings landmark_models.py reproduces."""
    import mediapipe as mp

    sol = mp.solutions
    with ExitStack() as stack:
        fm = stack.enter_context(sol.face_mesh.FaceMesh(static_image_mode=not tracking, max_num_faces=1,
                                                        refine_landmarks=refine_face,
                                                        min_detection_confidence=0.5)) if "face" in parts else None
        pm = stack.enter_context(sol.pose.Pose(static_image_mode=not tracking, model_complexity=1)) \
            if "pose" in parts else None
        hm = stack.enter_context(sol.hands.Hands(static_image_mode=not tracking, max_num_hands=2,
                                                 min_detection_confidence=0.5)) if "hands" in parts else None

        def run(f: np.ndarray) -> FrameLandmarks:
            H, W = f.shape[:2]
            px = lambda lms: np.array([[p.x * W, p.y * H] for p in lms.landmark], np.float32)  # noqa: E731
            out = FrameLandmarks()
            r = fm.process(f) if fm is not None else None
            if r is not None and r.multi_face_landmarks:
                out.face = px(r.multi_face_landmarks[0])
            r = pm.process(f) if pm is not None else None
            if r is not None and r.pose_landmarks:
                out.pose = np.array([[q.x * W, q.y * H, q.visibility] for q in r.pose_landmarks.landmark],
                                    np.float32)
            r = hm.process(f) if hm is not None else None
            if r is not None:
                out.hands = [(px(lms), hd.classification[0].label)
                             for lms, hd in zip(r.multi_hand_landmarks or [], r.multi_handedness or [])]
            return out

        yield run


def haar_faces(rgb: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Frontal face boxes (x, y, w, h) in uint8 RGB from OpenCV's shipped Haar cascades, the
    largest first (the second cascade is tried when the first finds none)."""
    import cv2

    gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    m = max(24, min(gray.shape) // 12)
    for name in ("haarcascade_frontalface_default.xml", "haarcascade_frontalface_alt2.xml"):
        det = cv2.CascadeClassifier(cv2.data.haarcascades + name)
        boxes = det.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(m, m))
        if len(boxes):
            return [tuple(float(v) for v in b) for b in sorted(boxes, key=lambda b: -b[2] * b[3])]
    return []


def face_box(rgb: np.ndarray) -> tuple[float, float, float, float] | None:
    """The largest frontal face box (x, y, w, h) in uint8 RGB from OpenCV's Haar cascades."""
    boxes = haar_faces(rgb)
    return boxes[0] if boxes else None


def face_boxes(rgb: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Every face in uint8 RGB as boxes (x, y, w, h), the largest first: mediapipe's face
    detector (LiteRT) where it can run, else OpenCV's Haar cascades."""
    if landmark_models.unavailable_reason() is None:
        return landmark_models.detect_faces(rgb)
    return haar_faces(rgb)


def person_view(rgb: np.ndarray, boxes: list, person: int = 0) -> tuple[np.ndarray, tuple[int, int]]:
    """The part of uint8 RGB around the person of face box boxes[person] (head, shoulders and
    upper body: 2.5 face widths to each side, 1 face height above, 5 below), with every other
    face in it painted over in the view's median colour, so the detectors see one person; and
    the view's origin (x, y) in rgb."""
    H, W = rgb.shape[:2]
    x, y, w, h = boxes[person]
    x0, x1 = int(max(0, x - 2.5 * w)), int(min(W, x + 3.5 * w + 1))
    y0, y1 = int(max(0, y - 1.0 * h)), int(min(H, y + 6.0 * h + 1))
    view = rgb[y0:y1, x0:x1].copy()
    fill = np.median(view.reshape(-1, view.shape[-1]), 0).astype(np.uint8)
    for i, (bx, by, bw, bh) in enumerate(boxes):
        if i != person:      # the face box grown by 40% (hair, chin)
            ax, ay = int(bx - 0.2 * bw) - x0, int(by - 0.3 * bh) - y0
            view[max(0, ay):max(0, ay + int(1.5 * bh) + 1), max(0, ax):max(0, ax + int(1.4 * bw) + 1)] = fill
    return view, (x0, y0)


def box_targets(box: tuple[float, float, float, float]) -> dict:
    """A face box (x, y, w, h) as face targets {body landmark index: (x, y, weight)}."""
    x, y, w, h = box
    return {i - 17: (x + u * w, y + v * h, 1.0) for i, (u, v) in BOX_LAYOUT.items()}
