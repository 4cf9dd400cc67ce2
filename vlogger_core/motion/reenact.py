"""Reenactment: a driving video of any person -> a VLOGGER Motion that drives the photo.

The driving video goes through the same detector and fitting engine as dataset preparation
(training/dataset_prep.py: detect_landmarks, fit_clip, clip_motion): face mesh, pose and hands
per frame, the body fitted per window of frames (camera FOV estimated on the first window and
kept, shape per window; per frame orientation, upper body, head, jaw, eyes, fingers where a hand
is seen, and the 52 expressions), and the fit turned into residuals by dataset_prep's
clip_motion. The residuals are taken relative to the driving video's neutral frame (frame 0 by
default), so the photo keeps its own rest pose, expression and identity and only the driver's
changes are applied.

- Long videos stream: frames are decoded in windows (media.iter_frames) shrunk to `fit_size`
  as they are decoded; only one window (+ the overlap) is held, so memory stays flat; windows
  overlap by `overlap` frames and are crossfaded there.
- Frames where no face is found are interpolated between the nearest frames with a face (held
  at the ends) and reported (`lost_frames`, `lost_ranges`).
- Several people: in each window the person with the largest face (on the window's first
  frame) is tracked, the others painted over (body/detect.py person_view); reported.
- Smoothing: a Gaussian over time applied forwards and backwards (zero phase: no lag).
- The face: detected in tracking and in photo mode and the two meshes averaged (two crops'
  errors partly cancel: CROP_AGREE); fitted with a weaker expression prior than dataset
  preparation's (EXPR_PRIOR); the jaw's opening re-split between jaw pitch and jawOpen as the
  pack's motions carry it (tie_jaw_).
- parts: "face" (expressions, jaw, eyes), "face+head" (+ neck and head), "everything" (+ torso,
  arms, hands); each part's strength scales its expressions / rotation angles.
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..body.detect import Landmarks, detect, face_boxes, person_view
from ..callbacks import Interrupt, Progress, check, report
from ..errors import VloggerError
from ..media import iter_frames, shrink, to_uint8, video_info
from ..training import dataset_prep
from .params import (
    FACE_JOINTS,
    MOTION_JOINTS,
    Motion,
    axis_angle_to_matrix,
    by_rows,
    expression_names,
    matrix_to_axis_angle,
    matrix_to_rot6d,
    orthonormalize_,
    rot6d_to_matrix,
)
from .synthetic.priors import JAW_MAX_RAD

PARTS = ("everything", "face+head", "face")
HEAD_JOINTS = ("neck", "head")
VIDEO_FIX = "use a video of a person facing the camera, face visible"
# The mouth's opening is a few pixels of a small face, and the face mesh's lip points carry an
# error that depends on its crop (tracking mode crops around the previous frame's landmarks,
# photo mode around the face detector's box) more than on the pixels (shifting the whole
# frame by a pixel leaves it all but unchanged: r 0.715 -> 0.714). So each frame's face is
# detected in both modes and the two meshes averaged where they agree (CROP_AGREE: mean point
# distance, as a share of the face's size): two crops' errors partly cancel. On the shipped driving video the detected
# lip gap's r with the true one goes 0.715 (tracking) / 0.732 (photo mode) -> 0.755 (mean).
CROP_AGREE = 0.1
# The clip fit's expression prior for the reenactment. Dataset preparation's CLIP_EXPR_PRIOR
# (1e-3) is conservative on purpose (training targets: channels the landmarks barely see stay
# at 0), and it also holds down the small lip channels the landmarks do see: on the shipped
# video mouthLowerDownLeft/Right came out at a mean |.| of 0.006 / 0.035 against the truth's
# 0.13, so the lower lip's own motion was left to the jaw (whose rotation is slower). A third of
# it (0.015 / 0.088 there, with the two-crop face) lets the lips follow their landmarks; unseen channels drift more
# (1e-4 is where body/fit.py saw that start), which a reenactment, unlike training data, can
# take: it is applied relative to the neutral frame and smoothed.
EXPR_PRIOR = 3e-4


class ReenactError(VloggerError):
    """A driving video or setting the reenactment cannot use (`arg` names it)."""


@dataclass
class ReenactSettings:
    parts: str = "everything"
    face_strength: float = 1.0      # expressions, jaw and eyes
    head_strength: float = 1.0      # neck and head rotation
    body_strength: float = 1.0      # torso, arms, hands (and the whole body's turn)
    neutral_frame: int = 0          # the driving frame whose pose and expression map to the photo's
    #                                 (-1: auto, the frame with a face whose mouth is most closed,
    #                                 eyes open)
    smoothing: float = 1.0          # Gaussian sigma in frames, zero phase (0: off)
    window: int = 240               # frames fitted together (held in memory at once)
    overlap: int = 12               # frames two windows share, crossfaded
    fit_size: int = 256             # the short side the frames are shrunk to for landmarks and the fit
    iters: int = 120                # fit iterations per window (dataset preparation's)


@dataclass
class Reenactment:
    motion: Motion
    report: dict = field(default_factory=dict)


def check_settings(s: ReenactSettings) -> None:
    if s.parts not in PARTS:
        raise ReenactError(f"unknown parts {s.parts!r}", "parts", f"choose one of {list(PARTS)}")
    for name in ("face_strength", "head_strength", "body_strength"):
        v = getattr(s, name)
        if not (math.isfinite(v) and 0.0 <= v <= 3.0):
            raise ReenactError(f"{name} {v} is outside 0..3", name, "use 0 (off) to 1 (as driven), up to 3")
    if not (math.isfinite(s.smoothing) and 0.0 <= s.smoothing <= 10.0):
        raise ReenactError(f"smoothing {s.smoothing} is outside 0..10 frames", "smoothing",
                           "use 0 (none) to about 2 frames")
    if s.neutral_frame < -1:
        raise ReenactError(f"neutral_frame {s.neutral_frame} is not a frame", "neutral_frame",
                           "use a frame index from 0, or -1 for the frame with the most closed mouth")
    if s.window < 8 or not 0 <= s.overlap <= s.window // 2:
        raise ReenactError(f"window {s.window} / overlap {s.overlap} cannot be used", "window",
                           "use a window of at least 8 frames and an overlap of at most half of it")
    if s.fit_size < 64:
        raise ReenactError(f"fit_size {s.fit_size} is too small", "fit_size", "use 256")


# ----------------------------------------------------------------------------- one window
def _one_person(frames: np.ndarray) -> tuple[np.ndarray, tuple[int, int], int]:
    """(frames showing only the person with the largest face on the first frame that has one,
    the view's origin in the frames, the number of faces there)."""
    for f in frames[:: max(1, len(frames) // 4)]:
        boxes = face_boxes(np.ascontiguousarray(f))
        if len(boxes) > 1:
            views = [person_view(np.ascontiguousarray(g), boxes) for g in frames]
            return np.stack([v for v, _ in views]), views[0][1], len(boxes)
        if boxes:
            return frames, (0, 0), 1
    return frames, (0, 0), 0


def two_crop_faces(tracked: Landmarks, photo: Landmarks, agree: float = CROP_AGREE) -> Landmarks:
    """`tracked` with its face mesh averaged with `photo`'s (the same frames detected in photo
    mode) in the frames where both found a face and the two meshes agree (mean point distance
    at most `agree` x the tracked face's size: the same face); elsewhere the tracked one."""
    a, b = tracked.face, photo.face
    both = np.flatnonzero(~np.isnan(a[:, 0, 0]) & ~np.isnan(b[:, 0, 0]))
    if not len(both):
        return tracked
    pa, pb = a[both], b[both]
    size = np.nanmax(pa[..., 1], 1) - np.nanmin(pa[..., 1], 1)
    use = both[np.nanmean(np.linalg.norm(pa - pb, axis=-1), 1) <= agree * size]
    face = a.copy()
    face[use] = 0.5 * (a[use] + b[use])
    return Landmarks(face, tracked.pose, tracked.hands)


def _fit_window(body, frames: np.ndarray, fov: float, iters: int, device, interrupt):
    """(ClipFit of the window or None without a face, faces seen, face found per frame)."""
    view, (ox, oy), faces = _one_person(frames)
    try:
        lms = dataset_prep.detect_landmarks(view, interrupt)
        photo = detect(view, tracking=False, parts=("face",), backend=dataset_prep.landmark_backend(),
                       interrupt=interrupt)
    except dataset_prep.DatasetError as e:
        raise ReenactError(e.message, "detector", e.fix) from None
    lms = two_crop_faces(lms, photo).moved(ox, oy)
    found = lms.face_found()
    if not found.any():
        return None, faces, found
    H, W = frames.shape[1:3]
    settings = dataset_prep.PrepSettings(iters=iters, fov=fov, expr_prior=EXPR_PRIOR)
    return dataset_prep.fit_clip(body, lms, W, H, settings, device), max(faces, 1), found


def _relative_vectors(fit, ref: tuple, fps: float, expression_set: str) -> torch.Tensor:
    """[T, D] motion vectors of a window's fit relative to `ref` (global orientation [3], pose
    [55,3,3], expression [E] of one fitted frame): dataset_prep.clip_motion on the window with the
    reference frame put first."""
    o, p, e = ref
    aug = dataset_prep.ClipFit(fit.camera, fit.betas, torch.cat([o[None], fit.global_orient]),
                               torch.cat([fit.transl[:1], fit.transl]), torch.cat([p[None], fit.poses]),
                               torch.cat([e[None], fit.expression]), fit.error_px, fit.jitter_px)
    return dataset_prep.clip_motion(aug, 0, fps, expression_set).as_vector()[1:]


def _align(x: torch.Tensor, prev: torch.Tensor, both: np.ndarray, E: int) -> torch.Tensor:
    """A window's vectors x [T, D] joined onto the previous window's, whose last rows `prev`
    [ov, D] are the same frames as x's first: each window is fitted on its own (its shape and
    placement differ a little), so only its motion relative to itself is used, carried on from
    the previous window at the middle overlap frame both saw a face in (rotations:
    prev(s) @ x(s)^T @ x(t); expressions: offset by their mean difference there)."""
    idx = np.flatnonzero(both)
    if not len(idx):
        return x
    s = int(idx[len(idx) // 2])
    ov = len(prev)
    J = (x.shape[1] - E) // 6
    R = rot6d_to_matrix(x[:, E:].reshape(len(x), J, 6))
    P = rot6d_to_matrix(prev[s, E:].reshape(J, 6))
    out = x.clone()
    out[:, E:] = matrix_to_rot6d((P @ R[s].transpose(-1, -2))[None] @ R).reshape(len(x), -1)
    out[:, :E] = x[:, :E] + (prev[idx, :E] - x[:ov][idx, :E]).mean(0)
    return out


# ----------------------------------------------------------------------------- motion edits
def _fill_lost(x: torch.Tensor, found: np.ndarray) -> None:
    """Rows of x [N, D] where found is False: linearly interpolated between the nearest found rows
    (held at the ends), in place; memory in proportion to the lost rows only (a long video)."""
    idx = np.flatnonzero(found)
    lost = np.flatnonzero(~found)
    if not len(lost) or not len(idx):
        return
    j = np.searchsorted(idx, lost)
    lo, hi = idx[np.clip(j - 1, 0, len(idx) - 1)], idx[np.clip(j, 0, len(idx) - 1)]
    w = torch.from_numpy(np.where(hi > lo, (lost - lo) / np.maximum(hi - lo, 1), 0.0))[:, None].to(x.dtype)
    x[lost] = x[lo] * (1 - w) + x[hi] * w


def _openness(e: torch.Tensor, expression_set: str) -> torch.Tensor:
    """[N] how far each frame's face is from a rest face (mouth closed, eyes open): ARKit's jawOpen
    plus half the blinks; other expression sets: the sum of |coefficients|."""
    names = expression_names(expression_set)
    if "jawOpen" in names:
        return e[:, names.index("jawOpen")] + 0.5 * (e[:, names.index("eyeBlinkLeft")] +
                                                     e[:, names.index("eyeBlinkRight")])
    return e.abs().sum(1)


def _ranges(mask: np.ndarray) -> list[list[int]]:
    """[[first, last], ...] of the runs of True in mask."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return [[int(a), int(b) - 1] for a, b in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1))]


def smooth_zero_phase(x: torch.Tensor, sigma: float, block: int = 16, out: torch.Tensor | None = None
                      ) -> torch.Tensor:
    """[N, D] smoothed over time by a Gaussian of `sigma` frames, centred (the same filter forwards
    and backwards: no lag), edges by reflection. `block` columns at a time, the kernel's taps
    added as shifted slices: conv1d's working memory is many times its input's (measured: +836
    MB for all 334 columns of a 30-minute motion at once, +59 MB in slices of 16), so a long
    video's motion is smoothed in a few MB. `out`: where the result goes (x itself is exact:
    each slice is read before it is written; None: a new tensor)."""
    if sigma <= 0 or len(x) < 2:
        return x if out is None else out.copy_(x)
    r = max(1, int(math.ceil(3 * sigma)))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float64) / sigma) ** 2)
    k = (k / k.sum()).tolist()
    mode = "replicate" if len(x) <= r else "reflect"
    out = torch.empty_like(x) if out is None else out
    n = len(x)
    for c in range(0, x.shape[1], block):
        y = torch.nn.functional.pad(x[:, c:c + block].T[None], (r, r), mode=mode)[0].T     # [N + 2r, b]
        acc = y[:n] * k[0]
        for i in range(1, 2 * r + 1):
            acc.add_(y[i:i + n], alpha=k[i])
        out[:, c:c + block] = acc
    return out


def scale_rotations(r6: torch.Tensor, s: float) -> torch.Tensor:
    """6D rotations [..., 6] with their angle scaled by s (0: identity, 1: as they are)."""
    if s == 1.0:
        return r6
    return matrix_to_rot6d(axis_angle_to_matrix(matrix_to_axis_angle(rot6d_to_matrix(r6)) * s))


def _copy(m: Motion) -> Motion:
    return Motion(m.fps, m.expression_set, m.expression.clone(), m.rot6d.clone(), list(m.joints))


def rereference_(m: Motion, frame: int) -> None:
    """rereference, in place (a long video's motion is not copied)."""
    inv = rot6d_to_matrix(m.rot6d[frame]).transpose(-1, -2)[None]
    by_rows(lambda r: matrix_to_rot6d(inv @ rot6d_to_matrix(r)), m.rot6d, out=m.rot6d)
    m.expression -= m.expression[frame][None].clone()


def rereference(m: Motion, frame: int) -> Motion:
    """The motion relative to its own frame `frame` (that frame becomes the identity / zero)."""
    out = _copy(m)
    rereference_(out, frame)
    return out


def tie_jaw_(m: Motion) -> None:
    """The mouth's opening put in the pack's convention, in place. The fit splits an opening
    between the jaw joint's pitch and jawOpen as each frame's landmarks happen to favour (the two
    move the lower lip nearly alike), while the pack's motions tie them: pitch = JAW_MAX_RAD x
    jawOpen (motion/synthetic/priors, body/reference JAW_RAD_PER_OPEN), and the default
    renderer's soft lips read jawOpen (render/talking_video, LIP_SEAL: an opening carried by
    the joint alone would be drawn with the lips sealed). The opening jawOpen + pitch /
    JAW_MAX_RAD (motion/sampling.mouth_opening's measure, signed here: a residual can close
    past the neutral frame) is kept and split that way: jawOpen = opening / 2, pitch =
    JAW_MAX_RAD x opening / 2; the jaw's other axes stay as fitted."""
    names = expression_names(m.expression_set)
    if "jawOpen" not in names or "jaw" not in m.joints:
        return
    k, jo = m.joints.index("jaw"), names.index("jawOpen")
    aa = matrix_to_axis_angle(rot6d_to_matrix(m.rot6d[:, k]))
    half = (m.expression[:, jo] + aa[:, 0] / JAW_MAX_RAD) / 2
    m.expression[:, jo] = half
    aa[:, 0] = JAW_MAX_RAD * half
    m.rot6d[:, k] = matrix_to_rot6d(axis_angle_to_matrix(aa))


def apply_parts(m: Motion, s: ReenactSettings) -> Motion:
    """Keep the chosen parts at their strengths; the others stay at the photo's rest pose."""
    out = _copy(m)
    apply_parts_(out, s)
    return out


def apply_parts_(m: Motion, s: ReenactSettings) -> None:
    """apply_parts, in place."""
    for k, j in enumerate(m.joints):
        if j in FACE_JOINTS:
            strength = s.face_strength
        elif j in HEAD_JOINTS:
            strength = s.head_strength if s.parts != "face" else 0.0
        else:
            strength = s.body_strength if s.parts == "everything" else 0.0
        if strength != 1.0:
            m.rot6d[:, k] = scale_rotations(m.rot6d[:, k], strength)
    if s.face_strength != 1.0:
        m.expression *= s.face_strength


def fit_long_side(h: int, w: int, fit_size: int) -> int:
    """The long side that puts the frame's short side at `fit_size` (the size dataset
    preparation fits at), so a wide frame keeps its people as large as a square one."""
    return int(round(fit_size * max(h, w) / max(1, min(h, w))))


# ----------------------------------------------------------------------------- the whole video
def reenact(chunks: Iterable, fps: float, body, settings: ReenactSettings = ReenactSettings(),
            total_frames: int | None = None, device="cpu", progress: Progress = None,
            interrupt: Interrupt = None) -> Reenactment:
    """Driving frames (an iterable of chunks [n,H,W,3], uint8 or float 0..1, at `fps`; every chunk
    the same size) -> the motion relative to the neutral frame, and a report (module docstring).
    ReenactError's arg: 'frames', 'fps', 'detector' or a ReenactSettings field."""
    check_settings(settings)
    if not (math.isfinite(fps) and 1.0 <= fps <= 240.0):
        raise ReenactError(f"fps {fps} is not a frame rate", "fps", "give the driving video's frame rate (e.g. 24, 25, 30)")
    t_start = time.time()
    S = settings
    expression_set = body.expression_set
    body_expressions = Motion.neutral(1, fps, expression_set).expression.shape[1]
    # The committed rows, expression and rotations apart, written in place as windows finish:
    # room for total_frames (+ a window) from the start, doubled if that runs out; so the end
    # needs no second copy of a long video's motion (30 min: 43,200 x 334 float32 = 55 MB).
    store: list[torch.Tensor] = []
    filled = 0

    def commit(x: torch.Tensor) -> None:
        nonlocal store, filled
        need = filled + len(x)
        if not store or need > len(store[0]):
            cap = max(need, (total_frames or 0) + S.window, 2 * len(store[0]) if store else 0)
            grown = [torch.empty(cap, body_expressions), torch.empty(cap, x.shape[1] - body_expressions)]
            for g, old in zip(grown, store):
                g[:filled] = old[:filled]
            store = grown
        store[0][filled:need], store[1][filled:need] = x[:, :body_expressions], x[:, body_expressions:]
        filled = need

    found_all: list[np.ndarray] = []
    pending: torch.Tensor | None = None     # the last window's overlap rows, to crossfade
    buf: list[np.ndarray] = []
    ref, fov, faces_max, several, windows, shape = None, 0.0, 0, 0, 0, None
    done = 0

    def run_window(frames: np.ndarray, last: bool) -> None:
        nonlocal ref, fov, faces_max, several, windows, pending, done
        check(interrupt)
        fit, faces, found = _fit_window(body, frames, fov, S.iters, device, interrupt)
        windows += 1
        faces_max = max(faces_max, faces)
        several += int(faces > 1)
        x = None
        if fit is not None:
            fov = fov or float(fit.camera.fov_diag_deg)
            if ref is None:
                a = int(np.argmax(found))
                ref = (fit.global_orient[a].clone(), fit.poses[a].clone(), fit.expression[a].clone())
            x = _relative_vectors(fit, ref, fps, expression_set)
        if x is None:
            D = Motion.neutral(1, fps, expression_set).as_vector().shape[1]
            x = torch.full((len(frames), D), float("nan"))
        ov = 0 if pending is None else len(pending)
        if ov and fit is not None:
            x = _align(x, pending, found[:ov] & found_all[-1], body_expressions)
        if ov:
            w = torch.linspace(0, 1, ov + 2)[1:-1, None]
            head = x[:ov]
            both = ~torch.isnan(pending[:, :1]) & ~torch.isnan(head[:, :1])
            mixed = torch.where(both, pending * (1 - w) + head * w, torch.where(torch.isnan(head), pending, head))
            x = torch.cat([mixed, x[ov:]])
            f_prev = found_all.pop()
            found = found.copy()
            found[:ov] = found[:ov] | f_prev
        keep = len(frames) if last else len(frames) - S.overlap
        commit(x[:keep])
        found_all.append(found[:keep])
        if not last and S.overlap:
            pending = x[keep:]
            found_all.append(found[keep:])
        done += keep
        report(progress, done, max(total_frames or 0, done + (0 if last else S.overlap)))

    it = iter(chunks)
    exhausted = False
    while not exhausted or len(buf) > 0:
        while not exhausted and len(buf) < S.window:
            try:
                c = to_uint8(next(it))
            except StopIteration:
                exhausted = True
                break
            if c.ndim != 4 or c.shape[-1] < 3 or len(c) == 0:
                raise ReenactError(f"expected frames [T,H,W,3], got {tuple(c.shape)}", "frames",
                                   "give the driving video as a VIDEO or an IMAGE batch [frames, height, width, 3]")
            for f in c:
                g = shrink(np.ascontiguousarray(f[..., :3]), fit_long_side(f.shape[0], f.shape[1], S.fit_size))
                if shape is not None and g.shape != shape:
                    raise ReenactError(f"frames of different sizes ({shape[:2]} and {g.shape[:2]})", "frames",
                                       "give frames of one size")
                shape = g.shape
                buf.append(g)
        if not buf:
            break
        last = exhausted and len(buf) <= S.window
        n = len(buf) if last else S.window
        run_window(np.stack(buf[:n]), last)
        buf = [] if last else buf[n - S.overlap:]
    if not filled:
        raise ReenactError("the driving video has no frames", "frames", VIDEO_FIX)
    found = np.concatenate(found_all)
    N = filled
    if ref is None:
        raise ReenactError(f"no face found in any of the driving video's {N} frames", "frames", VIDEO_FIX)
    # every step from here works in place: a long video's motion is held once, not once per step
    expr, rot = store[0][:N], store[1][:N]
    lost = ~found
    for part in (expr, rot):
        _fill_lost(part, found)
        smooth_zero_phase(part, S.smoothing, out=part)
    m = Motion(fps, expression_set, expr, rot.view(N, -1, 6), list(MOTION_JOINTS))
    orthonormalize_(m.rot6d)
    notes = []
    if S.neutral_frame == -1:
        score = _openness(m.expression, expression_set).numpy().copy()
        score[lost] = np.inf
        neutral = int(np.argmin(score))
    else:
        neutral = min(S.neutral_frame, N - 1)
    if S.neutral_frame >= 0 and neutral != S.neutral_frame:
        notes.append(f"neutral_frame {S.neutral_frame} is past the video's {N} frames: used its last frame")
    if lost[neutral]:
        near = int(np.flatnonzero(found)[np.argmin(np.abs(np.flatnonzero(found) - neutral))])
        notes.append(f"no face in neutral frame {neutral}: used frame {near}, the nearest with one")
        neutral = near
    rereference_(m, neutral)
    tie_jaw_(m)
    apply_parts_(m, S)
    if lost.any():
        notes.append(f"no face in {int(lost.sum())} of {N} frames: interpolated between the nearest frames "
                     f"with a face (held at the video's ends)")
    if several:
        notes.append(f"up to {faces_max} faces in view: followed the person with the largest face")
    rep = {"frames": N, "fps": fps, "lost_frames": int(lost.sum()), "lost_ranges": _ranges(lost),
           "faces_max": faces_max, "windows": windows, "windows_with_several_faces": several,
           "neutral_frame": neutral, "fov_diag_deg": round(fov, 1), "parts": S.parts,
           "seconds": round(time.time() - t_start, 2), "notes": notes}
    return Reenactment(m, rep)


def reenact_frames(frames, fps: float, body, settings: ReenactSettings = ReenactSettings(), device="cpu",
                   progress: Progress = None, interrupt: Interrupt = None) -> Reenactment:
    """An in-memory driving video [T,H,W,3] (uint8 or float 0..1) -> Reenactment."""
    if not hasattr(frames, "shape") or len(frames.shape) != 4 or frames.shape[-1] < 3:
        raise ReenactError(f"expected frames [T,H,W,3], got {getattr(frames, 'shape', type(frames).__name__)}",
                           "frames", "give the driving video as an IMAGE batch [frames, height, width, 3]")
    T = int(frames.shape[0])
    return reenact((frames[a:a + settings.window] for a in range(0, T, settings.window)), fps, body, settings,
                   T, device, progress, interrupt)


def reenact_file(path, body, settings: ReenactSettings = ReenactSettings(), fps: float | None = None,
                 device="cpu", progress: Progress = None, interrupt: Interrupt = None) -> Reenactment:
    """A driving video file, streamed window by window (flat memory) -> Reenactment at `fps`
    (None: the file's average rate)."""
    rate, seconds, w, h = video_info(path)
    fps = float(fps or rate)
    return reenact(iter_frames(path, fps, settings.window, fit_long_side(h, w, settings.fit_size)), fps, body, settings,
                   int(round(seconds * fps)) or None, device, progress, interrupt)
