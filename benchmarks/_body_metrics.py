"""Body metrics measured on OUTPUT frames with the pack's own landmark detector (body/detect.py,
backend "landmarks": mediapipe's pose and selfie-segmentation models run on LiteRT). The detector
knows nothing about how the frames were made.

    frames = media.read_frames("out.mp4")[0]          # [T,H,W,3] uint8
    lm = body_landmarks(frames)                       # pose, tracking mode, primed (see there)
    shoulder_motion_pct(lm)                           # goal >= 1.0
    background_change(frames, person_masks(frames))   # goal < 2 (levels of 255)

Used by benchmarks/body_motion.py, benchmarks/quality.py and tests/test_body_motion.py.
"""
from __future__ import annotations

import cv2
import numpy as np

SHOULDERS = (11, 12)          # mediapipe pose: left / right shoulder
ELBOWS = (13, 14)
WRISTS = (15, 16)
SEEN = 0.5                    # a pose point counts where its visibility is at least this


WARMUP_FRAMES = 72            # the tracker is primed on the first frame this many times


def body_landmarks(frames: np.ndarray, tracking: bool = True, warmup: int = WARMUP_FRAMES):
    """Pose landmarks of uint8 RGB frames [T,H,W,3] -> body.detect.Landmarks (its .pose is
    [T,33,3]: x, y px, visibility). A video: tracking mode, as one would run the detector on
    footage, primed by running it on the first frame `warmup` times first (those results are
    dropped). Why: unprimed, the tracker's first frames search for the ROI and its pose filter
    (mediapipe's one-euro, 0.05 Hz minimum cutoff: a ~3 s time constant for slow motion) then
    settles for seconds: on a still video that alone reads as shoulder_motion_pct ~0.8-1.3;
    primed, 0.16-0.45 (the detector's floor, measured by benchmarks/body_motion.py)."""
    from vlogger_core.body.detect import detect
    frames = np.asarray(frames)
    if tracking and warmup > 0 and len(frames):
        frames = np.concatenate([np.repeat(frames[:1], warmup, 0), frames])
    else:
        warmup = 0
    return detect(frames, tracking=tracking, parts=("pose",), backend="landmarks").slice(warmup, len(frames))


def person_masks(frames: np.ndarray) -> np.ndarray:
    """[T,H,W] float32 0..1 person probability per frame (the detector's selfie segmentation)."""
    from vlogger_core.body.landmark_models import segment_person
    return np.stack([segment_person(np.ascontiguousarray(f)) for f in frames])


def _pose(landmarks) -> np.ndarray:
    """A Landmarks (or its pose array [T,33,3]) -> the pose array."""
    pose = np.asarray(getattr(landmarks, "pose", landmarks), np.float64)
    if pose.ndim != 3 or pose.shape[1] < 17 or pose.shape[2] < 3:
        raise ValueError(f"expected pose landmarks [T,33,3], got shape {pose.shape}")
    return pose


def _seen(pose: np.ndarray, points: tuple[int, ...]) -> np.ndarray:
    """[T] frames where every one of `points` is found with visibility >= SEEN."""
    p = pose[:, list(points)]
    return (~np.isnan(p[..., :2]).any(-1) & (np.nan_to_num(p[..., 2]) >= SEEN)).all(-1)


def shoulder_motion_pct(landmarks, axes: tuple[int, ...] = (0, 1)) -> float | None:
    """How much the seen shoulders move: the standard deviation over time of the shoulders'
    midpoint (2D: sqrt(var x + var y), pixels) in % of the mean seen shoulder width, over the
    frames where both shoulders (pose points 11 / 12) are seen (visibility >= 0.5).
    landmarks: what body_landmarks returns (or its .pose [T,33,3]); axes=(0,) for the lateral
    part only. None: seen in < 3 frames."""
    pose = _pose(landmarks)
    ok = _seen(pose, SHOULDERS)
    if ok.sum() < 3:
        return None
    left, right = pose[ok, SHOULDERS[0], :2], pose[ok, SHOULDERS[1], :2]
    mid = (left + right) / 2
    width = float(np.linalg.norm(left - right, axis=1).mean())
    spread = float(np.sqrt(mid.var(0)[list(axes)].sum()))
    return 100.0 * spread / max(width, 1e-6)


def limb_motion_pct(landmarks, frame_size: tuple[int, int] | None = None,
                    points: tuple[int, ...] = WRISTS + ELBOWS) -> float | None:
    """The same measure for other pose points (default: wrists and elbows): per point, the std of
    its position over the frames where it is seen (and, with frame_size = (width, height), inside
    the frame: the pose model also guesses points below the image), averaged over the points seen
    in >= 3 frames, in % of the mean seen shoulder width. None when no point or no shoulder
    width is seen."""
    pose = _pose(landmarks)
    both = _seen(pose, SHOULDERS)
    if both.sum() < 1:
        return None
    width = float(np.linalg.norm(pose[both, SHOULDERS[0], :2] - pose[both, SHOULDERS[1], :2], axis=1).mean())
    spreads = []
    for p in points:
        ok = _seen(pose, (p,))
        if frame_size is not None:
            x, y = pose[:, p, 0], pose[:, p, 1]
            ok &= (x >= 0) & (x < frame_size[0]) & (y >= 0) & (y < frame_size[1])
        if ok.sum() >= 3:
            spreads.append(float(np.sqrt(pose[ok, p, :2].var(0).sum())))
    if not spreads:
        return None
    return 100.0 * float(np.mean(spreads)) / max(width, 1e-6)


def background_mask(masks: np.ndarray, dilate_frac: float = 0.03, threshold: float = 0.5) -> np.ndarray:
    """[H,W] bool: pixels outside every frame's person mask (masks [T,H,W] or [H,W], 0..1) after
    the union is dilated by dilate_frac of the image's long side (the soft edge, hair, shadows)."""
    m = np.asarray(masks)
    m = (m > threshold) if m.ndim == 2 else (m > threshold).any(0)
    r = max(1, int(round(dilate_frac * max(m.shape))))
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(m.astype(np.uint8), k) == 0


def background_change(frames: np.ndarray, masks: np.ndarray, dilate_frac: float = 0.03) -> float | None:
    """Mean absolute change of the background, in levels of 255: |frame t - frame 0| averaged over
    frames t >= 1, the 3 channels and the pixels outside the dilated union of the person masks
    (background_mask). frames [T,H,W,3] uint8; masks [T,H,W] (person_masks) or one [H,W].
    None when fewer than 2 frames or no background pixel is left."""
    frames = np.asarray(frames)
    bg = background_mask(masks, dilate_frac)
    if len(frames) < 2 or not bg.any():
        return None
    ref = frames[0][bg].astype(np.float32)
    total = 0.0
    for f in frames[1:]:
        total += float(np.abs(f[bg].astype(np.float32) - ref).mean())
    return total / (len(frames) - 1)


def shoulder_shift_pct(frames: np.ndarray, landmarks) -> float | None:
    """How much the pixels around the shoulders move, measured on the pixels alone: each frame's
    band around the seen shoulder line (a shoulder width wide, half of one high, centred on the
    shoulders' median midpoint) registered to the first frame's by phase correlation (subpixel,
    Hanning window); the std over time of that 2D shift (sqrt(var x + var y)) in % of the seen
    shoulder width. Why beside shoulder_motion_pct: the pose tracker's own filtering wanders by
    ~1 % on a still body, so a slow motion of that size (breathing) is read unreliably; a
    registration of the same pixels is exact on a still video (0 up to the codec). The detector
    only says where the shoulders are. None: shoulders seen in < 3 frames."""
    pose = _pose(landmarks)
    ok = _seen(pose, SHOULDERS)
    if ok.sum() < 3:
        return None
    left, right = pose[ok, SHOULDERS[0], :2], pose[ok, SHOULDERS[1], :2]
    width = float(np.linalg.norm(left - right, axis=1).mean())
    cx, cy = np.median((left + right) / 2, axis=0)
    frames = np.asarray(frames)
    H, W = frames.shape[1:3]
    x0, x1 = int(max(0, cx - width / 2)), int(min(W, cx + width / 2))
    y0, y1 = int(max(0, cy - width / 4)), int(min(H, cy + width / 4))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    band = lambda f: cv2.cvtColor(np.ascontiguousarray(f[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY).astype(np.float64)  # noqa: E731
    win = cv2.createHanningWindow((x1 - x0, y1 - y0), cv2.CV_64F)
    ref = band(frames[0])
    shifts = np.array([cv2.phaseCorrelate(ref, band(f), win)[0] for f in frames])
    return 100.0 * float(np.sqrt(shifts.var(0).sum())) / max(width, 1e-6)
