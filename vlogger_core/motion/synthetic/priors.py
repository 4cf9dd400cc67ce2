"""Stochastic priors that turn (speech, phoneme timeline) into a plausible talking motion.

This is the synthetic "ground truth" the default motion model learns from (no talking-video
data installs here). Deterministic parts follow the speech: visemes -> jaw and lips, prosody
(energy + pitch prominence) -> nods, eyebrow raises, beat gestures. Random parts follow
published statistics: blinks ~12-22/min lasting 100-400 ms, gaze saccades every ~0.5-4 s, slow
head drift, breathing. In pauses the mouth closes while idle motion continues.

Angles are radians in the joint's local frame (SMPL-X convention: x pitch, y yaw, z roll); small
Euler triples are turned into rotation matrices with Rodrigues and stored as 6D residuals.
"""
from __future__ import annotations

import numpy as np
import torch

from ...audio.tts import PhonemeTimeline
from ..exchange.euler import euler_to_matrix as ordered_euler_to_matrix
from ..params import (
    ARKIT52,
    MOTION_JOINTS,
    Motion,
    matrix_to_rot6d,
)
from .visemes import VISEME_KEYS, speaking_mask, viseme_track

EX = {n: i for i, n in enumerate(ARKIT52)}
JI = {n: i for i, n in enumerate(MOTION_JOINTS)}
V = {k: i for i, k in enumerate(VISEME_KEYS)}
JAW_MAX_RAD = 0.32   # jaw joint pitch at jawOpen = 1


def _lowpass_noise(rng: np.random.Generator, n: int, fps: float, cutoff_hz: float) -> np.ndarray:
    """Unit-std Gaussian noise low-passed by a Gaussian kernel (smooth drift)."""
    sigma = fps / (2 * np.pi * cutoff_hz)
    r = int(3 * sigma) + 1
    x = rng.standard_normal(n + 2 * r)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    y = np.convolve(x, k / k.sum(), mode="valid")[:n]
    return y / (y.std() + 1e-8)


def _bump(n: int, fps: float, center_s: float, rise_s: float, fall_s: float) -> np.ndarray:
    """An asymmetric raised-cosine pulse peaking (=1) at center_s."""
    t = np.arange(n) / fps - center_s
    out = np.zeros(n, np.float32)
    up = (t >= -rise_s) & (t < 0)
    down = (t >= 0) & (t <= fall_s)
    out[up] = 0.5 - 0.5 * np.cos(np.pi * (t[up] + rise_s) / rise_s)
    out[down] = 0.5 + 0.5 * np.cos(np.pi * t[down] / fall_s)
    return out


def pitch_track(wave16k: torch.Tensor, fps: float, n: int) -> np.ndarray:
    """Per-frame F0 (Hz, 70-400) from the autocorrelation peak of a 40 ms window (FFT based;
    torchaudio's detect_pitch_frequency was ~100x slower). Unvoiced frames give noise, which
    the caller masks with the speaking track."""
    sr, win = 16000, 640
    centres = ((np.arange(n) + 0.5) / fps * sr).astype(int)
    idx = np.clip(centres[:, None] + np.arange(-win // 2, win // 2)[None], 0, len(wave16k) - 1)
    x = wave16k.numpy()[idx] * np.hanning(win)[None]
    spec = np.fft.rfft(x, 2 * win, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :win]
    lo, hi = sr // 400, sr // 70
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    return (sr / lag).astype(np.float32)


def prosody(wave16k: torch.Tensor, fps: float, n: int, speaking: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame normalised energy (0..1) and a prominence score (z(energy) + 0.5 z(pitch))."""
    from ...audio.features import energy_envelope
    env = energy_envelope(wave16k, fps, n).numpy()
    energy = env / (np.percentile(env, 98) + 1e-6)
    f0 = pitch_track(wave16k, fps, n)
    voiced = speaking > 0.5
    def z(x):
        if voiced.sum() < 3:
            return np.zeros(n)
        return (x - x[voiced].mean()) / (x[voiced].std() + 1e-6) * voiced
    return np.clip(energy, 0, 1.5).astype(np.float32), (z(energy) + 0.5 * z(np.log(f0 + 1))).astype(np.float32)


def _peaks(score: np.ndarray, fps: float, min_gap_s: float, thresh: float) -> list[int]:
    """Local maxima above thresh at least min_gap_s apart (greedy by height)."""
    cand = [i for i in range(1, len(score) - 1)
            if score[i] >= score[i - 1] and score[i] > score[i + 1] and score[i] > thresh]
    cand.sort(key=lambda i: -score[i])
    chosen: list[int] = []
    gap = int(min_gap_s * fps)
    for i in cand:
        if all(abs(i - j) >= gap for j in chosen):
            chosen.append(i)
    return sorted(chosen)


def blink_track(n: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """[n] eyelid closure 0..1: Poisson blinks at 12-22/min, 100-400 ms, fast close, slow open."""
    duration = n / fps
    rate = rng.uniform(12, 22) / 60.0
    blink = np.zeros(n, np.float32)
    s = rng.exponential(1 / rate) * 0.5
    while s < duration:
        dur = float(np.clip(rng.lognormal(np.log(0.2), 0.3), 0.1, 0.4))
        amp = 1.0 if rng.random() > 0.1 else rng.uniform(0.6, 0.9)
        blink = np.maximum(blink, amp * _bump(n, fps, s + 0.35 * dur, 0.35 * dur, 0.65 * dur))
        s += dur + rng.exponential(1 / rate)
    return blink


def synth_motion(timeline: PhonemeTimeline, wave16k: torch.Tensor, fps: float,
                 rng: np.random.Generator) -> Motion:
    """One plausible motion for this utterance ([N] = round(duration * fps) frames)."""
    duration = wave16k.shape[0] / 16000.0
    n = int(round(duration * fps))
    expr = np.zeros((n, len(ARKIT52)), np.float32)
    euler = np.zeros((n, len(MOTION_JOINTS), 3), np.float32)   # x pitch, y yaw, z roll
    speak = speaking_mask(timeline, fps, n)
    speak_s = np.convolve(speak, np.ones(int(fps * 0.6)) / int(fps * 0.6), mode="same")  # "in speech"
    energy, prom = prosody(wave16k, fps, n, speak)
    t = np.arange(n) / fps

    # --- mouth: visemes, a little louder -> a little wider
    vis = viseme_track(timeline, duration, fps, n, strength=rng.uniform(0.75, 1.2))
    loud = 0.8 + 0.4 * np.clip(energy, 0, 1)
    jaw = np.clip(vis[:, V["jaw"]] * loud, 0, 1)
    expr[:, EX["jawOpen"]] = jaw
    expr[:, EX["mouthClose"]] = 0.3 * vis[:, V["close"]]
    for side in ("Left", "Right"):
        expr[:, EX[f"mouthPress{side}"]] = vis[:, V["press"]]
        expr[:, EX[f"mouthStretch{side}"]] = vis[:, V["stretch"]]
        expr[:, EX[f"mouthUpperUp{side}"]] = vis[:, V["upper_up"]]
        expr[:, EX[f"mouthLowerDown{side}"]] = 0.5 * jaw * (1 - vis[:, V["close"]])
    expr[:, EX["mouthFunnel"]] = vis[:, V["funnel"]]
    expr[:, EX["mouthPucker"]] = vis[:, V["pucker"]]
    expr[:, EX["mouthRollLower"]] = vis[:, V["roll_lower"]]
    expr[:, EX["tongueOut"]] = 0.3 * vis[:, V["tongue"]]
    euler[:, JI["jaw"], 0] = JAW_MAX_RAD * jaw

    # --- mood: a slowly varying smile
    smile = np.clip(rng.uniform(0, 0.3) + 0.08 * _lowpass_noise(rng, n, fps, 0.1), 0, 1)
    expr[:, EX["mouthSmileLeft"]] = smile
    expr[:, EX["mouthSmileRight"]] = smile * rng.uniform(0.85, 1.0)
    expr[:, EX["cheekSquintLeft"]] = 0.4 * smile
    expr[:, EX["cheekSquintRight"]] = 0.4 * smile

    # --- blinks: Poisson onsets, 100-400 ms, fast close / slower open
    blink = blink_track(n, fps, rng)
    expr[:, EX["eyeBlinkLeft"]] = blink
    expr[:, EX["eyeBlinkRight"]] = blink * rng.uniform(0.95, 1.0)

    # --- gaze: saccades between fixations, a smaller range while speaking (looking at the camera)
    yaw_g = np.zeros(n, np.float32)
    pitch_g = np.zeros(n, np.float32)
    s, cur = 0.0, (0.0, 0.0)
    while s < duration:
        i0 = int(s * fps)
        spread = 0.06 if speak_s[min(i0, n - 1)] > 0.5 else 0.14
        cur = (rng.normal(0, spread), rng.normal(-0.02, spread * 0.5)) if rng.random() > 0.3 else (0.0, 0.0)
        s_next = s + rng.uniform(0.5, 4.0)
        yaw_g[i0:int(s_next * fps)] = cur[0]
        pitch_g[i0:int(s_next * fps)] = cur[1]
        s = s_next
    k = np.ones(2) / 2   # a saccade takes ~1-2 frames
    yaw_g = np.convolve(np.pad(yaw_g, (1, 0), mode="edge"), k, mode="valid")[:n]
    pitch_g = np.convolve(np.pad(pitch_g, (1, 0), mode="edge"), k, mode="valid")[:n]
    for eye in ("left_eye_smplhf", "right_eye_smplhf"):
        euler[:, JI[eye], 1] = yaw_g
        euler[:, JI[eye], 0] = -pitch_g
    # yaw > 0: looking to the subject's left: left eye looks out, right eye looks in.
    look = lambda a: np.clip(a / 0.4, 0, 1)
    expr[:, EX["eyeLookOutLeft"]] = look(yaw_g)
    expr[:, EX["eyeLookInRight"]] = look(yaw_g)
    expr[:, EX["eyeLookInLeft"]] = look(-yaw_g)
    expr[:, EX["eyeLookOutRight"]] = look(-yaw_g)
    for side in ("Left", "Right"):
        expr[:, EX[f"eyeLookUp{side}"]] = look(pitch_g)
        expr[:, EX[f"eyeLookDown{side}"]] = look(-pitch_g)

    # --- head: drift (livelier while speaking) + nods and brow raises on prominent syllables
    liveliness = rng.uniform(0.6, 1.4)
    amp = liveliness * (0.6 + 0.6 * speak_s)
    head = np.stack([0.035 * _lowpass_noise(rng, n, fps, 0.4),
                     0.06 * _lowpass_noise(rng, n, fps, 0.25),
                     0.025 * _lowpass_noise(rng, n, fps, 0.3)], 1) * amp[:, None]
    brows = np.full(n, rng.uniform(0, 0.15), np.float32)
    gesture_rate = rng.uniform(0.2, 0.8)
    hands = rng.choice(["right", "left", "both"], p=[0.45, 0.25, 0.3])
    beats = {"left": np.zeros(n, np.float32), "right": np.zeros(n, np.float32)}
    for i in _peaks(prom * speak, fps, 0.45, 0.8):
        if rng.random() < 0.6:
            head[:, 0] += rng.uniform(0.03, 0.07) * liveliness * _bump(n, fps, t[i] + 0.05, 0.12, 0.3)
        if rng.random() < 0.35:
            brows += rng.uniform(0.3, 0.7) * _bump(n, fps, t[i], 0.12, rng.uniform(0.3, 0.6))
        if rng.random() < gesture_rate:
            sides = ["left", "right"] if hands == "both" else [hands]
            for side in sides:   # beat: quick stroke on the syllable, slow retraction
                beats[side] += rng.uniform(0.5, 1.0) * _bump(n, fps, t[i], 0.15, 0.45)
    for j, w in (("head", 0.6), ("neck", 0.4)):
        euler[:, JI[j]] += w * head
    euler[:, JI["spine3"], 1] += 0.2 * head[:, 1]
    euler[:, JI["spine3"], 0] += 0.012 * np.sin(2 * np.pi * rng.uniform(0.2, 0.3) * t + rng.uniform(0, 6))
    brows = np.clip(brows, 0, 1)
    expr[:, EX["browInnerUp"]] = brows
    expr[:, EX["browOuterUpLeft"]] = 0.8 * brows
    expr[:, EX["browOuterUpRight"]] = 0.8 * brows

    # --- arms and hands: a raised "gesture space" while talking, beats, idle sway, finger curl
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        b = np.clip(beats[side], 0, 1.2)
        raise_ = 0.15 * speak_s * (hands in (side, "both")) * rng.uniform(0.5, 1.2)
        sway = 0.02 * _lowpass_noise(rng, n, fps, 0.2)
        euler[:, JI[f"{side}_shoulder"], 2] += sgn * (0.1 * raise_ + 0.06 * b + sway)
        euler[:, JI[f"{side}_shoulder"], 0] += -0.08 * b
        euler[:, JI[f"{side}_elbow"], 1] += sgn * (-(raise_ + 0.25 * b) + 0.5 * sway)
        euler[:, JI[f"{side}_wrist"], 0] += 0.2 * b + 0.03 * _lowpass_noise(rng, n, fps, 0.3)
        euler[:, JI[f"{side}_collar"], 2] += sgn * 0.02 * b
        curl = np.clip(rng.uniform(0.1, 0.35) + 0.25 * b + 0.04 * _lowpass_noise(rng, n, fps, 0.2), 0, 1)
        for f in ("index", "middle", "ring", "pinky"):
            for seg, w in (("1", 0.5), ("2", 0.7), ("3", 0.4)):
                euler[:, JI[f"{side}_{f}{seg}"], 2] += sgn * w * curl
        for seg in ("1", "2", "3"):
            euler[:, JI[f"{side}_thumb{seg}"], 1] += sgn * 0.2 * curl

    rot = euler_to_matrix(euler)
    return Motion(fps, "arkit52", torch.from_numpy(np.clip(expr, 0, 1)), matrix_to_rot6d(rot).float())


def euler_to_matrix(euler: np.ndarray) -> torch.Tensor:
    """[..., 3] XYZ Euler angles -> [..., 3, 3] float32 rotation matrices (R = Rz Ry Rx): the
    exchange formats' Euler rotation in order "ZYX" with the angles reversed."""
    zyx = torch.from_numpy(np.ascontiguousarray(np.asarray(euler, np.float64)[..., ::-1]))
    return ordered_euler_to_matrix(zyx, "ZYX").float()
