"""Dataset preparation from a user's own footage (the paper's MENTOR-style processing), into the
plain-file format both trainers read (vlogger-dataset-v1, see dataset_format.py).

Per video (a file, or frames + audio arrays):
- decode at a constant frame rate: variable-rate footage is RESAMPLED to `fps` by nearest
  timestamps (not refused) and the summary's notes say so;
- extract the speech at 16 kHz mono; footage without audio is refused unless allow_silent
  (silent clips only serve video training);
- detect shot cuts (colour-histogram jumps): no clip spans one;
- detect mediapipe face mesh + pose + hands in every frame (video mode);
- fit the body per clip: the camera FOV is estimated on one frame (reference_fit.estimate_fov)
  and kept, shape is shared by the clip; per frame: global orientation, translation, upper-body
  + head + jaw pose (fingers when hands are seen), expression; landmark reprojection error plus
  frame-to-frame smoothness, all frames of a clip in one batched optimisation warm-started from
  that frame's fit;
- drop clips that are too short, miss the face (or required hands) in too many frames, or
  whose fit is unstable (mean landmark error or jitter above thresholds), with the reason.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..body.camera import PerspectiveCamera
from ..body.reference import (
    DEFAULT_FOV,
    FINGERS,
    FIT_JOINTS,
    MP_HAND_JOINTS,
    MP_POSE_JOINTS,
    ReferenceFit,
    _optimise,
    _rest_fit_pose,
    _targets_from_mediapipe,
    estimate_fov,
    mediapipe_available,
)
from ..callbacks import Interrupt, Progress, check, report
from ..errors import VloggerError
from ..motion.params import (
    MOTION_JOINTS,
    SMPLX_INDEX,
    Motion,
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_rot6d,
)
from ..render.controls import reference_colors, render_controls
from .dataset_format import write_clip, write_dataset_json

VERSION = "2"
SAMPLE_RATE = 16000
FIT_SIZE = 256           # landmarks and the fit work on frames resized to this square size
MEDIAPIPE_HINT = ("dataset preparation needs mediapipe's landmarks: pip install mediapipe==0.10.21 "
                  "(it needs numpy<2; pip keeps numpy 1.26.4)")


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


@dataclass
class Footage:
    """Decoded footage: frames at a constant `fps`, 16 kHz mono speech (None: silent)."""
    name: str
    frames: np.ndarray              # [T,H,W,3] uint8
    audio: np.ndarray | None
    fps: float
    notes: dict = field(default_factory=dict)


@dataclass
class Landmarks:
    """Per-frame mediapipe detections in pixels of the FIT_SIZE frames."""
    face: np.ndarray                # [T,478,2], NaN where no face
    pose: np.ndarray                # [T,33,3] x, y, visibility (0 where no pose)
    hands: dict                     # 'left' / 'right' -> [T,21,2], NaN where not seen

    def __len__(self):
        return len(self.face)

    def slice(self, a: int, b: int) -> "Landmarks":
        return Landmarks(self.face[a:b], self.pose[a:b], {k: v[a:b] for k, v in self.hands.items()})

    def face_found(self) -> np.ndarray:
        return ~np.isnan(self.face[:, 0, 0])

    def hand_found(self, side: str) -> np.ndarray:
        return ~np.isnan(self.hands[side][:, 0, 0])

    def targets(self, t: int) -> tuple[dict, dict]:
        """reference_fit's target dicts for frame t (its weights and visibility rules)."""
        det = {"face": np.nan_to_num(self.face[t]),
               "pose": self.pose[t] if self.pose[t, :, 2].any() else None,
               "hands": {s: h[t] for s, h in self.hands.items() if not np.isnan(h[t, 0, 0])}}
        return _targets_from_mediapipe(det, 1.0)


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
    """Decode a video file to constant `fps` frames and 16 kHz mono audio. With `size`, each
    frame is cropped to its centre square and resized to size x size as it is decoded, so long
    HD footage does not have to fit in memory at full resolution."""
    import av

    name = Path(path).name
    if not Path(path).is_file():
        raise DatasetError(f"{name}: no such file")
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise DatasetError(f"{name} has no video stream")
            vs = c.streams.video[0]
            rate = float(vs.average_rate or fps)
            seconds = float(c.duration) / 1e6 if c.duration else (float(vs.frames) / rate if vs.frames else 0.0)
            check_memory(name, seconds, max(rate, fps), size or max(vs.width, vs.height))
            times, frames = [], []
            for f in c.decode(vs):
                times.append(float(f.time) if f.time is not None else len(times) / rate)
                a = f.to_ndarray(format="rgb24")
                frames.append(_square(a[None], size)[0] if size else a)
        audio = None
        with av.open(str(path)) as c:
            if c.streams.audio:
                # libswresample: any layout / sample format -> mono float at 16 kHz
                rs = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
                chunks = [o.to_ndarray().reshape(-1) for f in c.decode(c.streams.audio[0])
                          for o in rs.resample(f)]
                chunks += [o.to_ndarray().reshape(-1) for o in rs.resample(None)]
                if chunks:
                    audio = np.concatenate(chunks).astype(np.float32)
    except DatasetError:
        raise
    except Exception as e:
        raise DatasetError(f"cannot decode {name}: {e}") from None
    if not frames:
        raise DatasetError(f"{name} has no frames")
    frames, notes = constant_rate(frames, np.asarray(times), fps)
    return Footage(name, frames, audio, fps, notes)


def check_memory(name: str, seconds: float, fps: float, size: int) -> None:
    """Refuse footage whose decoded frames (size x size RGB at fps, about twice: decoded and
    resampled) would not fit in the memory that is free, before decoding any of it."""
    from .video import available_gb

    need = 2 * seconds * fps * size * size * 3 / 1e9
    have = available_gb(torch.device("cpu"))
    if need > 0.8 * have:
        raise DatasetError(f"{name} lasts {seconds / 60:.1f} min: its frames at {size} px need about "
                           f"{need:.1f} GB, {have:.1f} GB is free. Cut it into shorter videos "
                           f"(e.g. {max(1, int(seconds / 60 * 0.8 * have / need))} min each) and "
                           f"prepare them one by one")


def constant_rate(frames, times: np.ndarray, fps: float) -> tuple[np.ndarray, dict]:
    """Frames at constant `fps`: for each output time the source frame shown at that time.
    Variable frame rate (timestamp steps varying by more than 10%) is detected and reported."""
    t = times - times[0]
    d = np.diff(t)
    step = float(np.mean(d)) if len(d) else 1.0 / fps
    vfr = len(d) > 2 and float(np.std(d)) > 0.1 * step
    src_fps = 1.0 / step if step > 0 else fps      # the average rate
    notes = {"source_fps": round(src_fps, 3), "variable_frame_rate": bool(vfr)}
    n_out = max(1, int(round((t[-1] + step) * fps)))
    idx = np.clip(np.searchsorted(t, np.arange(n_out) / fps + 1e-6, side="right") - 1, 0, len(frames) - 1)
    if vfr or abs(src_fps - fps) > 0.01:
        notes["resampled_to_fps"] = fps
    return np.stack([frames[i] for i in idx]), notes


def footage_from_arrays(name: str, frames, audio, audio_rate: int | None, fps: float,
                        target_fps: float) -> Footage:
    """Frames ([T,H,W,3] uint8 or float 0..1) + audio ([n] or [C,n] at audio_rate) -> Footage."""
    from ..audio.speech_io import resample

    f = frames.detach().cpu().numpy() if hasattr(frames, "detach") else np.asarray(frames)
    if f.ndim != 4 or f.shape[-1] < 3 or len(f) == 0:
        raise DatasetError(f"{name}: expected frames [T,H,W,3], got {tuple(f.shape)}")
    if f.dtype != np.uint8:
        f = (np.clip(f[..., :3], 0, 1) * 255 + 0.5).astype(np.uint8)
    f, notes = constant_rate(f[..., :3], np.arange(len(f)) / float(fps), target_fps)
    a = None
    if audio is not None:
        w = torch.as_tensor(np.asarray(audio.detach().cpu() if hasattr(audio, "detach") else audio),
                            dtype=torch.float32)
        w = w.reshape(-1, w.shape[-1]).mean(0)
        a = resample(w, int(audio_rate), SAMPLE_RATE).numpy()
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


# ----------------------------------------------------------------------------- landmarks
def detect_landmarks(frames: np.ndarray, interrupt: Interrupt = None,
                     progress: Progress = None) -> Landmarks:
    """mediapipe face mesh, pose and hands on every frame (video mode: tracking between
    frames). A hand is the person's left or right by the nearer pose wrist (as reference_fit)."""
    if not mediapipe_available():
        raise DatasetError(MEDIAPIPE_HINT)
    import mediapipe as mp

    T, H, W = frames.shape[:3]
    face = np.full((T, 478, 2), np.nan, np.float32)
    pose = np.zeros((T, 33, 3), np.float32)
    hands = {s: np.full((T, 21, 2), np.nan, np.float32) for s in ("left", "right")}
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=True) as fm, \
            mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1) as pm, \
            mp.solutions.hands.Hands(static_image_mode=False, max_num_hands=2) as hm:
        for i, f in enumerate(frames):
            check(interrupt)
            f = np.ascontiguousarray(f)
            r = fm.process(f)
            if r.multi_face_landmarks:
                face[i] = [[p.x * W, p.y * H] for p in r.multi_face_landmarks[0].landmark]
            p = pm.process(f)
            if p.pose_landmarks:
                pose[i] = [[q.x * W, q.y * H, q.visibility] for q in p.pose_landmarks.landmark]
            h = hm.process(f)
            for lms, hd in zip(h.multi_hand_landmarks or [], h.multi_handedness or []):
                pts = np.array([[q.x * W, q.y * H] for q in lms.landmark], np.float32)
                if pose[i, :, 2].any():
                    d = {s: np.linalg.norm(pts[0] - pose[i, k, :2]) for s, k in (("left", 15), ("right", 16))}
                    side = min(d, key=d.get)
                else:   # mediapipe's label assumes a mirrored selfie
                    side = "right" if hd.classification[0].label == "Left" else "left"
                if np.isnan(hands[side][i, 0, 0]):
                    hands[side][i] = pts
            report(progress, i + 1, T)
    return Landmarks(face, pose, hands)


# ----------------------------------------------------------------------------- per-clip fit
# The body's iBUG eyelid landmarks barely move with its blink shapes (measured: 1.5 mm of the
# 12.6 mm a blink moves the lid), so blinks are fitted on extra points: per eye the vertex a
# blink moves most (upper lid centre) and the lower-lid vertex it closes onto, against
# mediapipe's lid centres (person's left eye 386 / 374, right eye 159 / 145).
EYELIDS = {"eyeBlinkLeft": (386, 374), "eyeBlinkRight": (159, 145)}
LID_WEIGHT = 1.0          # the lid term counts as much as the whole face term: apertures are few px
EXPR_PRIOR = 1e-3        # per ARKit weight (as the reference fit); 1e-4 lets unseen channels drift
_LID_CACHE: dict = {}


def eyelid_vertices(body) -> list[tuple[int, int]]:
    """[(body vertex, mediapipe index)...]: per blink shape the upper-lid vertex and the lower-lid
    vertex it closes onto, each with its mediapipe lid point (empty when the body's expression
    set has no blink shapes)."""
    from ..motion.params import expression_names

    key = id(body)
    if key not in _LID_CACHE:
        names = expression_names(body.expression_set)
        m, out = body.smplx, []
        for shape, (mp_up, mp_low) in EYELIDS.items():
            if shape not in names:
                continue
            d = m.expr_dirs[:, :, names.index(shape)]
            mag = d.norm(dim=-1)
            up = int(torch.argmax(mag))
            still = torch.nonzero(mag < 0.3 * mag[up]).ravel()
            low = int(still[torch.argmin((m.v_template[still] - m.v_template[up] - d[up]).norm(dim=-1))])
            out += [(up, mp_up), (low, mp_low)]
        _LID_CACHE[key] = out
    return _LID_CACHE[key]


def fit_clip(body, lms: Landmarks, width: int, height: int, settings: PrepSettings,
             device="cpu") -> ClipFit:
    """All frames of a clip in one optimisation, warm-started from one frame's full fit
    (which also gives the clip's FOV and shape)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)        # hundreds of small ops: one thread is several times faster
    try:
        return _fit_clip(body, lms, width, height, settings, device)
    finally:
        torch.set_num_threads(threads)


def _fit_clip(body, lms: Landmarks, width: int, height: int, settings: PrepSettings, device) -> ClipFit:
    dev = body.device
    f32 = dict(device=dev, dtype=torch.float32)
    T = len(lms)
    t_start = time.time()
    ok = lms.face_found()
    if not ok.any():
        raise DatasetError("no face in the clip")
    # --- warm start: the frame nearest the middle with a face, fitted on its own
    a = int(np.flatnonzero(ok)[np.argmin(np.abs(np.flatnonzero(ok) - T // 2))])
    ft_a, jt_a = lms.targets(a)
    info: dict = {"anchor_frame": a}
    body_joints = [k for k in jt_a if k.split("_", 1)[-1] not in FINGERS]
    if settings.fov:
        fov = settings.fov
        r = _optimise(body, PerspectiveCamera(width, height, fov), ft_a, jt_a, True, (40, 100), device)
    elif len(body_joints) >= 2:
        fov, info["fov_scores"], r = estimate_fov(body, width, height, ft_a, jt_a, (40, 100), device)
    else:
        fov = DEFAULT_FOV
        r = _optimise(body, PerspectiveCamera(width, height, fov), ft_a, jt_a, True, (40, 100), device)
    cam = PerspectiveCamera(width, height, fov)
    info["fov_diag_deg"] = cam.fov_diag_deg
    # --- per-frame targets as tensors (weight 0 where not detected)
    sides = [s for s in ("left", "right") if lms.hand_found(s).mean() >= 0.3]
    fit_joints = FIT_JOINTS + [f"{s}_{f}" for s in sides for f in FINGERS]
    J = list(MP_POSE_JOINTS.values()) + [f"{s}_{j}" for s in sides for j in MP_HAND_JOINTS.values()
                                         if j != "wrist"]
    lt = torch.zeros(T, len(ft_a), 2, **f32)
    lw = torch.zeros(T, len(ft_a), **f32)
    jt = torch.zeros(T, len(J), 2, **f32)
    jw = torch.zeros(T, len(J), **f32)
    for t in range(T):
        if not ok[t]:
            continue
        ft, jd = lms.targets(t)
        lt[t] = torch.tensor([ft[k][:2] for k in range(len(ft_a))])
        lw[t] = torch.tensor([ft[k][2] for k in range(len(ft_a))])
        for j, name in enumerate(J):
            if name in jd:
                jt[t, j] = torch.tensor(jd[name][:2])
                jw[t, j] = jd[name][2]
    n_body = float(len(MP_POSE_JOINTS))
    jsel = torch.tensor([SMPLX_INDEX[n] for n in J], device=dev)
    lmk_vid, lmk_w = body.landmark_vertex_weights()
    uniq, inv = torch.unique(lmk_vid.reshape(-1), return_inverse=True)
    inv = inv.reshape(-1, 3)
    base = _rest_fit_pose(body).to(**f32)
    jidx = torch.tensor([SMPLX_INDEX[j] for j in fit_joints], device=dev)
    lids = eyelid_vertices(body)
    lid_v = torch.tensor([v for v, _ in lids], device=dev, dtype=torch.long)
    lid_t = torch.from_numpy(np.nan_to_num(lms.face[:, [k for _, k in lids]])).to(**f32)   # [T,4,2]
    uniq_all = torch.cat([uniq, lid_v])
    fok = torch.from_numpy(ok).to(**f32)
    good = lt[torch.from_numpy(ok)]
    scale = 2.0 * float((good - good.mean(1, keepdim=True)).norm(dim=-1).mean().clamp_min(1.0))
    K = cam.intrinsics().to(**f32)
    Rc, tc = cam.rotation.to(**f32), cam.translation.to(**f32)

    # --- parameters, every frame starting at the anchor frame's fit
    d0 = matrix_to_axis_angle(base[jidx].transpose(-1, -2) @ r["pose"].to(**f32)[jidx])
    dpose = d0[None].repeat(T, 1, 1).requires_grad_(True)
    expr = r["expression"].to(**f32)[None].repeat(T, 1).requires_grad_(True)
    orient = r["global_orient"].to(**f32)[None].repeat(T, 1).requires_grad_(True)
    transl = r["transl"].to(**f32)[None].repeat(T, 1).requires_grad_(True)
    betas = r["betas"].to(**f32)[None].clone().requires_grad_(True)
    arkit = body.expression_set == "arkit52"
    depth = float((Rc @ (r["transl"].to(**f32)) + tc)[2].abs().clamp_min(0.1))

    def project(p):
        pc = p @ Rc.T + tc
        return pc[..., :2] / pc[..., 2:3].clamp_min(1e-3) * K[0, 0] + K[:2, 2]

    def loss_fn():
        poses = base[None].repeat(T, 1, 1, 1)
        poses[:, jidx] = base[jidx][None] @ axis_angle_to_matrix(dpose)
        pts, joints = body.posed_points(uniq_all, betas.expand(T, -1), orient, transl, poses, expr, bool(sides))
        lm = (pts[:, inv] * lmk_w[None, ..., None]).sum(2)
        p2 = project(lm)
        e_f = (lw * ((p2 - lt) / scale).pow(2).sum(-1)).sum(-1) / lw.sum(-1).clamp_min(1e-6)
        if len(lids):
            e_f = e_f + LID_WEIGHT * ((project(pts[:, len(uniq):]) - lid_t) / scale).pow(2).sum(-1).mean(-1) * fok
        e_j = (jw * ((project(joints[:, jsel]) - jt) / scale).pow(2).sum(-1)).sum(-1) / n_body
        loss = (e_f + 0.5 * e_j).sum() / max(1, int(ok.sum()))
        loss = loss + 1e-3 * betas.pow(2).sum() + 2e-2 * dpose.pow(2).sum((-1, -2)).mean()
        loss = loss + (EXPR_PRIOR if arkit else 1e-3) * expr.pow(2).sum(-1).mean()
        if T > 1:   # frame-to-frame smoothness (the paper's temporal term for fitted footage)
            dt = lambda x: (x[1:] - x[:-1]).pow(2).flatten(1).sum(-1).mean()  # noqa: E731
            loss = loss + 0.2 * dt(dpose) + 5e-4 * dt(expr) + 0.5 * dt(orient) + 0.5 * dt(transl / depth)
        return loss, p2, poses

    info["warm_start_s"] = round(time.time() - t_start, 2)
    with torch.inference_mode(False), torch.enable_grad():
        opt = torch.optim.Adam([dpose, expr, orient, transl, betas], lr=0.01)
        for _ in range(settings.iters):
            opt.zero_grad()
            loss, _, _ = loss_fn()
            loss.backward()
            opt.step()
            with torch.no_grad():
                if arkit:
                    expr.clamp_(0.0, 1.0)
        with torch.no_grad():
            loss, p2, poses = loss_fn()
    err = (p2 - lt).norm(dim=-1).mean(-1).cpu().numpy()
    err[~ok] = np.nan
    q = p2.detach().cpu().numpy()
    jitter = float(np.abs(q[2:] - 2 * q[1:-1] + q[:-2]).sum(-1).mean()) if T > 2 else 0.0
    info["loss"], info["fit_s"] = float(loss), round(time.time() - t_start, 2)
    return ClipFit(cam, betas.detach()[0].cpu(), orient.detach().cpu(), transl.detach().cpu(),
                   poses.detach().cpu(), expr.detach().cpu(), err, jitter, info)


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
                        body.name, "mediapipe", {"landmark_error_px": float(np.nanmean(fit.error_px))})


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
def _square(frames: np.ndarray, size: int) -> np.ndarray:
    """Centre square crop, resized to size x size."""
    import cv2

    H, W = frames.shape[1:3]
    s = min(H, W)
    y0, x0 = (H - s) // 2, (W - s) // 2
    if s == size:
        return np.ascontiguousarray(frames[:, y0:y0 + s, x0:x0 + s])
    return np.stack([cv2.resize(np.ascontiguousarray(f[y0:y0 + s, x0:x0 + s]), (size, size),
                                interpolation=cv2.INTER_AREA) for f in frames])


def prepare_dataset(sources: list, out: str | Path, body, settings: PrepSettings = PrepSettings(),
                    device="cpu", progress: Progress = None, interrupt: Interrupt = None, log=print) -> dict:
    """Prepare `sources` (video file paths or Footage) into a vlogger-dataset-v1 folder.
    Returns the summary: kept, dropped (with reasons), clips, notes, frames, seconds. When no
    clip is kept, a DatasetError says why and nothing is written."""
    if not mediapipe_available():       # say it before decoding anything
        raise DatasetError(MEDIAPIPE_HINT)
    if settings.clip_frames < 2 or settings.frame_size < 8 or settings.fps <= 0:
        raise DatasetError(f"bad settings: clip_frames {settings.clip_frames}, frame_size "
                           f"{settings.frame_size}, fps {settings.fps}")
    final = Path(out)
    # everything is written to a sibling folder first: an error or a cancel leaves no
    # half-written dataset, and a dataset of the same name is replaced only by a whole one
    out = final.with_name(final.name + ".partial")
    shutil.rmtree(out, ignore_errors=True)
    try:
        summary = _prepare(sources, out, body, settings, device, progress, interrupt)
        if summary["kept"] == 0:    # an empty dataset would only replace a good one
            reasons = "; ".join(sorted({d["reason"] for d in summary["dropped"]})) or "no frames"
            raise DatasetError(f"no usable clip ({reasons})")
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    os.replace(out, final)
    log(f"dataset {final}: kept {summary['kept']} clips ({summary['frames']} frames), "
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
                               f"(silent footage can be allowed for video training only)")
        if fo.audio is None:
            notes[name]["silent"] = True
        big = _square(fo.frames, FIT_SIZE)          # landmarks and fit at 256 px
        small = _square(fo.frames, S)               # stored frames and controls at frame_size
        if not isinstance(src, Footage):
            fo.frames = None                        # decoded here: only the two sizes are kept
        T = len(big)
        lms = detect_landmarks(big, interrupt,
                               (lambda d, t: report(progress, si * 2 * t + d, n_src * 2 * t)) if progress else None)
        if not lms.face_found().any():
            raise DatasetError(f"no person found in {name}: mediapipe saw no face in any of its "
                               f"{T} frames (use footage of one person facing the camera)")
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
