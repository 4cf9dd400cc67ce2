"""A living body on top of the motion model: breathing, torso sway and emphasis gestures.

The shipped model's body moves little (its corpus' priors give small gestures and no breathing),
so the sampler adds this procedural layer to the model's output (sampling.py). Why a layer rather
than new priors and a retrained model: retraining takes hours on this machine and would put the
held-out lip-sync metrics at risk, while the layer touches no face channel (expression, jaw, eyes)
and works with any motion model, including models fine-tuned on real footage.

What it adds, per frame, as small rotations composed after the model's residuals (R_model @ R_layer):
- breathing: a lung-volume state that falls slowly while speaking (exhalation carries speech),
  is refilled by a quick inhalation at the start of every pause (the breath before the next
  phrase), and in longer pauses follows a slower quiet-breathing cycle (4-5.5 s). It lifts the
  chest (spine3, spine2 extension) and the shoulders (collars), the arms hang on (shoulders
  counter-rotate) and the head stays level (neck).
- torso sway: slow seeded sway of the spine (lean, side-bend, twist), livelier while speaking and
  with the speech's loudness, a forward lean and a slight shrug on emphasis, and the torso
  following the head's turns and tilts (lagged), with the neck giving back the same rotation, so
  the head keeps the model's orientation while the torso goes with it.
- gestures: on emphasis (a rise of the speech's loudness over its recent level), with a chance
  that grows with `gestures`, one or both arms make a beat, an open-palm lift or a sweep
  (shoulder, elbow, wrist, fingers), sized by the emphasis and by `gestures`; while speaking the
  forearms come up into a gesture space and drop back in long pauses.

Causal: frame t depends on the speech up to the end of frame t and on the motion's head up to
frame t only (so a prefix of the speech gives a prefix of the layer, and the layer can be run as
the frames stream). Deterministic per seed: per-frame noise comes from its own generator with a
fixed number of draws per frame, each emphasis event draws a fixed number of numbers from another.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.signal import lfilter

from ..audio.features import energy_envelope
from .params import ROWS, Motion, matrix_to_axis_angle, matrix_to_rot6d, rot6d_to_matrix
from .synthetic.priors import euler_to_matrix

SPINE = (("spine1", 0.4), ("spine2", 0.35), ("spine3", 0.25))   # how the torso's rotation is shared
SIDES = (("left", 1.0), ("right", -1.0))                       # sgn: mirrors z / y rotations
FINGERS = ("index", "middle", "ring", "pinky")
LAYER_JOINTS = (["spine1", "spine2", "spine3", "neck", "left_collar", "right_collar", "left_shoulder",
                 "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist"]
                + [f"{s}_{f}{k}" for s, _ in SIDES for f in FINGERS + ("thumb",) for k in "123"])
GESTURE_KINDS = ("beat", "open", "sweep")


@dataclass
class BodyLayer:
    """How much of each part; 0 = none, 1 = natural. The sampler maps its controls onto these:
    breathing = min(1, head_motion), sway = head_motion, gestures = gesture_amount."""

    breathing: float = 1.0
    sway: float = 1.0
    gestures: float = 1.0


@dataclass
class SpeechDrive:
    """What the layer reads from the speech, per frame, causally."""

    level: np.ndarray       # [n] loudness 0..1 relative to the recent peak
    speaking: np.ndarray    # [n] 0/1: speech now or within the last 0.2 s
    events: list            # [(frame, strength 0..1)]: emphasis onsets


def _one_pole(x: np.ndarray, fps: float, tau_s: float, init: float | None = None) -> np.ndarray:
    """Causal first-order low-pass with time constant tau_s, started at `init` (default x[0])."""
    a = math.exp(-1.0 / max(1e-6, tau_s * fps))
    x = np.asarray(x, np.float64)
    if len(x) == 0:
        return x
    z0 = (x[0] if init is None else init) * a
    return lfilter([1 - a], [1, -a], x, zi=[z0])[0]


def _smooth_noise(rng: np.random.Generator, n: int, fps: float, cutoffs_hz) -> np.ndarray:
    """[n, len(cutoffs_hz)] unit-std noise, channel k through two causal one-pole low-passes
    (cutoff ~cutoffs_hz[k]). All normals are drawn in one call in frame order, after a warm-up
    that depends only on the cutoffs and fps (so the noise is stationary from frame 0 and a
    prefix of n frames gives a prefix of the result)."""
    taus = [1.0 / (2 * math.pi * c) for c in cutoffs_hz]
    warm = int(6 * max(taus) * fps) + 1
    x = rng.standard_normal((warm + n, len(taus)))
    out = np.empty((n, len(taus)))
    for k, tau in enumerate(taus):
        a = math.exp(-1.0 / max(1e-6, tau * fps))
        y = lfilter([1 - a], [1, -a], lfilter([1 - a], [1, -a], x[:, k]))[warm:]
        # the cascade's output std for unit white noise: sqrt(sum of its impulse response squared)
        h = lfilter([1 - a], [1, -a], lfilter([1 - a], [1, -a], np.r_[1.0, np.zeros(20 * warm)]))
        out[:, k] = y / math.sqrt(float((h ** 2).sum()))
    return out


def speech_drive(wave16k: torch.Tensor, fps: float, n: int) -> SpeechDrive:
    """Loudness, speaking and emphasis onsets of mono 16 kHz speech at `fps`, causally: frame t
    reads the RMS of its own audio span and of earlier frames only."""
    env = energy_envelope(wave16k.float(), fps, n).numpy().astype(np.float64)
    # the recent peak, decaying over ~3 s, with a floor (-40 dBFS) so silence is not boosted
    decay = math.exp(-1.0 / (3.0 * fps))
    ref = np.empty(n)
    r = 0.01
    for t in range(n):
        r = max(env[t], r * decay, 0.01)
        ref[t] = r
    level = np.clip(env / ref, 0, 1)
    active = (env > 0.1 * ref) & (env > 0.003)
    hang = max(1, int(round(0.2 * fps)))
    last, speaking = -10 ** 9, np.zeros(n)
    for t in range(n):
        if active[t]:
            last = t
        speaking[t] = float(t - last < hang)
    # syllables: rises of the loudness over its recent level; an emphasis is a syllable that
    # rises clearly more than the recent syllables did (fired as soon as it does, not at its peak)
    score = _one_pole(level, fps, 0.04, 0.0) - _one_pole(level, fps, 0.4, 0.0)
    events, last_ev, gap = [], -10 ** 9, int(round(0.5 * fps))
    typical, peak, fired = 0.3, None, False
    for t in range(n):
        if speaking[t] and score[t] > 0.12:
            peak = score[t] if peak is None else max(peak, score[t])
            if not fired and score[t] > max(0.3, 1.15 * typical) and t - last_ev >= gap:
                events.append((t, float(np.clip(score[t] / 0.5, 0.5, 1.0))))
                fired, last_ev = True, t
        elif peak is not None and score[t] < 0.04:      # the syllable is over
            typical += 0.15 * (peak - typical)
            peak, fired = None, False
    return SpeechDrive(level.astype(np.float32), speaking.astype(np.float32), events)


def breath_track(speaking: np.ndarray, fps: float, rng: np.random.Generator) -> np.ndarray:
    """[n] lung volume 0..1: falls while speaking, a quick inhalation (0.35-0.6 s) at the start of
    each pause, quiet breathing (a 4-5.5 s cycle, slower than speech breathing) once a pause
    lasts over 1.2 s. Seeded: the rates and the quiet period come from `rng` (3 draws)."""
    exhale = rng.uniform(0.12, 0.2)            # volume per second while speaking
    inhale_tau = rng.uniform(0.35, 0.6) / 3
    period = rng.uniform(4.0, 5.5)
    dt = 1.0 / fps
    n = len(speaking)
    out = np.empty(n)
    b, pause, phase = 0.9, 0.0, 0.0
    k_in = 1 - math.exp(-dt / inhale_tau)
    k_q = 1 - math.exp(-dt / 0.35)
    for t in range(n):
        if speaking[t] > 0.5:
            pause = 0.0
            b = max(0.05, b - exhale * dt)
        else:
            pause += dt
            if pause < 1.2:
                b += (1.0 - b) * k_in
                phase = 0.0
            else:
                phase += 2 * math.pi * dt / period
                b += (0.5 + 0.45 * math.cos(phase) - b) * k_q
        out[t] = b
    return _one_pole(out, fps, 0.1)


def _bump(n: int, start: int, fps: float, rise_s: float, hold_s: float, fall_s: float) -> tuple[slice, np.ndarray]:
    """A smooth pulse starting at frame `start`: raised-cosine rise, hold at 1, raised-cosine fall.
    Returns (the frames it covers, its values)."""
    t = (np.arange(int(math.ceil((rise_s + hold_s + fall_s) * fps)) + 1)) / fps
    v = np.where(t < rise_s, 0.5 - 0.5 * np.cos(np.pi * t / rise_s),
                 np.where(t < rise_s + hold_s, 1.0,
                          0.5 + 0.5 * np.cos(np.pi * np.clip((t - rise_s - hold_s) / fall_s, 0, 1))))
    stop = min(n, start + len(v))
    return slice(start, stop), v[:max(0, stop - start)]


def head_turn(motion: Motion) -> np.ndarray:
    """[n, 3] the head's rotation relative to the torso (neck @ head residuals) as a small-angle
    (x pitch, y yaw, z roll) vector, radians; zeros when the motion has no neck / head."""
    ji = {j: i for i, j in enumerate(motion.joints)}
    R = torch.eye(3).expand(motion.num_frames, 3, 3)
    for name in ("neck", "head"):
        if name in ji:
            R = R @ rot6d_to_matrix(motion.rot6d[:, ji[name]].float())
    return matrix_to_axis_angle(R).numpy().astype(np.float64)


def layer_angles(drive: SpeechDrive, head: np.ndarray, fps: float, seed: int,
                 amounts: BodyLayer = BodyLayer()) -> dict[str, np.ndarray]:
    """{joint: [n, 3] XYZ Euler angles (radians, local joint frame, SMPL-X: x pitch, y yaw, z roll)}
    of the layer for n frames. head [n,3]: head_turn of the motion it goes on."""
    n = len(drive.level)
    rng0 = np.random.default_rng([int(seed), 14, 0])      # per-seed style (fixed draws)
    rng_noise = np.random.default_rng([int(seed), 14, 1])  # per-frame noise
    rng_ev = np.random.default_rng([int(seed), 14, 2])     # per-event choices
    ang = {j: np.zeros((n, 3)) for j in LAYER_JOINTS}
    speak_s = _one_pole(drive.speaking, fps, 0.8, 0.0)     # "in speech", eased
    level_s = _one_pole(drive.level, fps, 0.5, 0.0)

    # --- breathing
    breath = breath_track(drive.speaking, fps, rng0) - 0.5
    depth = rng0.uniform(0.8, 1.2) * amounts.breathing
    b = depth * breath
    ang["spine3"][:, 0] += -0.03 * b          # chest lifts (extension)
    ang["spine2"][:, 0] += -0.012 * b
    ang["neck"][:, 0] += 0.042 * b            # the head stays level
    for side, sgn in SIDES:
        ang[f"{side}_collar"][:, 2] += sgn * 0.06 * b        # shoulders rise
        ang[f"{side}_shoulder"][:, 2] += -sgn * 0.06 * b     # the arms keep hanging

    # --- torso sway: seeded noise (livelier when speaking, with loudness) + head following
    live = rng0.uniform(0.8, 1.25) * amounts.sway
    # pitch, yaw, roll of the torso; then per side: shoulder and elbow idle drift
    noise = _smooth_noise(rng_noise, n, fps, (0.22, 0.22, 0.22, 0.3, 0.3, 0.3, 0.3))
    energy = 0.45 + 0.55 * speak_s * (0.5 + 0.8 * level_s)
    sway = noise[:, :3] * np.array([0.012, 0.022, 0.02]) * energy[:, None] * live
    follow = np.stack([_one_pole(head[:, k], fps, 0.25, 0.0) for k in range(3)], 1) \
        * np.array([0.15, 0.3, 0.25]) * amounts.sway
    torso = sway + follow
    for j, w in SPINE:
        ang[j] += w * torso
    ang["neck"] += -follow - np.array([0.0, 0.0, 0.5]) * sway   # head keeps its orientation, upright

    # --- gestures: a raised gesture space while speaking, strokes on emphasis
    g = amounts.gestures
    dominant = "right" if rng0.random() < 0.7 else "left"
    space = 0.12 * g * speak_s
    for i_side, (side, sgn) in enumerate(SIDES):
        ang[f"{side}_elbow"][:, 1] += -sgn * space                 # forearms come up
        ang[f"{side}_wrist"][:, 0] += 0.3 * space
        idle = noise[:, 3 + 2 * i_side:5 + 2 * i_side] * 0.02 * g
        ang[f"{side}_shoulder"][:, 2] += sgn * idle[:, 0]
        ang[f"{side}_elbow"][:, 1] += -sgn * idle[:, 1]
    lean = np.zeros(n)
    shrug = np.zeros(n)
    for t, strength in drive.events:
        u = rng_ev.random(8)            # always 8 draws per event: the sequence stays aligned
        sl, v = _bump(n, t, fps, 0.18, 0.05, 0.6)
        lean[sl] += 0.014 * strength * v * amounts.sway
        if u[7] < 0.3:
            shrug[sl] += 0.025 * strength * v * amounts.sway
        if g <= 0 or u[0] >= min(0.95, 0.65 * g):
            continue
        other = "left" if dominant == "right" else "right"
        sides = [dominant] if u[1] < 0.55 else ([dominant, other] if u[1] < 0.85 else [other])
        kind = GESTURE_KINDS[int(u[2] * len(GESTURE_KINDS)) % len(GESTURE_KINDS)]
        size = strength * (0.6 + 0.6 * u[3]) * g
        if kind == "beat":
            sl, v = _bump(n, t, fps, 0.12, 0.0, 0.35 + 0.2 * u[4])
            pose = {"elbow": (0, -0.3, 0), "wrist": (0.25, 0, 0), "curl": 0.15, "shoulder": (0, 0, 0.04)}
        elif kind == "open":
            sl, v = _bump(n, t, fps, 0.22, 0.15 + 0.25 * u[4], 0.6 + 0.3 * u[5])
            pose = {"elbow": (0, -0.5, 0), "wrist": (-0.25, 0, 0), "curl": -0.3, "shoulder": (0, 0, 0.16)}
        else:   # sweep: the forearm swings out and back
            sl, v = _bump(n, t, fps, 0.28, 0.1 + 0.2 * u[4], 0.55 + 0.3 * u[5])
            pose = {"elbow": (0, -0.4, 0), "wrist": (0, 0, 0.2), "curl": -0.1, "shoulder": (0, 0.22, 0.1)}
        for side in sides:
            sgn = dict(SIDES)[side]
            k = size * (1.0 if side == dominant else 0.75) * v
            for part in ("elbow", "wrist", "shoulder"):
                x, y, z = pose[part]
                ang[f"{side}_{part}"][sl] += k[:, None] * np.array([x, sgn * y, sgn * z])
            for f in FINGERS:
                for seg, w in (("1", 0.5), ("2", 0.7), ("3", 0.4)):
                    ang[f"{side}_{f}{seg}"][sl, 2] += sgn * w * pose["curl"] * k
    for j, w in SPINE:
        ang[j][:, 0] += w * lean
    ang["neck"][:, 0] -= 0.6 * lean
    for side, sgn in SIDES:
        ang[f"{side}_collar"][:, 2] += sgn * shrug
        ang[f"{side}_shoulder"][:, 2] -= sgn * shrug
    return ang


def add_body_layer(motion: Motion, wave16k: torch.Tensor, seed: int,
                   amounts: BodyLayer = BodyLayer()) -> Motion:
    """The motion with the layer composed after its residuals (R_model @ R_layer) on the joints it
    has; expression, jaw and eyes untouched. wave16k: the speech the motion was sampled from."""
    if amounts.breathing <= 0 and amounts.sway <= 0 and amounts.gestures <= 0:
        return motion
    n = motion.num_frames
    drive = speech_drive(wave16k, motion.fps, n)
    ang = layer_angles(drive, head_turn(motion), motion.fps, seed, amounts)
    if not any(j in motion.joints for j in LAYER_JOINTS):
        return motion
    r6 = motion.rot6d.clone()
    compose_layer_(r6, motion.joints, ang)
    return Motion(motion.fps, motion.expression_set, motion.expression, r6, list(motion.joints))


def compose_layer_(r6: torch.Tensor, joints: list[str], ang: dict[str, np.ndarray]) -> None:
    """The layer's angles (ang: joint -> [n, 3] XYZ radians, layer_angles) composed after the
    residuals r6 [n, J, 6] of `joints` (R_model @ R_layer) on the layer's joints there, in place,
    ROWS frames at a time (the [n, k, 3, 3] temporaries stay small at any length)."""
    ji = {j: i for i, j in enumerate(joints)}
    names = [j for j in LAYER_JOINTS if j in ji]
    if not names:
        return
    idx = [ji[j] for j in names]
    angles = np.stack([ang[j] for j in names], 1)                          # [n, k, 3]
    for a in range(0, len(r6), ROWS):
        b = min(a + ROWS, len(r6))
        R_layer = euler_to_matrix(angles[a:b])
        r6[a:b, idx] = matrix_to_rot6d(rot6d_to_matrix(r6[a:b, idx].float()) @ R_layer).to(r6.dtype)
