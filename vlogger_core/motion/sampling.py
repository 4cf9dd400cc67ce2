"""Sampling motion from speech with the stage-1 model: seeded, guided, any length.

Long audio is generated in causal windows of `window` frames (model fps). Each window after the
first overlaps the previous one by `context` frames: most are copied (clean, flagged known)
from the previous output so the new frames continue the motion, and the last `blend` are
regenerated and cross-faded, so the hand-over is a ramp, not a step: memory is bounded by the window, not the clip,
and the causal model never needs frames it has not generated. The DDIM schedule and CFG run
per window; one torch.Generator seeded once draws all noise, so a seed fixes the whole motion.
Artist controls scale the sampled residuals afterwards (see apply_controls), a small learned
head seals the lips where the speech says they are shut (p/b/m, pauses: closure.py), and a seeded,
causal procedural layer adds breathing, torso sway and emphasis gestures on top (body_layer.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..audio.features import audio_features, num_frames
from ..callbacks import Interrupt, Progress, check, report
from ..errors import VloggerError
from ..threads import torch_threads
from .body_layer import BodyLayer, add_body_layer
from .closure import close_lips, shipped_closure, shut_track
from .model import MotionDiffusion
from .params import (
    ARKIT52,
    Motion,
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_rot6d,
    orthonormalize_,
    rot6d_to_matrix,
)
from .resample import resample_motion

HEAD_JOINTS = ["pelvis", "spine1", "spine2", "spine3", "neck", "head"]
GESTURE_JOINTS = ["left_collar", "right_collar", "left_shoulder", "right_shoulder", "left_elbow",
                  "right_elbow", "left_wrist", "right_wrist"]
# Eye lids and gaze keep their natural size whatever the expression intensity.
_EYE_CHANNELS = {n for n in ARKIT52 if n.startswith("eyeBlink") or n.startswith("eyeLook")}
MIN_FPS, MAX_FPS = 1.0, 120.0
SAMPLERS = ("ddim", "dpm")


@dataclass
class SampleSettings:
    seed: int = 0
    steps: int = 25
    guidance: float = 1.0          # 1 = no classifier-free guidance (2x faster)
    window: int = 256              # frames at the model fps
    context: int = 32
    blend: int = 8                 # of the context frames, how many are cross-faded
    expression_intensity: float = 1.0
    head_motion: float = 1.0       # head, neck and torso (0 = still; it also scales the layer's sway)
    gesture_amount: float = 1.0    # arms and hands: 0 = still, 1 = natural, 2 = animated
    sampler: str = "ddim"          # "ddim" or "dpm"
    add_blinks: bool = False       # overlay blinks from the corpus' blink prior (seeded)
    cpu_threads: int = 1           # on CPU: the model is small, 1 thread beats 2 (sync overhead)
    pose_smoothing: int = 2        # passes of a [1,2,1]/4 filter over body/hand rotations
    body_layer: bool = True        # breathing, torso sway and emphasis gestures (body_layer.py)
    lip_closure: float = 1.0       # seal the lips on p/b/m and in pauses (closure.py); 0 = off

    def check(self) -> None:
        """A VloggerError naming the first unusable field (arg = the field's name)."""
        if self.steps < 1:
            raise VloggerError(f"steps must be >= 1, got {self.steps}", "steps", "use 25 (fewer is faster)")
        if not 0 <= self.context < self.window:
            raise VloggerError(f"context {self.context} is negative or not smaller than the window "
                               f"({self.window})", "context",
                               "use a context of about an eighth of the window (e.g. 32 of 256)")
        if not 0 <= self.lip_closure <= 1:
            raise VloggerError(f"lip_closure must be within 0..1, got {self.lip_closure}", "lip_closure",
                               "use 1 (lips seal on p/b/m and in pauses) or 0 (the model's mouth as sampled)")
        if self.sampler not in SAMPLERS:
            raise VloggerError(f"unknown sampler '{self.sampler}'", "sampler", f"choose one of {list(SAMPLERS)}")


def make_scheduler(model: MotionDiffusion, kind: str):
    """The sampler's noise schedule (diffusers), the one the batch and the live path share."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler
    c = model.config
    common = dict(num_train_timesteps=c.num_train_timesteps, beta_schedule=c.beta_schedule,
                  prediction_type="sample")
    if kind == "dpm":
        return DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++")
    return DDIMScheduler(**common, clip_sample=False, set_alpha_to_one=True)


@torch.no_grad()
def _denoise_window(model, audio_n, ctx, steps, guidance, kind, gen, device, on_step):
    """audio_n [N,A] normalised; ctx [C,D] normalised known frames (C may be 0) -> [N,D]."""
    n, d = audio_n.shape[0], model.config.motion_dim
    c = ctx.shape[0]
    sched = make_scheduler(model, kind)
    sched.set_timesteps(steps)
    x = torch.randn((1, n, d), generator=gen).to(device) * sched.init_noise_sigma
    known = torch.zeros(1, n, device=device)
    known[:, :c] = 1
    use_cfg = guidance != 1.0
    a = audio_n[None].to(device)
    if use_cfg:
        a2, known2 = a.expand(2, -1, -1), known.expand(2, -1)
        keep = torch.tensor([True, False], device=device)
    for i, t in enumerate(sched.timesteps):
        if c:
            x[:, :c] = ctx
        tt = torch.full((2 if use_cfg else 1,), int(t), device=device, dtype=torch.long)
        if use_cfg:
            out = model(x.expand(2, -1, -1), tt, a2, known2, keep)
            x0 = out[1:] + guidance * (out[:1] - out[1:])
        else:
            x0 = model(x, tt, a, known)
        # scheduler.step with prediction_type="sample" consumes x0 directly
        x = sched.step(x0, t, x, generator=gen if kind == "ddim" else None).prev_sample
        on_step(i + 1)
    if c:
        x[:, :c] = ctx
    return x[0]


def sample_motion(model: MotionDiffusion, wave16k: torch.Tensor, fps: float,
                  settings: SampleSettings = SampleSettings(), device=None,
                  progress: Progress = None, interrupt: Interrupt = None) -> Motion:
    """Mono 16 kHz speech -> Motion at `fps` with round(duration * fps) frames. Progress counts
    denoising steps over all windows."""
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and MIN_FPS <= fps <= MAX_FPS):
        raise VloggerError(f"fps {fps} is outside {MIN_FPS:g}..{MAX_FPS:g}", "fps",
                           f"use {MIN_FPS:g}-{MAX_FPS:g} (24, 25 or 30 are usual)")
    settings.check()
    device = torch.device(device or next(model.parameters()).device)
    # Measured here: a 128-token window runs ~5x faster on 1 thread than on 2 when the other
    # core is busy.
    with torch_threads(settings.cpu_threads if device.type == "cpu" else None):
        return _sample(model, wave16k, fps, settings, device, progress, interrupt)


@torch.no_grad()
def _sample(model, wave16k, fps, settings, device, progress, interrupt) -> Motion:
    mfps = model.config.fps
    n_model = max(1, num_frames(wave16k.shape[0], mfps))
    feats = model.normalize_audio(audio_features(wave16k, mfps, n_model).to(device))
    gen = torch.Generator().manual_seed(int(settings.seed))
    W, C = settings.window, settings.context
    starts = [0]
    while starts[-1] + W < n_model:
        starts.append(starts[-1] + W - C)
    total = len(starts) * settings.steps
    out = torch.empty(n_model, model.config.motion_dim, device=device)
    blend = min(settings.blend, C // 2)
    done = 0
    for w, s in enumerate(starts):
        e = min(s + W, n_model)
        # The first C - blend context frames are held as known; the last `blend` ones are
        # generated again and cross-faded with the previous window's version, so the hand-over
        # is a ramp rather than a step.
        held = C - blend if w > 0 else 0
        ctx = out[s:s + held]
        base = done

        def on_step(k, base=base):
            check(interrupt)
            report(progress, base + k, total)

        new = _denoise_window(model, feats[s:e], ctx, settings.steps, settings.guidance,
                              settings.sampler, gen, device, on_step)
        if w > 0 and blend:
            ramp = (torch.arange(1, blend + 1, device=device, dtype=new.dtype) / (blend + 1))[:, None]
            a, b = s + held, s + C
            new[held:C] = out[a:b] * (1 - ramp) + new[held:C] * ramp
        out[s:e] = new
        done += settings.steps
    if settings.pose_smoothing > 0:
        out = smooth_pose(out, model.config.num_expr, model.config.joints, settings.pose_smoothing)
    x = model.denormalize_motion(out).cpu()
    c = model.config
    motion = Motion.from_vector(x, mfps, c.expression_set, c.joints)
    orthonormalize_(motion.rot6d)                                    # back onto SO(3)
    motion.expression = motion.expression.clamp(0, 1) if c.expression_set == "arkit52" else motion.expression
    n_out = num_frames(wave16k.shape[0], fps)
    motion = resample_motion(motion, fps, n_out)
    if settings.add_blinks:
        motion = add_prior_blinks(motion, settings.seed)
    motion = apply_controls(motion, settings.expression_intensity, settings.head_motion,
                            settings.gesture_amount)
    if settings.lip_closure > 0:
        shut = shut_track(shipped_closure(str(device)), wave16k.to(device), fps, motion.num_frames)
        motion = close_lips(motion, shut, settings.lip_closure)
    if settings.body_layer:
        motion = add_body_layer(motion, wave16k.cpu(), settings.seed, layer_amounts(settings))
    return motion


def layer_amounts(settings: SampleSettings) -> BodyLayer:
    """The body layer's parts from the artist controls: sway with head_motion (head, neck and
    torso), breathing at its natural depth unless head_motion is below 1, gestures with
    gesture_amount."""
    h = max(0.0, settings.head_motion)
    return BodyLayer(breathing=min(1.0, h), sway=h, gestures=max(0.0, settings.gesture_amount))


def add_prior_blinks(motion: Motion, seed: int) -> Motion:
    """Overlay (max) seeded blinks from the same prior the training corpus used. The shipped
    model under-produces these rare, sharp events (see models/motion/MODEL_CARD.md), so the
    sampler node offers this as an explicit, documented option; metrics are reported without."""
    if motion.expression_set != "arkit52":
        return motion
    import numpy as np

    from .synthetic.priors import blink_track
    b = torch.from_numpy(blink_track(motion.num_frames, motion.fps, np.random.default_rng(int(seed) + 17)))
    expr = motion.expression.clone()
    for name in ("eyeBlinkLeft", "eyeBlinkRight"):
        i = ARKIT52.index(name)
        expr[:, i] = torch.maximum(expr[:, i], b)
    return Motion(motion.fps, motion.expression_set, expr, motion.rot6d, list(motion.joints))


def smooth_pose(x: torch.Tensor, num_expr: int, joints: list[str], passes: int) -> torch.Tensor:
    """[N, D] -> same, with body/hand rotation channels filtered by `passes` x [1,2,1]/4 over
    time (edges replicated). Why: a token packs 2 frames, and the model leaves small steps
    between tokens in the slow channels; two passes (-3 dB at ~3.3 Hz at 25 fps, above most head
    and arm motion) cut the head jitter ~4x. Face (expression), jaw and eyes are left untouched so lips and
    saccades stay sharp."""
    cols = [num_expr + 6 * j + k for j, name in enumerate(joints)
            if name not in ("jaw", "left_eye_smplhf", "right_eye_smplhf") for k in range(6)]
    if x.shape[0] < 3 or not cols:
        return x
    y = x.clone()
    for c in range(0, len(cols), 48):           # a few columns at a time: small temporaries at any length
        block = cols[c:c + 48]
        sub = y[:, block]
        for _ in range(passes):
            pad = torch.cat([sub[:1], sub, sub[-1:]])
            sub = 0.25 * pad[:-2] + 0.5 * pad[1:-1] + 0.25 * pad[2:]
        y[:, block] = sub
    return y


def _scale_rotations(r6: torch.Tensor, k: float) -> torch.Tensor:
    """Scale residual rotations' angles by k (axis kept)."""
    if abs(k - 1.0) < 1e-9:
        return r6
    aa = matrix_to_axis_angle(rot6d_to_matrix(r6)) * k
    return matrix_to_rot6d(axis_angle_to_matrix(aa))


def apply_controls(motion: Motion, expression_intensity: float = 1.0, head_motion: float = 1.0,
                   gesture_amount: float = 1.0) -> Motion:
    """Artist controls on the sampled residuals:
    expression_intensity scales face coefficients (not blinks/gaze) and the jaw rotation;
    head_motion scales pelvis/spine/neck/head residual angles; gesture_amount scales collars,
    arms, wrists and fingers. 1 = as sampled, 0 = none. (The body layer's parts follow the same
    two controls: layer_amounts.)"""
    expr = motion.expression.clone()
    r6 = motion.rot6d.clone()
    if motion.expression_set == "arkit52":
        cols = [i for i, n in enumerate(ARKIT52) if n not in _EYE_CHANNELS]
        expr[:, cols] = (expr[:, cols] * expression_intensity).clamp(0, 1)
    else:
        expr = expr * expression_intensity
    ji = {j: i for i, j in enumerate(motion.joints)}
    groups = [(["jaw"], expression_intensity), (HEAD_JOINTS, head_motion),
              (GESTURE_JOINTS + [j for j in motion.joints if j[:-1].endswith(("index", "middle", "ring", "pinky", "thumb"))],
               gesture_amount)]
    for names, k in groups:
        idx = [ji[j] for j in names if j in ji]
        if idx:
            r6[:, idx] = _scale_rotations(r6[:, idx], k)
    return Motion(motion.fps, motion.expression_set, expr, r6, list(motion.joints))


def mouth_opening(motion: Motion) -> torch.Tensor:
    """[N] jawOpen + the jaw joint's rotation angle / JAW_MAX_RAD (both ~0..1)."""
    from .synthetic.priors import JAW_MAX_RAD
    v = torch.zeros(motion.num_frames)
    if motion.expression_set == "arkit52":
        v = v + motion.expression[:, ARKIT52.index("jawOpen")]
    if "jaw" in motion.joints:
        ang = matrix_to_axis_angle(rot6d_to_matrix(motion.rot6d[:, motion.joints.index("jaw")])).norm(dim=-1)
        v = v + ang / JAW_MAX_RAD
    return v / 2
