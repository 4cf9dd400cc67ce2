"""Reenactment recovered against the truth (`python benchmarks/run.py reenact`).

examples/talking_astronaut.mp4 was rendered by the default renderer from
examples/talking_astronaut_motion.npz, so the motion that drives it is known. The shipped photo is
driven by that video (motion/reenact.py: reenact_file, default settings, 'everything') and the
recovered motion is compared with the true one, both relative to the neutral frame 0:
- mouth_r: Pearson r of the photo's lip gap (upper- minus lower-lip landmark, the photo's fit
  posed by each motion; scripts/prep_recovery.py lip_gap);
- blink_r: Pearson r of eyeBlinkLeft/Right, the mean of the two;
- head_mae_deg: mean absolute error of head + neck pitch/yaw/roll (degrees), averaged over the three
  (head_mae_deg_pyr: each);
- ms_per_frame: the whole reenactment's wall time per driving frame (decode, detect, fit,
  convert), on this machine's CPU under the load it had (load_avg_1min).
With `strip` (run() does it) docs/images/reenact_strip.png: driving frames (top) above the
reenacted photo (bottom), every 12th frame.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

from vlogger_core.body.model import load_body  # noqa: E402
from vlogger_core.body.reference import fit_reference  # noqa: E402
from vlogger_core.media import read_frames, to_uint8  # noqa: E402
from vlogger_core.motion.params import (  # noqa: E402
    ARKIT52,
    SMPLX_INDEX,
    Motion,
    matrix_to_axis_angle,
)
from vlogger_core.motion.plot import joint_angles  # noqa: E402
from vlogger_core.motion.reenact import ReenactSettings, reenact_file, rereference  # noqa: E402
from vlogger_core.paths import EXAMPLES  # noqa: E402

CHAIN = ("pelvis", "spine1", "spine2", "spine3", "neck", "head")
STRIP = REPO / "docs" / "images" / "reenact_strip.png"
NEUTRAL = -1        # the driving frame with the most closed mouth (its frame 0 is mid-word)


def head_direction(m: Motion, ref_pose: torch.Tensor) -> np.ndarray:
    """[N, 3] degrees: the head's rotation in the world (the chain pelvis .. head, each joint's
    photo pose composed with the motion's residual), as axis-angle components."""
    R = m.rotation_matrices()
    g = torch.eye(3).expand(m.num_frames, 3, 3)
    for j in CHAIN:
        g = g @ ref_pose[SMPLX_INDEX[j]][None] @ R[:, m.joints.index(j)]
    return np.degrees(matrix_to_axis_angle(g).numpy())


def figures(body, photo_fit, true: Motion, rec: Motion, neutral: int) -> dict:
    """Recovered vs true, both relative to the reenactment's neutral frame (module docstring)."""
    from prep_recovery import lip_gap

    r = lambda a, b: float(np.corrcoef(a, b)[0, 1])  # noqa: E731
    n = min(true.num_frames, rec.num_frames)
    true, rec = rereference(true.slice(0, n), neutral), rec.slice(0, n)
    et, er = true.expression.numpy(), rec.expression.numpy()
    blink = [r(et[:, ARKIT52.index(k)], er[:, ARKIT52.index(k)]) for k in ("eyeBlinkLeft", "eyeBlinkRight")]
    pose = photo_fit.reference_pose.float()
    ht, hr = head_direction(true, pose), head_direction(rec, pose)
    mae = np.abs((ht - ht[neutral]) - (hr - hr[neutral])).mean(0)
    local = lambda m: np.degrees(joint_angles(m, "head") + joint_angles(m, "neck"))  # noqa: E731
    return {"mouth_r": round(r(lip_gap(body, photo_fit, true), lip_gap(body, photo_fit, rec)), 3),
            "blink_r": round(float(np.mean(blink)), 3), "head_mae_deg": round(float(mae.mean()), 2),
            "head_mae_deg_xyz": [round(float(v), 2) for v in mae],
            "head_true_range_deg_xyz": [round(float(v), 2) for v in np.ptp(ht, 0)],
            "head_neck_local_mae_deg": round(float(np.abs(local(true) - local(rec)).mean()), 2)}


def strip(body, photo_fit, motion: Motion, driving: np.ndarray, every: int = 12) -> Path:
    from vlogger_core.render.talking_video import TalkingVideoRenderer

    renderer = TalkingVideoRenderer(body, photo_fit, 256, 256)
    n = min(motion.num_frames, len(driving))
    frames = renderer.render_range(motion, 0, n)
    idx = list(range(0, n, every))
    top = np.concatenate([driving[i] for i in idx], 1)
    bottom = np.concatenate([to_uint8(frames[i]) for i in idx], 1)
    img = np.concatenate([top, bottom], 0)
    STRIP.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(STRIP)
    return STRIP


def run(make_strip: bool = True) -> dict:
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    body = load_body()
    photo = torch.from_numpy(np.asarray(Image.open(EXAMPLES / "astronaut.png").convert("RGB"), np.float32) / 255)
    photo_fit = fit_reference(photo, body)
    video = EXAMPLES / "talking_astronaut.mp4"
    reenact_file(video, body, ReenactSettings(window=16, overlap=4, iters=5))        # warm-up: models loaded, kernels compiled
    t0 = time.perf_counter()
    res = reenact_file(video, body, ReenactSettings(neutral_frame=NEUTRAL))
    wall = time.perf_counter() - t0
    true = Motion.load_npz(str(EXAMPLES / "talking_astronaut_motion.npz"))
    out = figures(body, photo_fit, true, res.motion, res.report["neutral_frame"])
    out.update({"ms_per_frame": round(1000 * wall / res.motion.num_frames, 1), "frames": res.motion.num_frames,
                "lost_frames": res.report["lost_frames"], "neutral_frame": res.report["neutral_frame"], "fov_diag_deg": res.report["fov_diag_deg"],
                "load_avg_1min": round(os.getloadavg()[0], 2)})
    if make_strip:
        driving = read_frames(video)[0]
        strip(body, photo_fit, res.motion, driving)
        out["strip"] = str(STRIP.relative_to(REPO))
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(run()))
