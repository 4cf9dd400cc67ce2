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

from ..body.detect import face_boxes, person_view
from ..callbacks import Interrupt, Progress, check, report
from ..errors import VloggerError
from ..media import iter_frames, shrink, to_uint8, video_info
from ..training import dataset_prep
from .params import (
    FACE_JOINTS,
    Motion,
    axis_angle_to_matrix,
    expression_names,
    matrix_to_axis_angle,
    matrix_to_rot6d,
    rot6d_to_matrix,
)

PARTS = ("everything", "face+head", "face")
HEAD_JOINTS = ("neck", "head")
VIDEO_FIX = "use a video of a person facing the camera, face visible"


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


def _fit_window(body, frames: np.ndarray, fov: float, iters: int, device, interrupt):
    """(ClipFit of the window or None without a face, faces seen, face found per frame)."""
    view, (ox, oy), faces = _one_person(frames)
    try:
        lms = dataset_prep.detect_landmarks(view, interrupt).moved(ox, oy)
    except dataset_prep.DatasetError as e:
        raise ReenactError(e.message, "detector", e.fix) from None
    found = lms.face_found()
    if not found.any():
        return None, faces, found
    H, W = frames.shape[1:3]
    fit = dataset_prep.fit_clip(body, lms, W, H, dataset_prep.PrepSettings(iters=iters, fov=fov), device)
    return fit, max(faces, 1), found


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
    (held at the ends), in place."""
    idx = np.flatnonzero(found)
    lost = np.flatnonzero(~found)
    if not len(lost):
        return
    xs = x[idx].double().numpy()
    out = np.stack([np.interp(lost, idx, xs[:, d]) for d in range(x.shape[1])], 1)
    x[lost] = torch.from_numpy(out).to(x.dtype)


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


def smooth_zero_phase(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """[N, D] smoothed over time by a Gaussian of `sigma` frames, centred (the same filter forwards
    and backwards: no lag), edges by reflection."""
    if sigma <= 0 or len(x) < 2:
        return x
    r = max(1, int(math.ceil(3 * sigma)))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float64) / sigma) ** 2)
    k = (k / k.sum()).to(x.dtype)
    y = x.T[:, None]                                     # [D, 1, N]
    y = torch.nn.functional.pad(y, (r, r), mode="replicate" if len(x) <= r else "reflect")
    return torch.nn.functional.conv1d(y, k[None, None]).reshape(x.shape[1], -1).T.contiguous()


def scale_rotations(r6: torch.Tensor, s: float) -> torch.Tensor:
    """6D rotations [..., 6] with their angle scaled by s (0: identity, 1: as they are)."""
    if s == 1.0:
        return r6
    return matrix_to_rot6d(axis_angle_to_matrix(matrix_to_axis_angle(rot6d_to_matrix(r6)) * s))


def rereference(m: Motion, frame: int) -> Motion:
    """The motion relative to its own frame `frame` (that frame becomes the identity / zero)."""
    R = m.rotation_matrices()
    rel = R[frame].transpose(-1, -2)[None] @ R
    return Motion(m.fps, m.expression_set, (m.expression - m.expression[frame][None]).contiguous(),
                  matrix_to_rot6d(rel).contiguous(), list(m.joints))


def apply_parts(m: Motion, s: ReenactSettings) -> Motion:
    """Keep the chosen parts at their strengths; the others stay at the photo's rest pose."""
    r6 = m.rot6d.clone()
    for k, j in enumerate(m.joints):
        if j in FACE_JOINTS:
            strength = s.face_strength
        elif j in HEAD_JOINTS:
            strength = s.head_strength if s.parts != "face" else 0.0
        else:
            strength = s.body_strength if s.parts == "everything" else 0.0
        r6[:, k] = scale_rotations(r6[:, k], strength)
    return Motion(m.fps, m.expression_set, (m.expression * s.face_strength).contiguous(), r6, list(m.joints))


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
    vectors: list[torch.Tensor] = []        # per output frame range, committed
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
        vectors.append(x[:keep])
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
    if not vectors:
        raise ReenactError("the driving video has no frames", "frames", VIDEO_FIX)
    x = torch.cat(vectors)
    found = np.concatenate(found_all)
    N = len(x)
    if ref is None:
        raise ReenactError(f"no face found in any of the driving video's {N} frames", "frames", VIDEO_FIX)
    lost = ~found
    _fill_lost(x, found)
    x = smooth_zero_phase(x, S.smoothing)
    m = Motion.from_vector(x.float(), fps, expression_set)
    m.rot6d = matrix_to_rot6d(rot6d_to_matrix(m.rot6d)).contiguous()
    E = m.expression.shape[1]
    notes = []
    if S.neutral_frame == -1:
        score = _openness(x[:, :E], expression_set).numpy().copy()
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
    m = apply_parts(rereference(m, neutral), S)
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
