"""Dataset preparation from a user's own footage (the paper's MENTOR-style processing), into the
plain-file format both trainers read (vlogger-dataset-v1, see dataset_format.py).

Per video (a file, or frames + audio arrays):
- decode at a constant frame rate: variable-rate footage is RESAMPLED to `fps` by nearest
  timestamps (not refused) and the summary's notes say so;
- extract the speech at 16 kHz mono; footage without audio is refused unless allow_silent
  (silent clips only serve video training);
- detect shot cuts (colour-histogram jumps): no clip spans one;
- detect face mesh + pose + hands in every frame (video mode; body/detect.py's default backend);
- fit the body per clip (body/fit.py): the camera FOV is estimated on one frame and kept,
  shape is shared by the clip; per frame: global orientation, translation, upper-body
  + head + jaw pose (fingers when hands are seen), expression; landmark reprojection error plus
  frame-to-frame smoothness, all frames of a clip in one batched optimisation warm-started from
  that frame's fit;
- drop clips that are too short, miss the face (or required hands) in too many frames, or
  whose fit is unstable (mean landmark error or jitter above thresholds), with the reason.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..body import fit as body_fit
from ..body.camera import PerspectiveCamera
from ..body.detect import (
    BACKEND_FIX,
    BACKENDS,
    Landmarks,
    backend_problem,
    default_backend,
    detect,
)
from ..body.reference import ReferenceFit
from ..callbacks import Interrupt, Progress, check, report
from ..errors import VloggerError
from ..files import atomic_write
from ..media import (
    MediaError,
    center_square,
    constant_rate,
    read_audio,
    read_frames,
    resample,
    to_uint8,
)
from ..motion.params import (
    MOTION_JOINTS,
    SMPLX_INDEX,
    Motion,
    axis_angle_to_matrix,
    matrix_to_rot6d,
)
from ..render.controls import reference_colors, render_controls
from .dataset_format import write_clip, write_dataset_json

VERSION = "2"
SAMPLE_RATE = 16000
FIT_SIZE = 256           # landmarks and the fit work on frames resized to this square size


class DatasetError(VloggerError):
    """Footage or settings the preparation cannot use (the node names the input)."""


@dataclass
class PrepSettings:
    fps: float = 24.0
    clip_frames: int = 240          # the paper's clips: 240 frames at 24 fps
    frame_size: int = 128           # square frames and controls stored at this size
    max_missing: float = 0.1        # drop a clip when the face is missing in more of its frames
    max_error_px: float = 6.0       # drop a clip whose mean landmark error (at 256 px) is higher
    max_jitter_px: float = 4.0      # ... or whose fitted landmarks jitter more (mean |2nd diff|, px)
    require_hands: bool = False     # drop clips where the hands are missing in > max_missing
    cut_threshold: float = 0.5      # histogram distance that counts as a shot cut
    min_clip_frames: int = 0        # shorter pieces are dropped (0: clip_frames // 4, at least 8)
    iters: int = 120                # batched per-clip fit iterations (after the warm start)
    allow_silent: bool = False      # silent footage is only usable for video training
    fov: float = 0.0                # diagonal degrees; 0 = estimated per clip
    expr_prior: float = body_fit.CLIP_EXPR_PRIOR   # the clip fit's expression prior (body/fit.py)


@dataclass
class Footage:
    """Decoded footage: frames at a constant `fps`, 16 kHz mono speech (None: silent)."""
    name: str
    frames: np.ndarray              # [T,H,W,3] uint8
    audio: np.ndarray | None
    fps: float
    notes: dict = field(default_factory=dict)


@dataclass
class ClipFit:
    camera: PerspectiveCamera
    betas: torch.Tensor             # [S] shared by the clip
    global_orient: torch.Tensor     # [T,3] per frame
    transl: torch.Tensor            # [T,3] per frame
    poses: torch.Tensor             # [T,55,3,3]
    expression: torch.Tensor        # [T,E]
    error_px: np.ndarray            # [T] mean face landmark error per frame (NaN: no face)
    jitter_px: float                # mean |second difference| of the fitted face landmarks
    info: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- decoding
def decode(path: str | Path, fps: float, size: int | None = None) -> Footage:
    """Decode a video file to constant `fps` frames (centre squares of `size`, shrunk as they are
    decoded) and 16 kHz mono audio (media.py: read_frames, read_audio)."""
    try:
        frames, _, notes = read_frames(path, fps, size)
        audio = read_audio(path, SAMPLE_RATE, mono=True, missing_ok=True)
    except MediaError as e:
        raise DatasetError(e.message, "sources", e.fix) from None
    return Footage(Path(path).name, frames, None if audio is None else audio[0].numpy(), fps, notes)


def footage_from_arrays(name: str, frames, audio, audio_rate: int | None, fps: float,
                        target_fps: float) -> Footage:
    """Frames ([T,H,W,3] uint8 or float 0..1) + audio ([n] or [C,n] at audio_rate) -> Footage."""
    f = to_uint8(frames)
    if f.ndim != 4 or f.shape[-1] < 3 or len(f) == 0:
        raise DatasetError(f"{name}: expected frames [T,H,W,3], got {tuple(f.shape)}", "frames",
                           "give the footage as an IMAGE batch [frames, height, width, 3]")
    f, notes = constant_rate(f[..., :3], np.arange(len(f)) / float(fps), target_fps)
    a = None
    if audio is not None:
        w = torch.as_tensor(audio, dtype=torch.float32)
        a = resample(w.reshape(-1, w.shape[-1]).mean(0), int(audio_rate), SAMPLE_RATE).numpy()
    return Footage(name, f, a, target_fps, notes)


def shot_cuts(frames: np.ndarray, threshold: float) -> list[int]:
    """Frame indices that start a new shot (colour histogram distance to the previous frame)."""
    import cv2

    cuts, prev = [], None
    for i, f in enumerate(frames):
        h = cv2.calcHist([np.ascontiguousarray(f)], [0, 1, 2], None, [8, 8, 8], [0, 256] * 3).ravel()
        h /= max(h.sum(), 1.0)
        if prev is not None and 0.5 * np.abs(h - prev).sum() > threshold:
            cuts.append(i)
        prev = h
    return cuts


# ----------------------------------------------------------------------------- landmarks and fit
def landmark_backend() -> str:
    """The landmark backend the preparation uses (body/detect.py's default); DatasetError when
    none can run here."""
    backend = default_backend()
    if backend is None:
        raise DatasetError(f"dataset preparation needs face, pose and hand landmarks, and no landmark detector "
                           f"can run: {backend_problem(BACKENDS[0])}", fix=BACKEND_FIX[BACKENDS[0]])
    return backend


def detect_landmarks(frames: np.ndarray, interrupt: Interrupt = None,
                     progress: Progress = None) -> Landmarks:
    """Face mesh, pose and hands on every frame (video mode: tracking between frames)."""
    return detect(frames, tracking=True, backend=landmark_backend(), interrupt=interrupt, progress=progress)


def fit_clip(body, lms: Landmarks, width: int, height: int, settings: PrepSettings,
             device="cpu") -> ClipFit:
    """All frames of a clip in one optimisation (body/fit.py: fit_clip), with its quality: the
    mean face landmark error per frame and the jitter of the fitted landmarks."""
    ok = lms.face_found()
    if not ok.any():
        raise DatasetError("no face in the clip", "sources", "use footage with the face visible")
    cam, fit, info = body_fit.fit_clip(body, lms, width, height, settings.iters, settings.fov,
                                       expr_prior=settings.expr_prior)
    err = fit.error_px[0].mean(-1).cpu().numpy()
    err[~ok] = np.nan
    q = fit.landmarks_px[0].cpu().numpy()
    jitter = float(np.abs(q[2:] - 2 * q[1:-1] + q[:-2]).sum(-1).mean()) if len(q) > 2 else 0.0
    b = fit.body.cpu()
    return ClipFit(cam, b.betas[0], b.global_orient[0], b.transl[0], b.poses[0], b.expression[0], err, jitter,
                   info)


def clip_motion(fit: ClipFit, ref: int, fps: float, expression_set: str) -> Motion:
    """Per-frame residuals relative to frame `ref` (the Motion format the trainers read). The
    per-frame global orientation becomes the pelvis residual (the root rotation is
    R(global_orient) @ pose[pelvis], so R_t = R_ref @ residual is exact)."""
    T = fit.poses.shape[0]
    poses = fit.poses.clone()
    R0 = axis_angle_to_matrix(fit.global_orient)
    poses[:, 0] = R0[ref].T[None] @ R0 @ fit.poses[:, 0]
    m = Motion.neutral(T, fps, expression_set)
    for k, j in enumerate(MOTION_JOINTS):
        i = SMPLX_INDEX[j]
        rel = fit.poses[ref, i].T[None] @ poses[:, i]
        m.rot6d[:, k] = matrix_to_rot6d(rel)
    m.expression = (fit.expression - fit.expression[ref][None]).contiguous()
    return m


def reference_fit_of(fit: ClipFit, image: np.ndarray, ref: int, body) -> ReferenceFit:
    return ReferenceFit(torch.from_numpy(image.astype(np.float32) / 255.0), fit.camera, fit.betas,
                        fit.global_orient[ref], fit.transl[ref], fit.poses[ref], fit.expression[ref],
                        body.name, landmark_backend(), {"landmark_error_px": float(np.nanmean(fit.error_px))})


def clip_controls(body, fit: ClipFit, motion: Motion, image: np.ndarray, ref: int, size: int,
                  interrupt: Interrupt = None, chunk: int = 16):
    """Dense / semantic / warped maps of every frame (warped from frame `ref`), with the
    per-frame translation the Motion format does not carry."""
    from ..render.controls import Controls

    rfit = reference_fit_of(fit, image, ref, body)
    ref_c, ref_v = reference_colors(body, rfit)
    parts = []
    for s in range(0, motion.num_frames, chunk):
        check(interrupt)
        e = min(motion.num_frames, s + chunk)
        v = body.pose_frames(rfit, motion, s, e, "cpu") + (fit.transl[s:e] - fit.transl[ref])[:, None]
        parts.append(render_controls(body, rfit, v, size, size, ref_c, ref_v))
    return Controls.concat(parts)


# ----------------------------------------------------------------------------- the whole thing
def prepare_dataset(sources: list, out: str | Path, body, settings: PrepSettings = PrepSettings(),
                    device="cpu", progress: Progress = None, interrupt: Interrupt = None, log=print) -> dict:
    """Prepare `sources` (video file paths or Footage) into a vlogger-dataset-v1 folder.
    Returns the summary: kept, dropped (with reasons), clips, notes, frames, seconds. When no
    clip is kept, a DatasetError says why and nothing is written."""
    landmark_backend()                  # say it before decoding anything
    for arg, least in (("clip_frames", 2), ("frame_size", 8)):
        if getattr(settings, arg) < least:
            raise DatasetError(f"{arg} {getattr(settings, arg)} is too small", arg, f"use at least {least}")
    if settings.fps <= 0:
        raise DatasetError(f"fps {settings.fps} is not a frame rate", "fps", "use 24 (the paper's), 25 or 30")
    # an error or a cancel leaves no half-written dataset, and a dataset of the same name is
    # replaced only by a whole one
    with atomic_write(out) as tmp:
        summary = _prepare(sources, tmp, body, settings, device, progress, interrupt)
        if summary["kept"] == 0:    # an empty dataset would only replace a good one
            reasons = "; ".join(sorted({d["reason"] for d in summary["dropped"]})) or "no frames"
            raise DatasetError(f"no usable clip ({reasons})", "sources",
                               "use longer footage with the face visible, or relax max_missing / "
                               "max_error_px / max_jitter_px / require_hands, or lower clip_frames")
    log(f"dataset {out}: kept {summary['kept']} clips ({summary['frames']} frames), "
        f"dropped {len(summary['dropped'])}")
    return summary


def _prepare(sources: list, out: Path, body, settings: PrepSettings, device, progress, interrupt) -> dict:
    S = settings.frame_size
    min_len = settings.min_clip_frames or max(8, settings.clip_frames // 4)
    kept, dropped, notes, t0 = [], [], {}, time.time()
    total_frames = 0
    n_src = len(sources)
    for si, src in enumerate(sources):
        fo = src if isinstance(src, Footage) else decode(src, settings.fps, max(FIT_SIZE, S))
        name = fo.name
        notes[name] = dict(fo.notes)
        if fo.audio is None and not settings.allow_silent:
            raise DatasetError(f"{name} has no audio track: the motion model learns from speech "
                               f"(silent footage can be allowed for video training only)", "audio",
                               "give the footage with its speech, or set allow_silent (its clips "
                               "then serve video training only)")
        if fo.audio is None:
            notes[name]["silent"] = True
        big = center_square(fo.frames, FIT_SIZE)    # landmarks and fit at 256 px
        small = center_square(fo.frames, S)         # stored frames and controls at frame_size
        if not isinstance(src, Footage):
            fo.frames = None                        # decoded here: only the two sizes are kept
        T = len(big)
        lms = detect_landmarks(big, interrupt,
                               (lambda d, t: report(progress, si * 2 * t + d, n_src * 2 * t)) if progress else None)
        if not lms.face_found().any():
            raise DatasetError(f"no person found in {name}: the landmark detector saw no face in any of its "
                               f"{T} frames", "sources", "use footage of one person facing the camera, "
                               "face visible")
        cuts = shot_cuts(big, settings.cut_threshold)
        notes[name]["shot_cuts"] = cuts
        bounds = [0] + cuts + [T]
        pieces = [(c0, min(b, c0 + settings.clip_frames)) for a, b in zip(bounds[:-1], bounds[1:])
                  for c0 in range(a, b, settings.clip_frames)]
        for pi, (c0, c1) in enumerate(pieces):
            check(interrupt)
            entry = {"source": name, "start_frame": c0, "frames": c1 - c0}
            part = lms.slice(c0, c1)
            miss = 1.0 - float(part.face_found().mean())
            hand_miss = 1.0 - float(np.maximum(part.hand_found("left"), part.hand_found("right")).mean())
            if c1 - c0 < min_len:
                why = "ends at a shot cut" if c1 in cuts or c0 in cuts else "the video's end"
                dropped.append({**entry, "reason": f"too short ({c1 - c0} < {min_len} frames; {why})"})
            elif miss > settings.max_missing:
                dropped.append({**entry, "reason": f"face missing in {miss:.0%} of the frames"})
            elif settings.require_hands and hand_miss > settings.max_missing:
                dropped.append({**entry, "reason": f"hands missing in {hand_miss:.0%} of the frames"})
            else:
                fit = fit_clip(body, part, FIT_SIZE, FIT_SIZE, settings, device)
                err = float(np.nanmean(fit.error_px))
                if err > settings.max_error_px:
                    dropped.append({**entry, "reason": f"unstable fit: landmark error {err:.1f} px "
                                                       f"> {settings.max_error_px}"})
                elif fit.jitter_px > settings.max_jitter_px:
                    dropped.append({**entry, "reason": f"unstable fit: jitter {fit.jitter_px:.1f} px "
                                                       f"> {settings.max_jitter_px}"})
                else:
                    ref = c1 - c0 - 1     # the last frame: far in time from most of the clip
                    motion = clip_motion(fit, ref, settings.fps, body.expression_set)
                    ctl = clip_controls(body, fit, motion, big[c0 + ref], ref, S, interrupt)
                    wave = None
                    if fo.audio is not None:
                        n = int(round((c1 - c0) / settings.fps * SAMPLE_RATE))
                        a0 = int(round(c0 / settings.fps * SAMPLE_RATE))
                        wave = np.zeros(n, np.float32)
                        seg = fo.audio[a0:a0 + n]
                        wave[:len(seg)] = seg
                    clip = f"clip_{len(kept):04d}"
                    write_clip(out, clip, frames=small[c0:c1], wave=wave, motion=motion,
                               fit={"betas": fit.betas.numpy(), "reference_pose": fit.poses[ref].numpy(),
                                    "global_orient": fit.global_orient.numpy(), "transl": fit.transl.numpy(),
                                    "fov_diag_deg": np.float32(fit.camera.fov_diag_deg),
                                    "width": np.int32(FIT_SIZE), "height": np.int32(FIT_SIZE),
                                    "landmark_error_px": fit.error_px.astype(np.float32),
                                    "body": np.array(body.name)},
                               controls=ctl, reference_index=ref)
                    kept.append({**entry, "name": clip, "landmark_error_px": round(err, 2),
                                 "jitter_px": round(fit.jitter_px, 2),
                                 "fov_diag_deg": round(fit.camera.fov_diag_deg, 1),
                                 "face_missing": round(miss, 3), "hands_missing": round(hand_miss, 3)})
                    total_frames += c1 - c0
            if progress:
                report(progress, si * 2 * T + T + (pi + 1) * T // len(pieces), n_src * 2 * T)
    summary = {"kept": len(kept), "dropped": dropped, "clips": kept, "notes": notes,
               "frames": total_frames, "seconds": round(time.time() - t0, 1)}
    write_dataset_json(out, settings, body, [str(getattr(s, "name", Path(str(s)).name)) for s in sources],
                       summary, f"vlogger_core.training.dataset_prep v{VERSION}")
    return summary
