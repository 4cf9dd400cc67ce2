"""mediapipe 0.10.21's face mesh, pose, hand and selfie-segmentation models, without mediapipe.

mediapipe's Python wheel pins numpy<2, which ComfyUI no longer installs, so the pack cannot
depend on it. Its models are Apache-2.0 TFLite files: tools/extract_landmark_models.py copies them
out of the wheel into models/landmarks/ (see the NOTICE there), and this module runs them on
LiteRT (`ai-edge-litert`: the TFLite interpreter alone, numpy 2 compatible, no TensorFlow). What
mediapipe's graphs do around the models is re-implemented here in numpy + OpenCV, calculator by
calculator, with the settings of the legacy solutions body/detect.py used (FaceMesh
max_num_faces=1 refine_landmarks=True, Pose model_complexity=1 smooth_landmarks=True, Hands
max_num_hands=2 model_complexity=1, SelfieSegmentation model_selection=0; confidences 0.5):
SSD anchors and box decoding, weighted non-maximum suppression, detection -> region of interest,
the rotated crop into each model's input, landmark projection back to the image, the pose
heatmap refinement, and in video mode the ROI tracking and pose smoothing filters; plus the four
custom TFLite ops of two models (the extraction cut those models at them). On the shipped photo
at 512 px the face mesh is within 0.001 px of mediapipe's (tests/test_landmark_models.py).

    models = LandmarkModels()
    r = models.detect_image(rgb)          # FrameLandmarks: face [478,2] | None, pose [33,3] | None,
                                          #   hands [(points [21,2], mediapipe's label)...], pixels
    track = models.video()                # then track(frame) per frame, in order (tracking mode)
    mask = segment_person(rgb)            # float32 [H,W], 0..1: the person (and hair)

Pixel-exact details matter: landmark models are sensitive to their crop, so the crop reproduces
the OpenCV 4.10 arithmetic mediapipe's wheel is built with, not the installed OpenCV's.
"""
from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field
from functools import cache

import cv2
import numpy as np

from ..paths import SHIPPED_MODELS

MODEL_DIR = SHIPPED_MODELS / "landmarks"
# LiteRT threads per model: these models take a few ms to tens of ms on one core and run
# inside ComfyUI next to torch, so more threads win little and compete with it.
THREADS = 2
PARTS = ("face", "pose", "hands")
MODELS = ("face_detection_short_range", "face_landmark", "face_landmark_with_attention", "pose_detection",
          "pose_landmark_full", "palm_detection_full", "hand_landmark_full", "selfie_segmentation")
MIN_CONFIDENCE = 0.5       # mediapipe's defaults: detection score, landmark presence


def unavailable_reason() -> str | None:
    """Why this runtime cannot run here (None: it can): LiteRT missing (ai-edge-litert has no
    wheel for some platforms) or model files missing from models/landmarks/."""
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401
    except Exception as e:          # absent, or a wheel that does not load on this machine
        return f"ai-edge-litert cannot be imported ({type(e).__name__}: {e})"
    for name in MODELS:
        if not ((MODEL_DIR / f"{name}.tflite").exists() or (MODEL_DIR / f"{name}.plan.json").exists()):
            return f"{MODEL_DIR / name}.tflite is missing (tools/extract_landmark_models.py writes it)"
    return None


@dataclass
class FrameLandmarks:
    """One frame's detections in pixels (None / empty where nothing was found)."""
    face: np.ndarray | None = None      # [478,2] (refined) or [468,2]
    pose: np.ndarray | None = None      # [33,3]: x, y, visibility
    hands: list = field(default_factory=list)   # [(points [21,2], "Left" | "Right")], as mediapipe labels them


# ----------------------------------------------------------------------------- LiteRT models
class _TFLite:
    """One .tflite file on a LiteRT interpreter: {input name: array} -> {output name: array}.
    An interpreter is not re-entrant, so calls are serialised."""

    def __init__(self, path):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=THREADS)
        self.interpreter.allocate_tensors()
        self.inputs = {d["name"]: d["index"] for d in self.interpreter.get_input_details()}
        self.outputs = {d["name"]: d["index"] for d in self.interpreter.get_output_details()}
        self.input_name = next(iter(self.inputs))
        self.lock = threading.Lock()

    def __call__(self, feeds: dict) -> dict:
        with self.lock:
            for name, index in self.inputs.items():
                self.interpreter.set_tensor(index, np.ascontiguousarray(feeds[name], np.float32))
            self.interpreter.invoke()
            return {name: self.interpreter.get_tensor(index) for name, index in self.outputs.items()}


class _Plan:
    """A model the extraction cut at mediapipe's custom ops (its .plan.json): LiteRT segments and
    numpy custom ops, run in the plan's order on a dict of named tensors."""

    def __init__(self, path):
        self.plan = json.loads(path.read_text())
        self.consts = {}
        if self.plan["consts"]:
            from safetensors.numpy import load_file

            self.consts = load_file(str(path.parent / self.plan["consts"]))
        self.steps = [(s, _TFLite(path.parent / s["file"]) if s["kind"] == "tflite" else _CUSTOM_OPS[s["op"]])
                      for s in self.plan["steps"]]
        self.input_name = self.plan["inputs"][0]
        self.refinement = self.plan.get("refinement", {})

    def __call__(self, feeds: dict) -> dict:
        env = {**self.consts, **feeds}
        for step, run in self.steps:
            if step["kind"] == "tflite":
                env.update(run({k: env[k] for k in step["inputs"]}))
            else:
                env[step["outputs"][0]] = run(*[env[k] for k in step["inputs"]], **step["options"])
        return {k: env[k] for k in self.plan["outputs"]}


@cache
def _model(name: str):
    """A model of models/landmarks/, loaded once per process (about 0.3 s for all)."""
    plan = MODEL_DIR / f"{name}.plan.json"
    if plan.exists():
        return _Plan(plan)
    path = MODEL_DIR / f"{name}.tflite"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run tools/extract_landmark_models.py")
    return _TFLite(path)


# ------------------------------------------------- mediapipe's custom TFLite ops, in numpy
def _landmarks_to_transform_matrix(landmarks, *, left_rotation_idx, right_rotation_idx, subset_idxs,
                                   output_width, output_height, scale_x, scale_y, target_rotation_radians):
    """Landmarks2TransformMatrix (v2): the 4x4 matrix that maps an output_width x output_height
    grid onto the box around the landmarks in subset_idxs, rotated so the line from the left to
    the right rotation landmark lies at target_rotation_radians, scaled by scale_x / scale_y."""
    p = landmarks.reshape(-1, 3)[:, :2].astype(np.float64)
    left, right = p[left_rotation_idx], p[right_rotation_idx]
    r = target_rotation_radians - math.atan2(right[1] - left[1], right[0] - left[0])
    idx = list(subset_idxs)
    if len(idx) % 2:                # the op reads the subset in pairs and repeats an odd last one
        idx.append(idx[-1])
    c, s = math.cos(r), math.sin(r)
    q = p[idx] @ np.array([[c, -s], [s, c]]).T
    lo, hi = q.min(0), q.max(0)
    w, h = hi - lo
    centre = np.array([[c, s], [-s, c]]) @ ((lo + hi) / 2)      # back through the inverse rotation
    sx, sy = scale_x * w / output_width, scale_y * h / output_height
    cr, sr = math.cos(-r), math.sin(-r)
    t = np.eye(4)
    t[:2, :2] = np.array([[cr, -sr], [sr, cr]]) @ np.diag([sx, sy])
    t[:2, 3] = t[:2, :2] @ np.array([-output_width / 2.0, -output_height / 2.0]) + centre
    return t.astype(np.float32)[None]


def _transform_tensor_bilinear(features, matrix, *, output_height, output_width):
    """TransformTensorBilinear (v2): features [1,H,W,C] sampled bilinearly on the grid the matrix
    maps (its half-pixel correction; zeros outside the feature map)."""
    f = features[0]
    H, W, C = f.shape
    m = matrix.reshape(4, 4).astype(np.float64)
    rx, ry = m[0].copy(), m[1].copy()
    rx[3] += rx[0] * 0.5 + rx[1] * 0.5 - 0.5
    ry[3] += ry[0] * 0.5 + ry[1] * 0.5 - 0.5
    yy, xx = np.mgrid[0:output_height, 0:output_width].astype(np.float64)
    tx = (rx[0] * xx + rx[1] * yy + rx[3]).astype(np.float32)
    ty = (ry[0] * xx + ry[1] * yy + ry[3]).astype(np.float32)
    inside = (tx >= 0) & (tx <= W - 1) & (ty >= 0) & (ty <= H - 1)
    x0, y0 = np.floor(tx).astype(int), np.floor(ty).astype(int)
    fx, fy = (tx - x0)[..., None], (ty - y0)[..., None]
    pad = np.zeros((H + 1, W + 1, C), np.float32)           # reads past the last row / column are 0
    pad[:H, :W] = f
    xa, ya = np.clip(x0, 0, W), np.clip(y0, 0, H)
    xb, yb = np.clip(x0 + 1, 0, W), np.clip(y0 + 1, 0, H)
    top = (1 - fx) * pad[ya, xa] + fx * pad[ya, xb]
    bottom = (1 - fx) * pad[yb, xa] + fx * pad[yb, xb]
    out = fy * bottom + (1 - fy) * top
    out[~inside] = 0
    return out[None].astype(np.float32)


def _transform_landmarks(landmarks, matrix):
    """TransformLandmarks (v2): 2D points [1,N,2] through the matrix's first two rows."""
    m = matrix.reshape(4, 4)
    out = landmarks.reshape(-1, 2) @ m[:2, :2].T + m[:2, 3]
    return out.reshape(landmarks.shape).astype(np.float32)


def _conv2d_transpose_bias(x, weights, bias, *, padding_same, stride_w, stride_h):
    """Convolution2DTransposeBias: a transposed convolution (weights [O,kh,kw,I]) plus bias."""
    _, H, W, _ = x.shape
    O, kh, kw, _ = weights.shape
    ph = max(0, kh - (H - 1) % stride_h - 1) if padding_same else 0
    pw = max(0, kw - (W - 1) % stride_w - 1) if padding_same else 0
    full = np.zeros((1, (H - 1) * stride_h + kh, (W - 1) * stride_w + kw, O), np.float32)
    for fy in range(kh):
        for fx in range(kw):
            full[:, fy:fy + (H - 1) * stride_h + 1:stride_h, fx:fx + (W - 1) * stride_w + 1:stride_w] += \
                x @ weights[:, fy, fx, :].T
    oh, ow = (H - 1) * stride_h + kh - ph, (W - 1) * stride_w + kw - pw
    return full[:, ph:ph + oh, pw:pw + ow] + bias


_CUSTOM_OPS = {"Landmarks2TransformMatrix": _landmarks_to_transform_matrix,
               "TransformTensorBilinear": _transform_tensor_bilinear,
               "TransformLandmarks": _transform_landmarks,
               "Convolution2DTransposeBias": _conv2d_transpose_bias}


# --------------------------------------------------------------------------- graph geometry
def _norm_radians(a: float) -> float:
    return a - 2 * math.pi * math.floor((a + math.pi) / (2 * math.pi))


class _Rect:
    """mediapipe's NormalizedRect: centre and size as fractions of the image, rotation (rad)."""
    __slots__ = ("h", "rot", "w", "xc", "yc")

    def __init__(self, xc, yc, w, h, rot=0.0):
        self.xc, self.yc, self.w, self.h, self.rot = xc, yc, w, h, rot

    def transformed(self, W, H, scale, shift_y=0.0) -> _Rect:
        """RectTransformationCalculator: shift along the rotated y axis, square on the long side
        (in pixels), scale."""
        xc, yc = self.xc, self.yc
        if self.rot == 0:
            yc += self.h * shift_y
        else:
            xc += -H * self.h * shift_y * math.sin(self.rot) / W
            yc += H * self.h * shift_y * math.cos(self.rot) / H
        side = max(self.w * W, self.h * H)
        return _Rect(xc, yc, side / W * scale, side / H * scale, self.rot)

    def box(self) -> tuple:
        return self.xc - self.w / 2, self.yc - self.h / 2, self.xc + self.w / 2, self.yc + self.h / 2


def _rotation(p0, p1, W, H, target):
    """DetectionsToRectsCalculator's rotation: the line from keypoint p0 to p1 (normalized
    coordinates) turned to the target angle."""
    return _norm_radians(target - math.atan2(-(p1[1] - p0[1]) * H, (p1[0] - p0[0]) * W))


def _box_points(cx, cy, w, h, angle_deg):
    """cv::RotatedRect::points in float32 as OpenCV 4.10 computes them (OpenCV >= 4.13 changed
    this arithmetic slightly, so the installed cv2 is not used)."""
    f = np.float32
    ang = math.radians(float(f(angle_deg)))
    b, a = f(math.cos(ang)) * f(0.5), f(math.sin(ang)) * f(0.5)
    cx, cy, w, h = f(cx), f(cy), f(w), f(h)
    p0 = (cx - a * h - b * w, cy + b * h - a * w)
    p1 = (cx + a * h - b * w, cy - b * h - a * w)
    return np.array([p0, p1, (f(2) * cx - p0[0], f(2) * cy - p0[1]), (f(2) * cx - p1[0], f(2) * cy - p1[1])],
                    np.float32)


def _perspective(src, dst):
    """cv::getPerspectiveTransform: its 8x8 linear system, solved in double."""
    A, B = np.zeros((8, 8)), np.zeros(8)
    for i in range(4):
        (x, y), (u, v) = src[i].astype(np.float64), dst[i].astype(np.float64)
        A[i], B[i] = [x, y, 1, 0, 0, 0, -x * u, -y * u], u
        A[i + 4], B[i + 4] = [0, 0, 0, x, y, 1, -x * v, -y * v], v
    return np.append(np.linalg.solve(A, B), 1.0).reshape(3, 3)


def _warp(img, M, size, border_zero):
    """cv2.warpPerspective(img, M, (size, size), INTER_LINEAR) on uint8 as OpenCV 4.10 computes
    it: the inverse map in double, rounded to 1/32 pixel, then OpenCV's fixed-point remap.
    OpenCV >= 4.11 computes warpPerspective differently (about 4% of the pixels 1-3 levels off,
    which moves pose landmarks by pixels); its fixed-point remap is unchanged (4.10 to 5.0)."""
    Mi = np.linalg.inv(M)
    r = np.arange(size, dtype=np.float64)
    X0 = Mi[0, 0] * r[None, :] + (Mi[0, 1] * r[:, None] + Mi[0, 2])
    Y0 = Mi[1, 0] * r[None, :] + (Mi[1, 1] * r[:, None] + Mi[1, 2])
    W0 = Mi[2, 0] * r[None, :] + (Mi[2, 1] * r[:, None] + Mi[2, 2])
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(W0 != 0, 32.0 / W0, 0.0)
        X, Y = np.nan_to_num(np.rint(X0 * w)), np.nan_to_num(np.rint(Y0 * w))
    X = np.clip(X, -2**31, 2**31 - 1).astype(np.int64)
    Y = np.clip(Y, -2**31, 2**31 - 1).astype(np.int64)
    m1 = np.empty((size, size, 2), np.int16)
    m1[..., 0] = np.clip(X >> 5, -32768, 32767)
    m1[..., 1] = np.clip(Y >> 5, -32768, 32767)
    m2 = ((Y & 31) * 32 + (X & 31)).astype(np.uint16)
    return cv2.remap(img, m1, m2, cv2.INTER_LINEAR, borderValue=(0, 0, 0, 0),
                     borderMode=cv2.BORDER_CONSTANT if border_zero else cv2.BORDER_REPLICATE)


def _crop(img, rect: _Rect, size, keep_aspect, lo, hi, border_zero=False):
    """ImageToTensorCalculator (OpenCV path): the rotated ROI of the uint8 image warped onto a
    size x size tensor, values scaled to [lo, hi]. keep_aspect letterboxes a non-square ROI;
    returns the tensor and that padding (left, top, right, bottom, fractions)."""
    H, W = img.shape[:2]
    f = np.float32                                        # mediapipe's RotatedRect is float
    cx, cy, rw, rh = f(rect.xc) * f(W), f(rect.yc) * f(H), f(rect.w) * f(W), f(rect.h) * f(H)
    pad = (0.0, 0.0, 0.0, 0.0)
    if keep_aspect:
        aspect = rh / rw
        if aspect < 1:
            v = float((1 - aspect) / 2)
            rh, pad = rw, (0.0, v, 0.0, v)
        else:
            u = float((1 - 1 / aspect) / 2)
            rw, pad = rh, (u, 0.0, u, 0.0)
    src = _box_points(cx, cy, rw, rh, f(rect.rot) * f(180.0) / math.pi)
    dst = np.array([[0, size], [0, 0], [size, 0], [size, size]], np.float32)
    warped = _warp(img, _perspective(src, dst), size, border_zero)
    return (warped.astype(np.float32) * np.float32((hi - lo) / 255.0) + np.float32(lo))[None], pad


def _project(pts, rect: _Rect):
    """LandmarkProjectionCalculator: points normalized to the ROI -> normalized to the image."""
    x, y = pts[:, 0] - 0.5, pts[:, 1] - 0.5
    c, s = math.cos(rect.rot), math.sin(rect.rot)
    out = pts.copy()
    out[:, 0] = (c * x - s * y) * rect.w + rect.xc
    out[:, 1] = (s * x + c * y) * rect.h + rect.yc
    return out


def _unletterbox(pts, pad):
    left, top, right, bottom = pad
    out = pts.copy()
    out[:, 0] = (pts[:, 0] - left) / (1 - left - right)
    out[:, 1] = (pts[:, 1] - top) / (1 - top - bottom)
    return out


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _iou(a, b) -> float:
    """Boxes (xmin, ymin, xmax, ymax); touching boxes intersect (mediapipe's Rectangle)."""
    iw, ih = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    if iw < 0 or ih < 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


# ------------------------------------------------------------------------------ detectors
class _SSD:
    """A BlazeFace-style detector (face, pose, palm): the letterboxed whole image -> boxes
    (x, y, w, h) and keypoints, normalized to the image, after weighted NMS, best first."""

    def __init__(self, name, size, strides, keypoints, lo, outputs=("Identity", "Identity_1")):
        self.name, self.size, self.keypoints, self.lo = name, size, keypoints, lo
        self.boxes_out, self.scores_out = outputs
        self.anchors = self._anchors(size, strides)

    @staticmethod
    def _anchors(size, strides):
        """SsdAnchorsCalculator with fixed_anchor_size and interpolated_scale_aspect_ratio 1:
        anchor centres only, 2 per layer; consecutive layers of one stride share a grid."""
        out, i = [], 0
        while i < len(strides):
            j = i
            while j < len(strides) and strides[j] == strides[i]:
                j += 1
            n = math.ceil(size / strides[i])
            yy, xx = np.mgrid[0:n, 0:n]
            c = np.stack([(xx + 0.5) / n, (yy + 0.5) / n], -1).reshape(-1, 1, 2)
            out.append(np.repeat(c, 2 * (j - i), axis=1).reshape(-1, 2))
            i = j
        return np.concatenate(out).astype(np.float32).astype(np.float64)    # mediapipe's anchors are float

    def __call__(self, img) -> list[dict]:
        model = _model(self.name)
        x, pad = _crop(img, _Rect(0.5, 0.5, 1.0, 1.0), self.size, True, self.lo, 1.0, border_zero=True)
        out = model({model.input_name: x})
        raw = out[self.boxes_out][0].astype(np.float64)
        score = _sigmoid(np.clip(out[self.scores_out][0, :, 0].astype(np.float64), -100, 100))
        keep = np.nonzero(score >= MIN_CONFIDENCE)[0]
        if not len(keep):
            return []
        raw, score, a = raw[keep], score[keep], self.anchors[keep]
        s = self.size
        xc, yc, w, h = raw[:, 0] / s + a[:, 0], raw[:, 1] / s + a[:, 1], raw[:, 2] / s, raw[:, 3] / s
        boxes = np.stack([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], -1)
        kps = raw[:, 4:4 + 2 * self.keypoints].reshape(-1, self.keypoints, 2) / s + a[:, None, :]
        ok = (w >= 0) & (h >= 0)
        dets = []
        for box, kp in self._weighted_nms(boxes[ok], kps[ok], score[ok], 0.3):
            c = _unletterbox(box.reshape(2, 2), pad)
            dets.append({"box": np.array([c[0, 0], c[0, 1], c[1, 0] - c[0, 0], c[1, 1] - c[0, 1]]),
                         "kp": _unletterbox(kp, pad)})
        return dets

    @staticmethod
    def _weighted_nms(boxes, kps, scores, threshold):
        """NonMaxSuppressionCalculator (WEIGHTED, IoU): each kept detection is the score-weighted
        mean of the boxes and keypoints overlapping the best remaining one by more than
        `threshold`, best first."""
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        out = []
        while order:
            top = order[0]         # (`i == top`: a box of zero area overlaps nothing, not even itself)
            near = [i for i in order if i == top or _iou(boxes[i], boxes[top]) > threshold]
            taken = set(near)
            order = [i for i in order if i not in taken]
            w = scores[near][:, None]
            out.append(((boxes[near] * w).sum(0) / w.sum(), (kps[near] * w[:, :, None]).sum(0) / w.sum()))
        return out


FACE_DETECTOR = _SSD("face_detection_short_range", 128, [8, 16, 16, 16], 6, -1.0,
                     outputs=("regressors", "classificators"))
POSE_DETECTOR = _SSD("pose_detection", 224, [8, 16, 32, 32, 32], 4, -1.0)
PALM_DETECTOR = _SSD("palm_detection_full", 192, [8, 16, 16, 16], 7, 0.0)


# --------------------------------------------------------------------- pose smoothing filters
class _LowPass:
    """mediapipe's LowPassFilter (float state), elementwise."""

    def __init__(self, alpha):
        self.alpha, self.value = np.float32(alpha), None

    def __call__(self, v):
        v = np.asarray(v, np.float32)
        self.value = v.copy() if self.value is None else self.alpha * v + (np.float32(1) - self.alpha) * self.value
        return self.value.astype(np.float64)


class _OneEuro:
    """mediapipe's OneEuroFilter, elementwise on pixel coordinates, values scaled by 1 / the
    object's size; the rate starts at 30 Hz and then follows the timestamps."""

    def __init__(self, min_cutoff, beta, d_cutoff):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.freq, self.last_ns = 30.0, -1
        self.x = self.raw = self.dx = None

    def _alpha(self, cutoff):
        te, tau = 1.0 / self.freq, 1.0 / (2 * math.pi * np.asarray(cutoff, np.float64))
        return 1.0 / (1.0 + tau / te)

    def __call__(self, v, t_us, object_scale):
        v = np.asarray(v, np.float64)
        t = int(t_us) * 1000
        if self.last_ns >= t or object_scale < 1e-6:
            return v
        if self.last_ns != 0 and t != 0:
            self.freq = 1.0 / ((t - self.last_ns) * 1e-9)
        self.last_ns = t
        dv = np.zeros_like(v) if self.raw is None else (v - self.raw) * (1.0 / np.float32(object_scale)) * self.freq
        a = np.float32(self._alpha(self.d_cutoff))
        dv = dv.astype(np.float32)
        self.dx = dv if self.dx is None else a * dv + (np.float32(1) - a) * self.dx
        ax = self._alpha(self.min_cutoff + self.beta * np.abs(self.dx.astype(np.float64))).astype(np.float32)
        vf = v.astype(np.float32)
        self.x = vf if self.x is None else ax * vf + (np.float32(1) - ax) * self.x
        self.raw = vf.astype(np.float64)
        return self.x.astype(np.float64)


@dataclass
class _TrackState:
    """What video mode carries from frame to frame (mediapipe's previous-frame loopbacks)."""
    t_us: int = 0                       # mediapipe's simulated clock: 33333 us per frame
    face_rect: _Rect | None = None
    pose_rect: _Rect | None = None
    pose_filters: dict | None = None
    hand_rects: list = field(default_factory=list)


# ------------------------------------------------------------------------------- the runtime
class LandmarkModels:
    """Face mesh, pose and hands on uint8 RGB images (static mode: detect_image) or the frames of
    a video in order (tracking mode: video()). `parts` picks the models run; refine_face adds
    the 10 iris points and mediapipe's lips / eyes refinement (478 points, else 468)."""

    def __init__(self, parts: tuple[str, ...] = PARTS, refine_face: bool = True):
        unknown = set(parts) - set(PARTS)
        if unknown:
            raise ValueError(f"unknown parts {sorted(unknown)}; choose from {PARTS}")
        self.parts, self.refine_face = tuple(parts), refine_face
        self.face_model = "face_landmark_with_attention" if refine_face else "face_landmark"

    def detect_image(self, rgb: np.ndarray) -> FrameLandmarks:
        """One photo, as mediapipe's static_image_mode=True."""
        return self._frame(_as_rgb(rgb), None)

    def video(self):
        """A function frame -> FrameLandmarks for the frames of one video, called in order, as
        static_image_mode=False: each part's ROI follows the previous frame's landmarks and its
        detector runs again only when the part was lost (hands: while fewer than 2 are tracked);
        the pose is smoothed as mediapipe's smooth_landmarks."""
        state = _TrackState()
        return lambda rgb: self._frame(_as_rgb(rgb), state)

    def detect_video(self, frames) -> list[FrameLandmarks]:
        track = self.video()
        return [track(f) for f in frames]

    def _frame(self, img, st: _TrackState | None) -> FrameLandmarks:
        tracking = st is not None
        st = st or _TrackState()
        st.t_us += 33333
        H, W = img.shape[:2]
        px = np.array([W, H], np.float64)
        res = FrameLandmarks()
        if "face" in self.parts:
            rect = st.face_rect if tracking else None
            if rect is None:
                dets = FACE_DETECTOR(img)
                rect = self._face_rect_from_detection(dets[0], W, H) if dets else None
            pts = self._face_landmarks(img, rect) if rect is not None else None
            st.face_rect = self._face_rect_from_landmarks(pts, W, H) if pts is not None else None
            if pts is not None:
                res.face = (pts * px).astype(np.float32)
        if "pose" in self.parts:
            res.pose = self._pose(img, st if tracking else None, px)
        if "hands" in self.parts:
            prev = st.hand_rects if tracking else []
            palms = [self._hand_rect_from_palm(d, W, H) for d in PALM_DETECTOR(img)[:2]] if len(prev) < 2 else []
            found, st.hand_rects = [], []
            for rect in self._associate(palms + prev):
                got = self._hand_landmarks(img, rect)
                if got is not None:
                    pts, label = got
                    found.append(((pts * px).astype(np.float32), label))
                    st.hand_rects.append(self._hand_rect_from_landmarks(pts, W, H))
            res.hands = found
        return res

    # ---- face (face_landmark_front_cpu)
    @staticmethod
    def _face_rect_from_detection(d, W, H) -> _Rect:
        """The ROI from a face detection: its box, rotated by the eyes (keypoints 0 -> 1), x1.5."""
        b = d["box"]
        r = _Rect(b[0] + b[2] / 2, b[1] + b[3] / 2, b[2], b[3], _rotation(d["kp"][0], d["kp"][1], W, H, 0.0))
        return r.transformed(W, H, 1.5)

    @staticmethod
    def _face_rect_from_landmarks(pts, W, H) -> _Rect:
        """The next frame's ROI: the box of all landmarks, rotated by the eye corners 33 -> 263, x1.5."""
        lo, hi = pts.min(0), pts.max(0)
        r = _Rect((lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, hi[0] - lo[0], hi[1] - lo[1],
                  _rotation(pts[33], pts[263], W, H, 0.0))
        return r.transformed(W, H, 1.5)

    def _face_landmarks(self, img, rect: _Rect):
        model = _model(self.face_model)
        x, _ = _crop(img, rect, 192, False, 0.0, 1.0)
        out = model({model.input_name: x})
        if self.refine_face:
            mesh, flag = out["output_mesh_identity"], out["conv_faceflag"]
        else:
            mesh, flag = out["conv2d_21"], out["conv2d_31"]
        if _sigmoid(float(flag.reshape(-1)[0])) < MIN_CONFIDENCE:
            return None
        pts = mesh.reshape(468, 3)[:, :2].astype(np.float64) / 192.0
        if self.refine_face:        # refined lips / eyes replace mesh points, irises are appended
            full = np.zeros((478, 2))
            full[:468] = pts
            for name, idx in model.refinement.items():
                full[idx] = out[name].reshape(-1, 2).astype(np.float64) / 192.0
            pts = full
        return _project(pts, rect)

    # ---- pose (pose_landmark_cpu)
    @staticmethod
    def _pose_rect(centre, edge, W, H) -> _Rect:
        """AlignmentPointsRectsCalculator: centred on `centre`, 2 x its distance to `edge` wide,
        turned so centre -> edge points up; x1.25."""
        size = 2 * math.hypot((edge[0] - centre[0]) * W, (edge[1] - centre[1]) * H)
        r = _Rect(centre[0], centre[1], size / W, size / H, _rotation(centre, edge, W, H, math.pi / 2))
        return r.transformed(W, H, 1.25)

    def _pose(self, img, st: _TrackState | None, px):
        """[33,3] pixels + visibility, or None. In tracking mode the ROI comes from the previous
        frame's two auxiliary landmarks (always filtered), the 33 points are smoothed."""
        H, W = img.shape[:2]
        rect = st.pose_rect if st is not None else None
        if rect is None:
            dets = POSE_DETECTOR(img)
            rect = self._pose_rect(dets[0]["kp"][0], dets[0]["kp"][1], W, H) if dets else None
        got = self._pose_landmarks(img, rect) if rect is not None else None
        if got is None:
            if st is not None:
                st.pose_rect, st.pose_filters = None, None     # mediapipe resets its filters on a lost pose
            return None
        pts, vis = got
        body, body_vis = pts[:33] * px, vis[:33]
        if st is not None:
            aux = pts[33:35] * px
            scale = 2 * float(np.linalg.norm(aux[1] - aux[0]))   # PoseLandmarkFiltering's ROI size
            if st.pose_filters is None:
                st.pose_filters = {"body": _OneEuro(0.05, 80.0, 1.0), "body_vis": _LowPass(0.1),
                                   "aux": _OneEuro(0.01, 10.0, 1.0)}
            f = st.pose_filters
            body_vis = f["body_vis"](body_vis)
            body = f["body"](body, st.t_us, scale)
            aux = f["aux"](aux, st.t_us, scale)
            st.pose_rect = self._pose_rect(aux[0] / px, aux[1] / px, W, H)
        return np.concatenate([body, body_vis[:, None]], 1).astype(np.float32)

    def _pose_landmarks(self, img, rect: _Rect):
        model = _model("pose_landmark_full")
        x, pad = _crop(img, rect, 256, True, 0.0, 1.0)
        out = model({model.input_name: x})
        if float(out["Identity_1"].reshape(-1)[0]) < MIN_CONFIDENCE:
            return None
        lm = out["Identity"].reshape(39, 5).astype(np.float64)      # 33 + 6 auxiliary: x, y, z, vis, presence
        pts = self._refine_from_heatmap(lm[:, :2] / 256.0, out["Identity_3"][0])
        return _project(_unletterbox(pts, pad), rect), _sigmoid(lm[:, 3])

    @staticmethod
    def _refine_from_heatmap(pts, heatmap, kernel=9):
        """RefineLandmarksFromHeatmapCalculator: each point moves to the confidence-weighted mean
        of the sigmoid heatmap in a kernel x kernel window around it, where the window's peak
        reaches 0.5. The graph's config says kernel_size 7, but the 0.10.21 wheel's results
        match a 9x9 window to 1e-5 heatmap cells and a 7x7 one does not."""
        Hh, Wh, _ = heatmap.shape
        out = pts.copy()
        half = (kernel - 1) // 2
        for i in range(len(pts)):
            c, r = int(pts[i, 0] * Wh), int(pts[i, 1] * Hh)           # truncation, as the C++ cast
            if not (0 <= c < Wh and 0 <= r < Hh):
                continue
            r0, r1, c0, c1 = max(0, r - half), min(Hh, r + half + 1), max(0, c - half), min(Wh, c + half + 1)
            conf = _sigmoid(heatmap[r0:r1, c0:c1, i].astype(np.float64))
            total = conf.sum()
            if conf.max() >= 0.5 and total > 0:
                rows, cols = np.mgrid[r0:r1, c0:c1]
                out[i] = (cols * conf).sum() / Wh / total, (rows * conf).sum() / Hh / total
        return out

    # ---- hands (hand_landmark_tracking_cpu)
    @staticmethod
    def _hand_rect_from_palm(d, W, H) -> _Rect:
        """The ROI from a palm: its box turned by wrist -> middle finger (keypoints 0 -> 2), x2.6,
        shifted half a box towards the fingers."""
        b = d["box"]
        r = _Rect(b[0] + b[2] / 2, b[1] + b[3] / 2, b[2], b[3], _rotation(d["kp"][0], d["kp"][2], W, H, math.pi / 2))
        return r.transformed(W, H, 2.6, shift_y=-0.5)

    @staticmethod
    def _hand_rect_from_landmarks(pts, W, H) -> _Rect:
        """HandLandmarksToRectCalculator: the next frame's ROI from the wrist, palm and finger-base
        points, turned by wrist -> middle of the finger bases, sized upright; x2, shifted 0.1."""
        p = pts * np.array([W, H])
        wrist, index, middle, ring = p[0], p[5], p[9], p[13]
        x1 = ((index[0] + ring[0]) / 2 + middle[0]) / 2
        y1 = ((index[1] + ring[1]) / 2 + middle[1]) / 2
        rot = _norm_radians(math.pi / 2 - math.atan2(-(y1 - wrist[1]), x1 - wrist[0]))
        partial = p[[0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18]]
        axis_centre = (partial.min(0) + partial.max(0)) / 2
        rel = partial - axis_centre
        c, s = math.cos(-rot), math.sin(-rot)
        rx, ry = rel[:, 0] * c - rel[:, 1] * s, rel[:, 0] * s + rel[:, 1] * c
        lo, hi = np.array([rx.min(), ry.min()]), np.array([rx.max(), ry.max()])
        pc = (lo + hi) / 2
        cr, sr = math.cos(rot), math.sin(rot)
        centre = axis_centre + np.array([pc[0] * cr - pc[1] * sr, pc[0] * sr + pc[1] * cr])
        size = hi - lo
        return _Rect(centre[0] / W, centre[1] / H, size[0] / W, size[1] / H, rot).transformed(W, H, 2.0, shift_y=-0.1)

    @staticmethod
    def _hand_landmarks(img, rect: _Rect):
        model = _model("hand_landmark_full")
        x, pad = _crop(img, rect, 224, True, 0.0, 1.0)
        out = model({model.input_name: x})
        if float(out["Identity_1"].reshape(-1)[0]) < MIN_CONFIDENCE:
            return None
        label = "Left" if float(out["Identity_2"].reshape(-1)[0]) >= 0.5 else "Right"
        pts = out["Identity"].reshape(21, 3)[:, :2].astype(np.float64) / 224.0
        return _project(_unletterbox(pts, pad), rect), label

    @staticmethod
    def _associate(rects, min_iou=0.5):
        """AssociationNormRectCalculator: a later rect replaces the earlier ones it overlaps by more
        than min_iou (tracked hands come last, so they win over new palm detections)."""
        out = []
        for r in rects:
            out = [q for q in out if _iou(q.box(), r.box()) <= min_iou]
            out.append(r)
        return out


def detect_faces(rgb: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Every face mediapipe's short-range face detector finds in the uint8 RGB image, as pixel
    boxes (x, y, w, h), the largest first (the detector's own order is by score)."""
    img = _as_rgb(rgb)
    H, W = img.shape[:2]
    boxes = [(float(d["box"][0] * W), float(d["box"][1] * H), float(d["box"][2] * W), float(d["box"][3] * H))
             for d in FACE_DETECTOR(img)]
    return sorted(boxes, key=lambda b: -b[2] * b[3])


def segment_person(rgb: np.ndarray) -> np.ndarray:
    """The person's (and hair's) probability per pixel, float32 [H,W] in 0..1, from
    selfie_segmentation (general model, 256x256: the whole image squashed onto it, as mediapipe's
    SelfieSegmentation), resized back to the image."""
    img = _as_rgb(rgb)
    H, W = img.shape[:2]
    model = _model("selfie_segmentation")
    x, _ = _crop(img, _Rect(0.5, 0.5, 1.0, 1.0), 256, False, 0.0, 1.0)
    mask = model({model.input_name: x})["activation_10"][0, :, :, 0]
    return cv2.resize(mask, (W, H), interpolation=cv2.INTER_LINEAR)


def _as_rgb(rgb) -> np.ndarray:
    """uint8 [H,W,3] (grayscale repeated, alpha dropped)."""
    a = np.asarray(rgb)
    if a.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image, got {a.dtype}")
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an image [H,W,3], got shape {a.shape}")
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return np.ascontiguousarray(a[..., :3])
