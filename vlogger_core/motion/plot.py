"""A plot of a motion a person can read: mouth vs. speech, head angles, blinks, gestures."""
from __future__ import annotations

import numpy as np
import torch

from .params import ARKIT52, Motion, matrix_to_axis_angle, rot6d_to_matrix
from .sampling import GESTURE_JOINTS, mouth_opening


def joint_angles(motion: Motion, joint: str) -> np.ndarray:
    """[N, 3] axis-angle (radians) of one joint's residual rotation."""
    if joint not in motion.joints:
        return np.zeros((motion.num_frames, 3), np.float32)
    return matrix_to_axis_angle(rot6d_to_matrix(motion.rot6d[:, motion.joints.index(joint)])).numpy()


def gesture_energy(motion: Motion) -> np.ndarray:
    """[N] mean angular speed (rad/s) of arm and hand joints."""
    idx = [motion.joints.index(j) for j in GESTURE_JOINTS if j in motion.joints]
    if not idx or motion.num_frames < 2:
        return np.zeros(motion.num_frames, np.float32)
    r = rot6d_to_matrix(motion.rot6d[:, idx])
    rel = r[1:].transpose(-1, -2) @ r[:-1]
    speed = matrix_to_axis_angle(rel).norm(dim=-1).mean(-1).numpy() * motion.fps
    return np.concatenate([speed[:1], speed]).astype(np.float32)


def blink_track(motion: Motion) -> np.ndarray:
    if motion.expression_set != "arkit52":
        return np.zeros(motion.num_frames, np.float32)
    e = motion.expression
    return ((e[:, ARKIT52.index("eyeBlinkLeft")] + e[:, ARKIT52.index("eyeBlinkRight")]) / 2).numpy()


def plot_motion(motion: Motion, envelope: np.ndarray | None = None, width: int = 1200,
                height: int = 800, title: str = "") -> torch.Tensor:
    """-> IMAGE [1, H, W, 3] float 0..1. envelope: per-frame audio RMS (optional)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(motion.num_frames) / motion.fps
    dpi = 100
    fig, axes = plt.subplots(4, 1, figsize=(width / dpi, height / dpi), dpi=dpi, sharex=True)
    ax = axes[0]
    ax.plot(t, mouth_opening(motion).numpy(), color="tab:red", label="mouth opening")
    if envelope is not None and len(envelope):
        env = np.asarray(envelope, np.float32)[: len(t)]
        ax.fill_between(t[: len(env)], 0, env / (env.max() + 1e-8), color="tab:gray", alpha=0.35,
                        label="speech envelope (scaled)")
    ax.set_ylim(0, 1.05); ax.legend(loc="upper right", fontsize=8); ax.set_ylabel("mouth")
    ax = axes[1]
    head = np.degrees(joint_angles(motion, "head") + joint_angles(motion, "neck"))
    for k, (name, c) in enumerate((("pitch (nod)", "tab:blue"), ("yaw (turn)", "tab:orange"),
                                   ("roll (tilt)", "tab:green"))):
        ax.plot(t, head[:, k], color=c, label=name)
    ax.set_ylabel("head+neck (deg)"); ax.legend(loc="upper right", fontsize=8)
    ax = axes[2]
    ax.plot(t, blink_track(motion), color="tab:purple", label="eye closure (blink)")
    ax.set_ylim(-0.05, 1.05); ax.set_ylabel("blink"); ax.legend(loc="upper right", fontsize=8)
    ax = axes[3]
    ax.plot(t, gesture_energy(motion), color="tab:brown", label="arm/hand angular speed")
    ax.set_ylabel("gesture (rad/s)"); ax.set_xlabel("time (s)"); ax.legend(loc="upper right", fontsize=8)
    fig.suptitle(title or f"VLOGGER motion: {motion.num_frames} frames at {motion.fps:g} fps "
                 f"({motion.duration:.1f} s)")
    fig.tight_layout()
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(np.float32) / 255.0
    plt.close(fig)
    return torch.from_numpy(img.copy())[None]


def motion_timeline(motion: Motion, wave: torch.Tensor | None = None, sample_rate: int = 16000,
                    max_points: int = 4000, wave_buckets: int = 1000, expressions: bool = False) -> dict:
    """What the frontend's motion view draws, as plain JSON: per-frame curves (mouth opening
    0..1, eye closure 0..1, head+neck pitch/yaw/roll in degrees, gesture energy in rad/s), and
    the speech waveform as min/max per bucket. Long motions are decimated to max_points.
    expressions: also each of the 52 ARKit weights by name and the left eye's gaze_pitch /
    gaze_yaw in degrees (what the motion editor draws)."""
    head = np.degrees(joint_angles(motion, "head") + joint_angles(motion, "neck"))
    curves = {"mouth": mouth_opening(motion).numpy(), "blink": blink_track(motion),
              "head_pitch": head[:, 0], "head_yaw": head[:, 1], "head_roll": head[:, 2],
              "gesture": gesture_energy(motion)}
    if expressions:
        eye = np.degrees(joint_angles(motion, "left_eye_smplhf"))
        curves.update(gaze_pitch=eye[:, 0], gaze_yaw=eye[:, 1])
        if motion.expression_set == "arkit52":
            curves.update({name: motion.expression[:, k].numpy() for k, name in enumerate(ARKIT52)})
    step = max(1, -(-motion.num_frames // max_points))
    out = {"fps": float(motion.fps), "frames": motion.num_frames, "step": step,
           "duration": motion.duration,
           "curves": {k: [round(float(x), 4) for x in np.asarray(v)[::step]] for k, v in curves.items()}}
    if wave is not None and wave.numel():
        w = wave.detach().float().reshape(-1).cpu().numpy()
        n = min(wave_buckets, len(w))
        edges = np.linspace(0, len(w), n + 1).astype(int)
        out["waveform"] = {"min": [round(float(w[a:b].min()), 4) for a, b in zip(edges[:-1], edges[1:])],
                           "max": [round(float(w[a:b].max()), 4) for a, b in zip(edges[:-1], edges[1:])],
                           "seconds": len(w) / sample_rate}
    return out
