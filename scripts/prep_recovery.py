"""How well dataset preparation recovered the motion of the project's own example video
(examples/talking_astronaut.mp4, rendered by the default renderer from
examples/talking_astronaut_motion.npz, so its true motion is known). Used by the tests and by
`benchmarks/run.py training`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent


def lip_gap(body, fit, motion) -> np.ndarray:
    """Vertical distance (m) between the posed body's upper- and lower-lip landmarks, per frame."""
    vid, w = body.landmark_vertex_weights()
    v = body.pose_frames(fit, motion, 0, motion.num_frames, "cpu")
    lm = (v[:, vid] * w[None, ..., None]).sum(2)
    return (lm[:, 51 - 17, 1] - lm[:, 57 - 17, 1]).numpy()


def recovery(body, clip: dict, start: int = 0) -> dict:
    """Figures of a prepared clip (dataset_format.read_clip) of the example video starting at
    frame `start` against the true motion: Pearson r of the lip gap, jaw pitch, jawOpen and the
    blinks; head pitch/yaw/roll mean absolute error (deg, both relative to the clip's reference
    frame); expression MAE and that of an all-zero guess."""
    from vlogger_core.body.camera import PerspectiveCamera
    from vlogger_core.body.reference import ReferenceFit, fit_reference
    from vlogger_core.motion.params import ARKIT52, Motion
    from vlogger_core.motion.plot import joint_angles

    rec = clip["motion"]
    true = Motion.load_npz(str(REPO / "examples" / "talking_astronaut_motion.npz")).slice(start, start + rec.num_frames)
    ref = int(clip["reference_index"])
    photo = torch.from_numpy(np.array(Image.open(REPO / "examples" / "astronaut.png").convert("RGB"))).float() / 255
    tfit = fit_reference(photo, body, "auto")
    rfit = ReferenceFit(torch.from_numpy(clip["reference"].astype(np.float32) / 255),
                        PerspectiveCamera(256, 256, float(clip["fov_diag_deg"])), torch.from_numpy(clip["betas"]),
                        torch.from_numpy(clip["global_orient"][ref]), torch.from_numpy(clip["transl"][ref]),
                        torch.from_numpy(clip["reference_pose"]), torch.zeros(body.num_expression), body.name,
                        "landmarks")
    gt, gr = lip_gap(body, tfit, true), lip_gap(body, rfit, rec)
    r = lambda a, b: float(np.corrcoef(a, b)[0, 1])  # noqa: E731
    jaw = lambda m: np.degrees(joint_angles(m, "jaw"))[:, 0]  # noqa: E731
    et, er = true.expression.numpy(), rec.expression.numpy()
    et, er = et - et[ref], er - er[ref]
    ch = lambda n: r(et[:, ARKIT52.index(n)], er[:, ARKIT52.index(n)])  # noqa: E731
    head = lambda m: np.degrees(joint_angles(m, "head") + joint_angles(m, "neck"))  # noqa: E731
    ht, hr = head(true), head(rec)
    mae = np.abs((ht - ht[ref]) - (hr - hr[ref])).mean(0)
    return {"lip_gap_r": r(gt, gr), "lip_gap_range_mm": [float(np.ptp(gt) * 1e3), float(np.ptp(gr) * 1e3)],
            "jaw_pitch_r": r(jaw(true), jaw(rec)), "jaw_open_r": ch("jawOpen"),
            "blink_r": (ch("eyeBlinkLeft") + ch("eyeBlinkRight")) / 2,
            "head_mae_deg": [float(x) for x in mae], "head_true_range_deg": [float(x) for x in np.ptp(ht, 0)],
            "expression_mae": float(np.abs(et - er).mean()), "expression_mae_zero_guess": float(np.abs(et).mean())}
