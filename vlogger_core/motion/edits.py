"""Keyframed edits of a motion, stored as JSON (a node's string widget) and applied here, so the
same edits give the same motion with or without the frontend.

    {"version": 1,
     "tracks": {"head_yaw": [[1.0, 0.0], [1.5, 15.0], [2.0, 0.0]],    # [seconds, value] keys
                "jawOpen": [[0.5, 0.0], [0.8, 0.3], [1.1, 0.0]], ...},
     "blinks": [{"t": 2.4, "action": "add"}, {"t": 3.1, "action": "remove"}],
     "mute": [[3.0, 3.5]]}

A track's curve is linear between its keys and 0 (no change) before its first and after its last
key, so an edit touches only its own time range. Tracks:
- any of the 52 ARKit expression names: added to that weight (the result kept in 0..1);
- mouth_scale: the mouth (jaw*, mouth*, jaw rotation) scaled by 1 + value;
- smile: added to mouthSmileLeft/Right; brows: added to browInnerUp, browOuterUpLeft/Right;
- eyes_open: subtracted from both blinks (negative closes); gaze_yaw / gaze_pitch (degrees)
  composed on both eye joints;
- head_yaw / head_pitch / head_roll (degrees): composed on the head joint (R = Ry Rx Rz);
- gesture_amount: torso, arm and hand rotations scaled by 1 + value.
blinks: "add" puts a 0.25 s blink centred at t, "remove" opens the eyes within 0.2 s of t.
mute: time ranges where no edit applies (the motion as it came in).
"""
from __future__ import annotations

import json
import math

import numpy as np
import torch

from ..errors import VloggerError
from .combine import part_of
from .exchange.euler import euler_to_matrix
from .params import ARKIT52, Motion, matrix_to_rot6d, rot6d_to_matrix
from .reenact import scale_rotations

GROUPS = {"smile": ("mouthSmileLeft", "mouthSmileRight"),
          "brows": ("browInnerUp", "browOuterUpLeft", "browOuterUpRight")}
ROTATION_TRACKS = {"head_yaw": ("head", 0), "head_pitch": ("head", 1), "head_roll": ("head", 2),
                   "gaze_yaw": ("eyes", 0), "gaze_pitch": ("eyes", 1)}
TRACKS = (*ARKIT52, "mouth_scale", *GROUPS, "eyes_open", *ROTATION_TRACKS, "gesture_amount")
BLINK_S, REMOVE_S = 0.25, 0.2
FIX = 'write {"version": 1, "tracks": {"head_yaw": [[seconds, degrees], ...]}, "blinks": [], "mute": []}'


class EditError(VloggerError):
    """Edits that cannot be read (arg 'edits')."""


def parse_edits(text: str) -> dict:
    """The edits JSON (empty text: no edits) checked: known tracks, [seconds, value] keys with
    finite numbers in increasing time, blinks with t and action, mute ranges [t0, t1]."""
    if not text or not text.strip():
        return {"version": 1, "tracks": {}, "blinks": [], "mute": []}
    try:
        e = json.loads(text)
    except json.JSONDecodeError as err:
        raise EditError(f"the edits are not JSON ({err})", "edits", FIX) from None
    if not isinstance(e, dict):
        raise EditError("the edits are not a JSON object", "edits", FIX)
    tracks = e.get("tracks") or {}
    for name, keys in tracks.items():
        if name not in TRACKS:
            raise EditError(f"unknown track {name!r}", "edits", f"use one of: {', '.join(TRACKS[52:])} or an ARKit name")
        ok = isinstance(keys, list) and all(isinstance(k, list) and len(k) == 2 and
                                            all(isinstance(v, (int, float)) and math.isfinite(v) for v in k)
                                            for k in keys)
        if not ok or any(b[0] <= a[0] for a, b in zip(keys, keys[1:])):
            raise EditError(f"track {name!r}: keys must be [seconds, value] pairs in increasing time", "edits", FIX)
    for b in e.get("blinks") or []:
        if not (isinstance(b, dict) and isinstance(b.get("t"), (int, float)) and b.get("action") in ("add", "remove")):
            raise EditError(f"blink {b!r}: needs a time 't' and an action 'add' or 'remove'", "edits", FIX)
    for r in e.get("mute") or []:
        if not (isinstance(r, list) and len(r) == 2 and all(isinstance(v, (int, float)) for v in r) and r[0] < r[1]):
            raise EditError(f"mute range {r!r}: needs [start, end] seconds, start < end", "edits", FIX)
    return {"version": 1, "tracks": tracks, "blinks": list(e.get("blinks") or []), "mute": list(e.get("mute") or [])}


def curve(keys: list, times: np.ndarray) -> np.ndarray:
    """The track's values at `times` (seconds): linear between keys, 0 outside them."""
    if not keys:
        return np.zeros(len(times))
    k = np.asarray(keys, np.float64)
    out = np.interp(times, k[:, 0], k[:, 1])
    out[(times < k[0, 0]) | (times > k[-1, 0])] = 0.0
    return out


def apply_edits(motion: Motion, edits: dict | str) -> Motion:
    """The motion with the edits (module docstring) applied."""
    e = parse_edits(edits if isinstance(edits, str) else json.dumps(edits))
    n, fps = motion.num_frames, motion.fps
    times = (np.arange(n) + 0.5) / fps                   # frame centres
    live = np.ones(n)
    for t0, t1 in e["mute"]:
        live[(times >= t0) & (times < t1)] = 0.0
    c = lambda name: torch.from_numpy(curve(e["tracks"].get(name, []), times) * live).float()  # noqa: E731
    expr = motion.expression.clone()
    r6 = motion.rot6d.clone()
    arkit = motion.expression_set == "arkit52"
    if arkit:
        for name in ARKIT52:
            expr[:, ARKIT52.index(name)] += c(name)
        for group, names in GROUPS.items():
            for name in names:
                expr[:, ARKIT52.index(name)] += c(group)
        for name in ("eyeBlinkLeft", "eyeBlinkRight"):
            expr[:, ARKIT52.index(name)] -= c("eyes_open")
        blink = np.zeros(n)
        for b in e["blinks"]:
            d = np.abs(times - b["t"])
            if b["action"] == "add":
                blink = np.maximum(blink, np.clip(1 - d / (BLINK_S / 2), 0, 1) * live)
            else:
                blink = np.minimum(blink, -((d <= REMOVE_S) * live))
        for name in ("eyeBlinkLeft", "eyeBlinkRight"):
            k = ARKIT52.index(name)
            bl = torch.from_numpy(blink).float()
            expr[:, k] = torch.where(bl > 0, torch.maximum(expr[:, k], bl), torch.where(bl < 0, 0.0, expr[:, k]))
    scale = c("mouth_scale")
    if bool(scale.abs().gt(0).any()):
        if arkit:
            for k, name in enumerate(ARKIT52):
                if name.startswith(("jaw", "mouth")):
                    expr[:, k] = expr[:, k] * (1 + scale)
        if "jaw" in motion.joints:
            j = motion.joints.index("jaw")
            r6[:, j] = torch.stack([scale_rotations(r6[t, j], float(1 + scale[t])) for t in range(n)])
    amount = c("gesture_amount")
    if bool(amount.abs().gt(0).any()):
        for j, name in enumerate(motion.joints):
            if part_of(name) == "gestures":
                r6[:, j] = torch.stack([scale_rotations(r6[t, j], float(1 + amount[t])) for t in range(n)])
    for target, joints in (("head", ("head",)), ("eyes", ("left_eye_smplhf", "right_eye_smplhf"))):
        ang = torch.zeros(n, 3, dtype=torch.float64)
        for track, (who, axis) in ROTATION_TRACKS.items():
            if who == target:
                ang[:, axis] = torch.deg2rad(c(track).double())
        if bool(ang.abs().gt(0).any()):
            R = euler_to_matrix(ang, "YXZ").float()
            for name in joints:
                if name in motion.joints:
                    j = motion.joints.index(name)
                    r6[:, j] = matrix_to_rot6d(R @ rot6d_to_matrix(r6[:, j]))
    if arkit:
        expr = expr.clamp(0.0, 1.0) if bool((motion.expression >= 0).all()) else expr
    return Motion(fps, motion.expression_set, expr.contiguous(), r6.contiguous(), list(motion.joints))
