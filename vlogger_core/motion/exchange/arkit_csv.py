"""ARKit blendshape CSV as Live Link Face (Epic Games' iPhone face-capture app) writes it.

Columns: Timecode (HH:MM:SS:FF.sss: hours, minutes, seconds, the frame FF within the second at
the capture's rate and a sub-frame fraction), BlendshapeCount (61), the 52 ARKit blendshapes by
name (PascalCase, 0..1), HeadYaw, HeadPitch, HeadRoll, LeftEyeYaw, LeftEyePitch, LeftEyeRoll,
RightEyeYaw, RightEyePitch, RightEyeRoll.

Reading matches the names case-insensitively and in any order. Missing blendshape columns read
as 0, missing head / eye columns as no rotation (both reported); a file with none of the 52
names, or no frames, is refused. The capture's own rate comes from the timecodes (the frame
field's largest value + 1, to a standard rate) or is given (`csv_fps`); frames are placed by
their timecodes (dropped frames interpolated) and resampled to the asked rate with
motion/resample.py.

Angles (radians by default, or degrees) map to the SMPL-X joints 'head', 'left_eye_smplhf',
'right_eye_smplhf' as R = Ry(yaw) @ Rx(pitch) @ Rz(roll) in SMPL-X's axes (Y up, Z forward out
of the face, X to the person's left): yaw + turns to the person's own left, pitch + looks down,
roll + tilts the head towards the person's right shoulder. The motion's other joints are not in
the format: they read as the rest pose, and writing leaves them out.
"""
from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

import numpy as np
import torch

from ...errors import VloggerError
from ..params import ARKIT52, IDENTITY_6D, Motion, matrix_to_rot6d, rot6d_to_matrix
from ..resample import resample_motion
from .euler import euler_to_matrix, matrix_to_euler

# Live Link Face's column order (its own enum: JawRight before JawLeft, MouthRight before MouthLeft)
LLF_BLENDSHAPES = [
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft", "EyeSquintLeft",
    "EyeWideLeft", "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight", "EyeLookOutRight", "EyeLookUpRight",
    "EyeSquintRight", "EyeWideRight", "JawForward", "JawRight", "JawLeft", "JawOpen", "MouthClose",
    "MouthFunnel", "MouthPucker", "MouthRight", "MouthLeft", "MouthSmileLeft", "MouthSmileRight",
    "MouthFrownLeft", "MouthFrownRight", "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft",
    "MouthStretchRight", "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper",
    "MouthPressLeft", "MouthPressRight", "MouthLowerDownLeft", "MouthLowerDownRight", "MouthUpperUpLeft",
    "MouthUpperUpRight", "BrowDownLeft", "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft", "BrowOuterUpRight",
    "CheekPuff", "CheekSquintLeft", "CheekSquintRight", "NoseSneerLeft", "NoseSneerRight", "TongueOut",
]
ROTATIONS = {"head": "Head", "left_eye_smplhf": "LeftEye", "right_eye_smplhf": "RightEye"}
ANGLES = ("Yaw", "Pitch", "Roll")
ORDER = "YXZ"                       # yaw about Y, pitch about X, roll about Z
HEADER = ["Timecode", "BlendshapeCount", *LLF_BLENDSHAPES,
          *[f"{p}{a}" for p in ROTATIONS.values() for a in ANGLES]]
STANDARD_RATES = (24.0, 25.0, 30.0, 48.0, 50.0, 60.0, 100.0, 120.0)
UNITS = ("radians", "degrees")
DIGITS = 6                          # decimals written: the format's precision here
FIX = "export the take from Live Link Face as CSV (Timecode, BlendshapeCount, the 52 blendshapes by name)"
TIMECODE = re.compile(r"^\s*(\d+):(\d+):(\d+)[:;](\d+)(?:\.(\d+))?\s*$")


class ExchangeError(VloggerError):
    """A file or motion the exchange formats cannot read or write (`arg` names it)."""


def _seconds(tc: str, rate: float) -> float:
    h, m, s, f, sub = TIMECODE.match(tc).groups()
    frac = float(f"0.{sub}") if sub else 0.0
    return int(h) * 3600 + int(m) * 60 + int(s) + (int(f) + frac) / rate


def _capture_rate(codes: list[str]) -> float | None:
    """The rate the timecodes count frames at: the frame field's largest value + 1, rounded up to
    a standard rate (None when under a second of frames leaves it unknown)."""
    frames = [int(TIMECODE.match(c).group(4)) for c in codes]
    secs = {TIMECODE.match(c).group(3) for c in codes}
    if len(secs) < 2:
        return None
    top = max(frames) + 1
    return next((r for r in STANDARD_RATES if r >= top), float(top))


def read_arkit_csv(path_or_text, fps: float = 24.0, csv_fps: float = 0.0, units: str = "radians",
                   name: str | None = None) -> tuple[Motion, dict]:
    """A Live Link Face CSV (a path, or the text itself) -> (Motion at `fps`, report). `csv_fps`
    0: the capture's rate from the timecodes. ExchangeError's arg: 'path', 'csv_fps', 'fps' or
    'units'."""
    if units not in UNITS:
        raise ExchangeError(f"unknown angle unit {units!r}", "units", f"choose one of {list(UNITS)}")
    if not (math.isfinite(fps) and fps > 0):
        raise ExchangeError(f"fps {fps} is not a frame rate", "fps", "use 24 (the motion model's) or 25 / 30")
    is_path = isinstance(path_or_text, (str, Path)) and "\n" not in str(path_or_text)
    name = name or (Path(path_or_text).name if is_path else "the CSV")
    try:
        text = Path(path_or_text).read_text(encoding="utf-8-sig") if is_path else str(path_or_text)
    except (OSError, UnicodeDecodeError) as e:
        raise ExchangeError(f"cannot read {name} ({e})", "path", FIX) from None
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    if not rows:
        raise ExchangeError(f"{name} is empty", "path", FIX)
    header = [h.strip() for h in rows[0]]
    col = {h.lower(): i for i, h in enumerate(header)}
    shapes = [k for k in ARKIT52 if k.lower() in col]
    if not shapes:
        raise ExchangeError(f"{name} has none of the 52 ARKit blendshape columns (its header: "
                            f"{', '.join(header[:6])}{', ...' if len(header) > 6 else ''})", "path", FIX)
    body = rows[1:]
    if not body:
        raise ExchangeError(f"{name} has a header but no frames", "path", FIX)
    report: dict = {"frames_in_file": len(body), "missing_blendshapes": [k for k in ARKIT52 if k.lower() not in col]}
    width = len(header)
    bad = [i + 2 for i, r in enumerate(body) if len(r) < width]
    if bad:
        raise ExchangeError(f"{name}: line {bad[0]} has fewer values than the header's {width} columns",
                            "path", "export the take again (the file looks cut off)")

    def values(key: str) -> np.ndarray:
        try:
            v = np.array([float(r[col[key.lower()]]) for r in body], np.float64)
        except ValueError as e:
            raise ExchangeError(f"{name}: column {key} holds a value that is not a number ({e})", "path", FIX) from None
        if not np.isfinite(v).all():
            raise ExchangeError(f"{name}: column {key} holds NaN or infinite values", "path", FIX)
        return v

    # when the frames are
    if "timecode" in col:
        codes = [r[col["timecode"]] for r in body]
        wrong = next((c for c in codes if not TIMECODE.match(c)), None)
        if wrong is not None:
            raise ExchangeError(f"{name}: timecode {wrong!r} is not HH:MM:SS:FF(.sub)", "path", FIX)
        rate = float(csv_fps) or _capture_rate(codes)
        if rate is None:
            raise ExchangeError(f"{name} lasts under a second: its capture rate cannot be read from the "
                                "timecodes", "csv_fps", "set csv_fps to the rate Live Link Face recorded at (60 or 30)")
        t = np.array([_seconds(c, rate) for c in codes])
        if (np.diff(t) <= 0).any():
            k = int(np.argmax(np.diff(t) <= 0)) + 3
            raise ExchangeError(f"{name}: the timecodes do not increase (line {k}), or csv_fps {rate:g} is not "
                                "the capture's rate", "csv_fps", "set csv_fps to the capture's rate, or 0 to read it")
        index = np.round((t - t[0]) * rate).astype(int)
        if len(set(index.tolist())) < len(index):
            raise ExchangeError(f"{name}: several frames share a timecode at {rate:g} fps", "csv_fps",
                                "set csv_fps to the capture's rate, or 0 to read it from the timecodes")
    else:
        if not csv_fps:
            raise ExchangeError(f"{name} has no Timecode column: its frame rate is unknown", "csv_fps",
                                "set csv_fps to the rate the file was recorded at")
        rate, index = float(csv_fps), np.arange(len(body))
        report["missing_timecode"] = True
    n = int(index[-1]) + 1
    report.update(capture_fps=rate, dropped_frames=int(n - len(body)))

    def placed(v: np.ndarray) -> np.ndarray:        # rows at their frames, gaps interpolated
        return np.interp(np.arange(n), index, v) if n != len(v) else v

    m = Motion.neutral(n, rate, "arkit52")
    for k in shapes:
        m.expression[:, ARKIT52.index(k)] = torch.from_numpy(placed(values(k))).float()
    scale = 1.0 if units == "radians" else math.pi / 180.0
    missing_rot = []
    for joint, prefix in ROTATIONS.items():
        keys = [f"{prefix}{a}" for a in ANGLES]
        if not any(k.lower() in col for k in keys):
            missing_rot.append(prefix)
            continue
        ang = np.stack([placed(values(k)) if k.lower() in col else np.zeros(n) for k in keys], 1) * scale
        m.rot6d[:, m.joints.index(joint)] = matrix_to_rot6d(euler_to_matrix(torch.from_numpy(ang), ORDER)).float()
    report["missing_rotations"] = missing_rot
    out = resample_motion(m, float(fps))
    report.update(frames=out.num_frames, fps=float(fps))
    return out, report


def _timecode(i: int, rate: int) -> str:
    s, f = divmod(i, rate)
    h, s = divmod(s, 3600)
    mnt, s = divmod(s, 60)
    return f"{h:02d}:{mnt:02d}:{s:02d}:{f:02d}.000"


def arkit_csv_text(motion: Motion, units: str = "radians") -> str:
    """The motion's face (52 blendshapes, head and eye rotations) as Live Link Face CSV text, one
    row per frame at the motion's rate (whole frames per second: 23.976 is written as 24)."""
    if motion.expression_set != "arkit52":
        raise ExchangeError(f"the motion's expressions are {motion.expression_set}, not the 52 ARKit "
                            "blendshapes", "motion", "use a motion of the default (Anny, arkit52) body")
    if units not in UNITS:
        raise ExchangeError(f"unknown angle unit {units!r}", "units", f"choose one of {list(UNITS)}")
    rate = max(1, int(round(motion.fps)))
    scale = 1.0 if units == "radians" else 180.0 / math.pi
    e = motion.expression.double()
    cols = [e[:, ARKIT52.index(k[0].lower() + k[1:])] for k in LLF_BLENDSHAPES]
    for joint in ROTATIONS:
        r6 = motion.rot6d[:, motion.joints.index(joint)] if joint in motion.joints else \
            IDENTITY_6D.expand(motion.num_frames, 6)
        ang = matrix_to_euler(rot6d_to_matrix(r6.double()), ORDER) * scale
        cols += [ang[:, 0], ang[:, 1], ang[:, 2]]
    data = torch.stack(cols, 1).numpy()
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    for i, row in enumerate(data):
        w.writerow([_timecode(i, rate), len(HEADER) - 2, *(f"{v:.{DIGITS}f}" for v in row)])
    return buf.getvalue()


def write_arkit_csv(path, motion: Motion, units: str = "radians") -> Path:
    """arkit_csv_text written whole or not at all (files.atomic_write)."""
    from ...files import atomic_write

    text = arkit_csv_text(motion, units)
    with atomic_write(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return Path(path)
