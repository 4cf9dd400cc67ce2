"""Dataset preparation from a user's own footage (the paper's MENTOR-style processing), into the
plain-file format both trainers read (vlogger-dataset-v1, see dataset_format.py).

Per video: decode (constant frame rate: variable-rate footage is resampled to `fps` by nearest
timestamps and the summary says so), extract the speech at 16 kHz, detect shot cuts (colour
histogram jumps) and cut clips that never span one, detect mediapipe face + pose landmarks in
every frame, and fit the body per clip: shape, camera placement and global orientation fixed per
clip, per-frame upper-body pose, jaw and expression, minimising landmark reprojection error plus a
frame-to-frame smoothness term, all frames of a clip in one batched optimisation. Clips whose face
is missing in too many frames or whose fit error is too high are dropped, with the reason.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .callbacks import Interrupt, Progress, check, report
from .camera import PerspectiveCamera
from .control_maps import render_motion
from .dataset_format import write_clip, write_dataset_json
from .motion_params import (MOTION_JOINTS, SMPLX_INDEX, Motion, axis_angle_to_matrix,
                            matrix_to_rot6d)
from .reference_fit import (DEFAULT_FOV, FIT_JOINTS, MP_POSE_JOINTS, MP_STATIC, ReferenceFit,
                            _rest_fit_pose, mediapipe_available)

SAMPLE_RATE = 16000


class DatasetError(ValueError):
    """Footage or settings the preparation cannot use (the node names the input)."""


@dataclass
class PrepSettings:
    fps: float = 24.0
    clip_frames: int = 240          # the paper's clips: 240 frames at 24 fps
    frame_size: int = 128           # square frames and controls stored at this size
    max_missing: float = 0.1        # drop a clip when the face is missing in more of its frames
    max_error_px: float = 6.0       # drop a clip whose mean landmark error (at frame size 256) is higher
    cut_threshold: float = 0.5      # histogram distance that counts as a shot cut
    iters: int = 150
    allow_silent: bool = False      # silent footage is only usable for video training
    fov: float = DEFAULT_FOV


@dataclass
class ClipFit:
    camera: PerspectiveCamera
    betas: torch.Tensor
    global_orient: torch.Tensor
    transl: torch.Tensor
    poses: torch.Tensor             # [T,55,3,3]
    expression: torch.Tensor        # [T,E]
    error_px: np.ndarray            # [T] mean landmark error per frame
    info: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- decoding
def decode(path: str | Path, fps: float) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """(frames [T,H,W,3] uint8 at constant `fps`, 16 kHz mono audio or None, notes)."""
    import av

    from .speech_io import resample

    notes: dict = {}
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise DatasetError(f"{Path(path).name} has no video stream")
            vs = c.streams.video[0]
            times, frames = [], []
            for f in c.decode(vs):
                times.append(float(f.time) if f.time is not None else len(times) / float(vs.average_rate or fps))
                frames.append(f.to_ndarray(format="rgb24"))
        audio = None
        with av.open(str(path)) as c:
            if c.streams.audio:
                chunks, rate = [], None
                for f in c.decode(c.streams.audio[0]):
                    rate = f.sample_rate
                    chunks.append(f.to_ndarray().reshape(len(f.layout.channels), -1).mean(0))
                if chunks:
                    a = torch.from_numpy(np.concatenate(chunks).astype(np.float32))
                    audio = resample(a, rate, SAMPLE_RATE).numpy()
    except DatasetError:
        raise
    except Exception as e:
        raise DatasetError(f"cannot decode {Path(path).name}: {e}") from None
    if not frames:
        raise DatasetError(f"{Path(path).name} has no frames")
    t = np.asarray(times) - times[0]
    d = np.diff(t)
    vfr = len(d) > 2 and float(np.std(d)) > 0.1 * float(np.mean(d))
    src_fps = (len(t) - 1) / t[-1] if t[-1] > 0 else fps
    notes.update(source_fps=round(src_fps, 3), variable_frame_rate=bool(vfr))
    # constant rate: for each output time the nearest source frame
    n_out = max(1, int(round((t[-1] + (np.mean(d) if len(d) else 1 / fps)) * fps)))
    idx = np.clip(np.searchsorted(t, np.arange(n_out) / fps - 0.5 / src_fps), 0, len(frames) - 1)
    if vfr or abs(src_fps - fps) > 0.01:
        notes["resampled_to_fps"] = fps
    return np.stack([frames[i] for i in idx]), audio, notes


def shot_cuts(frames: np.ndarray, threshold: float) -> list[int]:
    """Frame indices that start a new shot (colour histogram distance to the previous frame)."""
    import cv2

    cuts, prev = [], None
    for i, f in enumerate(frames):
        h = cv2.calcHist([f], [0, 1, 2], None, [8, 8, 8], [0, 256] * 3).ravel()
        h /= max(h.sum(), 1.0)
        if prev is not None and 0.5 * np.abs(h - prev).sum() > threshold:
            cuts.append(i)
        prev = h
    return cuts


# ----------------------------------------------------------------------------- landmarks
def detect_landmarks(frames: np.ndarray, interrupt: Interrupt = None) -> tuple[np.ndarray, np.ndarray]:
    """Face [T,51,2] (the body's iBUG 17..67 points; NaN where no face) and pose joints
    [T,8,3] (x, y, visibility of MP_POSE_JOINTS) in pixels, with mediapipe in video mode."""
    if not mediapipe_available():
        raise DatasetError("dataset preparation needs mediapipe's landmarks: pip install "
                           "mediapipe==0.10.21 (it needs numpy<2; pip picks numpy 1.26.4)")
    import mediapipe as mp

    T, H, W = frames.shape[:3]
    face = np.full((T, len(MP_STATIC), 2), np.nan, np.float32)
    pose = np.zeros((T, len(MP_POSE_JOINTS), 3), np.float32)
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1) as fm, \
            mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1) as pm:   # 1 ships in the wheel (0 and 2 download)
        for i, f in enumerate(frames):
            check(interrupt)
            r = fm.process(f)
            if r.multi_face_landmarks:
                lm = r.multi_face_landmarks[0].landmark
                face[i] = [[lm[k].x * W, lm[k].y * H] for k in MP_STATIC]
            p = pm.process(f)
            if p.pose_landmarks:
                pl = p.pose_landmarks.landmark
                pose[i] = [[pl[k].x * W, pl[k].y * H, pl[k].visibility] for k in MP_POSE_JOINTS]
    return face, pose


# ----------------------------------------------------------------------------- per-clip fit
def fit_clip(body, face: np.ndarray, pose: np.ndarray, width: int, height: int,
             settings: PrepSettings, device="cpu") -> ClipFit:
    """All frames of a clip in one optimisation: shared shape / placement / orientation,
    per-frame pose (upper body, head, jaw) and expression, with a smoothness term."""
    dev = body.device
    f32 = dict(device=dev, dtype=torch.float32)
    T = face.shape[0]
    cam = PerspectiveCamera(width, height, settings.fov)
    K = cam.intrinsics().to(**f32)
    Rc = cam.rotation.to(**f32)
    ok = torch.from_numpy(~np.isnan(face[..., 0]).any(1)).to(dev)                 # [T]
    lt = torch.from_numpy(np.nan_to_num(face)).to(**f32)                          # [T,L,2]
    jnames = list(MP_POSE_JOINTS.values())
    jt = torch.from_numpy(pose[..., :2]).to(**f32)
    jw = torch.from_numpy((pose[..., 2] > 0.6).astype(np.float32)).to(**f32)
    jw[:, [i for i, n in enumerate(jnames) if "hip" in n]] *= 0.3
    jsel = torch.tensor([SMPLX_INDEX[n] for n in jnames], device=dev)
    lmk_vid, lmk_w = body.landmark_vertex_weights()
    uniq, inv = torch.unique(lmk_vid.reshape(-1), return_inverse=True)
    inv = inv.reshape(-1, 3)
    base = _rest_fit_pose(body).to(**f32)
    jidx = torch.tensor([SMPLX_INDEX[j] for j in FIT_JOINTS], device=dev)
    good = lt[ok]
    spread2 = float((good - good.mean(1, keepdim=True)).norm(dim=-1).mean().clamp_min(1.0))
    scale = 2.0 * spread2
    # initial placement: the mean face, at the depth its size gives
    with torch.no_grad():
        pts, _ = body.posed_points(uniq, torch.zeros(1, body.num_betas, **f32), torch.zeros(1, 3, **f32),
                                   torch.zeros(1, 3, **f32), base[None], torch.zeros(1, body.num_expression, **f32))
        lm3 = (pts[0][inv] * lmk_w[..., None]).sum(1)
        spread3 = float((lm3[:, :2] - lm3[:, :2].mean(0)).norm(dim=1).mean())
        depth = float(K[0, 0]) * spread3 / spread2
        c2 = good.reshape(-1, 2).mean(0)
        ray = torch.tensor([(c2[0] - K[0, 2]) / K[0, 0], (c2[1] - K[1, 2]) / K[1, 1], 1.0], **f32) * depth
        transl0 = Rc.T @ ray - lm3.mean(0)
    transl = transl0[None].clone().requires_grad_(True)
    orient = torch.zeros(1, 3, **f32, requires_grad=True)
    betas = torch.zeros(1, body.num_betas, **f32, requires_grad=True)
    dpose = torch.zeros(T, len(FIT_JOINTS), 3, **f32, requires_grad=True)
    expr = torch.zeros(T, body.num_expression, **f32, requires_grad=True)
    arkit = body.expression_set == "arkit52"

    def project(p):
        pc = p @ Rc.T
        return pc[..., :2] / pc[..., 2:3].clamp_min(1e-3) * K[0, 0] + K[:2, 2]

    def loss_fn():
        R = axis_angle_to_matrix(dpose)
        poses = base[None].repeat(T, 1, 1, 1)
        poses[:, jidx] = base[jidx][None] @ R
        pts, joints = body.posed_points(uniq, betas.expand(T, -1), orient.expand(T, -1),
                                        transl.expand(T, -1), poses, expr)
        lm = (pts[:, inv] * lmk_w[None, ..., None]).sum(2)
        e_f = ((project(lm) - lt) / scale).pow(2).sum(-1).mean(-1) * ok
        e_j = (((project(joints[:, jsel]) - jt) / scale).pow(2).sum(-1) * jw).sum(-1) / len(jnames)
        loss = (e_f + 0.5 * e_j).sum() / max(1, int(ok.sum()))
        loss = loss + 1e-3 * betas.pow(2).sum() + 2e-2 * dpose.pow(2).mean(0).sum()
        loss = loss + (1e-3 if arkit else 1e-2) * expr.pow(2).mean(0).sum()
        if T > 1:   # frame-to-frame smoothness (the paper's temporal term for fitted footage)
            loss = loss + 0.5 * (dpose[1:] - dpose[:-1]).pow(2).mean(0).sum() \
                + 0.05 * (expr[1:] - expr[:-1]).pow(2).mean(0).sum()
        return loss, lm, poses

    threads = torch.get_num_threads()
    torch.set_num_threads(1)        # hundreds of small ops: one thread is faster here
    try:
        with torch.inference_mode(False), torch.enable_grad():
            for params, n, lr in (([transl, orient], settings.iters // 3, 0.03),
                                  ([transl, orient, betas, dpose, expr], settings.iters, 0.02)):
                opt = torch.optim.Adam(params, lr=lr)
                for _ in range(n):
                    opt.zero_grad()
                    loss, _, _ = loss_fn()
                    loss.backward()
                    opt.step()
                    with torch.no_grad():
                        if arkit:
                            expr.clamp_(0.0, 1.0)
                        transl[:, 2].clamp_(max=-0.05)
            with torch.no_grad():
                loss, lm, poses = loss_fn()
                err = (project(lm) - lt).norm(dim=-1).mean(-1)
    finally:
        torch.set_num_threads(threads)
    err = err.cpu().numpy()
    err[~ok.cpu().numpy()] = np.nan
    return ClipFit(cam, betas.detach()[0].cpu(), orient.detach()[0].cpu(), transl.detach()[0].cpu(),
                   poses.detach().cpu(), expr.detach().cpu(), err, {"loss": float(loss)})


def clip_motion(fit: ClipFit, ref: int, fps: float, expression_set: str) -> Motion:
    """Per-frame residuals relative to frame `ref` (the Motion format the trainers read)."""
    T = fit.poses.shape[0]
    m = Motion.neutral(T, fps, expression_set)
    for k, j in enumerate(MOTION_JOINTS):
        i = SMPLX_INDEX[j]
        if j in FIT_JOINTS:
            rel = fit.poses[ref, i].T[None] @ fit.poses[:, i]
            m.rot6d[:, k] = matrix_to_rot6d(rel)
    m.expression = (fit.expression - fit.expression[ref][None]).contiguous()
    return m


def reference_fit_of(fit: ClipFit, image: np.ndarray, ref: int, body) -> ReferenceFit:
    return ReferenceFit(torch.from_numpy(image.astype(np.float32) / 255.0), fit.camera, fit.betas,
                        fit.global_orient, fit.transl, fit.poses[ref], fit.expression[ref],
                        body.name, "mediapipe", {"landmark_error_px": float(np.nanmean(fit.error_px))})


# ----------------------------------------------------------------------------- the whole thing
def prepare_dataset(sources: list[str | Path], out: str | Path, body, settings: PrepSettings = PrepSettings(),
                    device="cpu", progress: Progress = None, interrupt: Interrupt = None, log=print) -> dict:
    """Prepare `sources` (video files) into a vlogger-dataset-v1 folder; returns the summary."""
    import cv2

    out = Path(out)
    S = settings.frame_size
    kept, dropped, notes, t0 = [], [], {}, time.time()
    total_frames = 0
    for si, src in enumerate(sources):
        name = Path(src).name
        frames, audio, note = decode(src, settings.fps)
        notes[name] = note
        if audio is None and not settings.allow_silent:
            raise DatasetError(f"{name} has no audio track: the motion model learns from speech "
                               f"(allow silent footage only to train the video model)")
        # square centre crop at frame_size (the video model's input)
        T, H, W = frames.shape[:3]
        s = min(H, W)
        y0, x0 = (H - s) // 2, (W - s) // 2
        crop = [f[y0:y0 + s, x0:x0 + s] for f in frames]
        # landmarks and the fit work at 256 px; frames and controls are stored at frame_size
        big = np.stack([f if s == 256 else cv2.resize(f, (256, 256), interpolation=cv2.INTER_AREA)
                        for f in crop])
        frames = np.stack([cv2.resize(f, (S, S), interpolation=cv2.INTER_AREA) for f in crop])
        del crop
        face, pose = detect_landmarks(big, interrupt)
        if np.isnan(face[..., 0]).all():
            raise DatasetError(f"no face found in any frame of {name}: the footage must show a person")
        cuts = [0] + shot_cuts(frames, settings.cut_threshold) + [len(frames)]
        for a, b in zip(cuts[:-1], cuts[1:]):
            for c0 in range(a, b, settings.clip_frames):
                c1 = min(b, c0 + settings.clip_frames)
                check(interrupt)
                entry = {"source": name, "start_frame": c0, "frames": c1 - c0}
                if c1 - c0 < max(8, settings.clip_frames // 4):
                    dropped.append({**entry, "reason": "too short (a shot cut or the video's end)"})
                    continue
                miss = float(np.isnan(face[c0:c1, :, 0]).any(1).mean())
                if miss > settings.max_missing:
                    dropped.append({**entry, "reason": f"face missing in {miss:.0%} of the frames"})
                    continue
                fit = fit_clip(body, face[c0:c1], pose[c0:c1], 256, 256, settings, device)
                err = float(np.nanmean(fit.error_px))
                if err > settings.max_error_px:
                    dropped.append({**entry, "reason": f"unstable fit: landmark error {err:.1f} px"})
                    continue
                ref = 0 if c1 - c0 < 2 else (c1 - c0 - 1)   # far in time from most of the clip
                motion = clip_motion(fit, ref, settings.fps, body.expression_set)
                rfit = reference_fit_of(fit, big[c0 + ref], ref, body)
                ctl = render_motion(body, rfit, motion, S, S)
                wave = None
                if audio is not None:
                    n = int(round((c1 - c0) / settings.fps * SAMPLE_RATE))
                    a0 = int(round(c0 / settings.fps * SAMPLE_RATE))
                    wave = np.zeros(n, np.float32)
                    seg = audio[a0:a0 + n]
                    wave[:len(seg)] = seg
                clip = f"clip_{len(kept):04d}"
                write_clip(out, clip, frames=frames[c0:c1], wave=wave, motion=motion,
                           fit={"betas": fit.betas.numpy(), "reference_pose": fit.poses[ref].numpy(),
                                "global_orient": np.repeat(fit.global_orient.numpy()[None], c1 - c0, 0),
                                "transl": np.repeat(fit.transl.numpy()[None], c1 - c0, 0),
                                "fov_diag_deg": np.float32(fit.camera.fov_diag_deg),
                                "width": np.int32(256), "height": np.int32(256),
                                "landmark_error_px": fit.error_px.astype(np.float32),
                                "body": np.array(body.name)},
                           controls=ctl, reference_index=ref)
                kept.append({**entry, "name": clip, "landmark_error_px": round(err, 2)})
                total_frames += c1 - c0
                report(progress, len(kept) + len(dropped), None)
        report(progress, si + 1, len(sources))
    summary = {"kept": len(kept), "dropped": dropped, "clips": kept, "notes": notes,
               "frames": total_frames, "seconds": round(time.time() - t0, 1)}
    write_dataset_json(out, settings, body, [str(Path(s).name) for s in sources], summary)
    log(f"dataset {out}: kept {len(kept)} clips ({total_frames} frames), dropped {len(dropped)}")
    return summary
