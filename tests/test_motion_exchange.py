"""Motion exchange (vlogger_core/motion/exchange): ARKit CSV as Live Link Face writes it and BVH of
the body; round trips equal within the formats' precision; bad files named; nodes through the
real server."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vlogger_core.body.camera import PerspectiveCamera
from vlogger_core.body.model import load_body
from vlogger_core.body.reference import ReferenceFit
from vlogger_core.motion.exchange.arkit_csv import (
    HEADER,
    ExchangeError,
    arkit_csv_text,
    read_arkit_csv,
)
from vlogger_core.motion.exchange.bvh import bvh_motion, bvh_text, parse_bvh
from vlogger_core.motion.exchange.euler import euler_to_matrix, matrix_to_euler
from vlogger_core.motion.params import ARKIT52, SMPLX_JOINTS, Motion
from vlogger_core.paths import EXAMPLES

TRUE = EXAMPLES / "talking_astronaut_motion.npz"
FACE = ("head", "left_eye_smplhf", "right_eye_smplhf")


@pytest.fixture(scope="module")
def motion() -> Motion:
    return Motion.load_npz(str(TRUE))


@pytest.fixture(scope="module")
def body():
    return load_body()


@pytest.fixture(scope="module")
def fit(body):
    d = json.loads((EXAMPLES / "talking_astronaut_fit.json").read_text())
    g = torch.Generator().manual_seed(1)
    pose = body.rest_pose()[0].clone()
    from vlogger_core.motion.params import axis_angle_to_matrix

    pose[1:] = pose[1:] @ axis_angle_to_matrix(torch.randn(54, 3, generator=g) * 0.1)     # a posed reference
    return ReferenceFit(torch.zeros(8, 8, 3), PerspectiveCamera(256, 256, float(d["fov_diag_deg"])),
                        torch.tensor(d["betas"], dtype=torch.float32), torch.tensor(d["global_orient"], dtype=torch.float32),
                        torch.tensor(d["transl"], dtype=torch.float32), pose, torch.zeros(body.num_expression),
                        body.name, "landmarks", {"pose_joints_used": ["left_shoulder", "right_shoulder"]})


def test_euler_round_trip_every_order():
    g = torch.Generator().manual_seed(0)
    a = (torch.rand(200, 3, generator=g, dtype=torch.float64) - 0.5) * torch.tensor([6.0, 3.0, 6.0], dtype=torch.float64)
    for order in ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX"):
        R = euler_to_matrix(a, order)
        assert torch.allclose(euler_to_matrix(matrix_to_euler(R, order), order), R, atol=1e-10), order
    # the composition is the one documented: R = R_a @ R_b @ R_c
    x = euler_to_matrix(torch.tensor([0.3, 0.0, 0.0]), "XYZ")
    y = euler_to_matrix(torch.tensor([0.0, 0.4, 0.0]), "XYZ")
    assert torch.allclose(euler_to_matrix(torch.tensor([0.4, 0.3, 0.0]), "YXZ"), y @ x)


def test_csv_round_trip(motion):
    text = arkit_csv_text(motion)
    lines = text.splitlines()
    assert lines[0].split(",") == HEADER and len(lines) == motion.num_frames + 1
    assert lines[1].startswith("00:00:00:00.000,61,") and lines[25].startswith("00:00:01:00.000,61,")
    back, rep = read_arkit_csv(text, fps=motion.fps, csv_fps=motion.fps)
    assert back.num_frames == motion.num_frames and rep["missing_blendshapes"] == [] and rep["missing_rotations"] == []
    assert (back.expression - motion.expression).abs().max() < 1e-6            # 6 decimals
    for j in FACE:
        k = motion.joints.index(j)
        R0, R1 = motion.rotation_matrices()[:, k], back.rotation_matrices()[:, k]
        assert (R0 - R1).abs().max() < 1e-5, j
    # the format carries the face only: the body's joints read as the rest pose
    k = motion.joints.index("left_elbow")
    assert torch.allclose(back.rotation_matrices()[:, k], torch.eye(3).expand(motion.num_frames, 3, 3), atol=1e-6)
    # its own rate, read from the timecodes, resampled: a 60 fps capture read at 24 fps
    fast = Motion(60.0, "arkit52", torch.zeros(120, 52), Motion.neutral(120, 60.0).rot6d)
    fast.expression[:, ARKIT52.index("jawOpen")] = torch.linspace(0, 1, 120)
    slow, rep = read_arkit_csv(arkit_csv_text(fast), fps=24.0)
    assert rep["capture_fps"] == 60.0 and slow.num_frames == 48 and slow.fps == 24.0
    jaw = slow.expression[:, ARKIT52.index("jawOpen")]
    assert abs(float(jaw[24]) - (24.5 / 24 * 60 - 0.5) / 119) < 1e-3       # frame centres, linear


def test_csv_other_order_missing_columns_degrees(motion):
    text = arkit_csv_text(motion.slice(0, 30), units="degrees")
    rows = [r.split(",") for r in text.splitlines()]
    perm = [0, 1] + list(range(len(rows[0]) - 1, 1, -1))       # columns reversed (after the first two)
    drop = {rows[0].index("CheekPuff"), rows[0].index("HeadRoll")}
    shuffled = "\n".join(",".join(r[i] for i in perm if i not in drop) for r in rows)
    back, rep = read_arkit_csv(shuffled, fps=24.0, csv_fps=24.0, units="degrees")
    assert rep["missing_blendshapes"] == ["cheekPuff"] and rep["missing_rotations"] == []
    k = ARKIT52.index("jawOpen")
    assert (back.expression[:, k] - motion.expression[:30, k]).abs().max() < 1e-6
    assert float(back.expression[:, ARKIT52.index("cheekPuff")].abs().max()) == 0.0


@pytest.mark.parametrize("text, csv_fps, arg, words", [
    ("", 0, "path", "empty"),
    ("Timecode,Foo,Bar\n00:00:00:00.000,1,2\n", 0, "path", "none of the 52"),
    ("Timecode,BlendshapeCount,JawOpen\n", 0, "path", "no frames"),
    ("Timecode,BlendshapeCount,JawOpen\nnoon,61,0.5\n", 0, "path", "is not HH:MM:SS:FF"),
    ("Timecode,BlendshapeCount,JawOpen\n00:00:00:00.000,61,abc\n", 60, "path", "not a number"),
    ("Timecode,BlendshapeCount,JawOpen\n00:00:00:00.000,61,0.1\n00:00:00:01.000,61,0.2\n", 0, "csv_fps",
     "under a second"),
    ("BlendshapeCount,JawOpen\n61,0.1\n", 0, "csv_fps", "no Timecode"),
    ("Timecode,BlendshapeCount,JawOpen\n00:00:00:05.000,61,0.1\n00:00:00:01.000,61,0.2\n", 60, "csv_fps",
     "do not increase"),
    ("Timecode,BlendshapeCount,JawOpen\n00:00:00:00.000,61,0.1\n00:00:00:00.400,61,0.2\n", 60, "csv_fps",
     "share a timecode"),
])
def test_csv_bad_files(text, csv_fps, arg, words):
    with pytest.raises(ExchangeError) as e:
        read_arkit_csv(text if text else "\n", fps=24.0, csv_fps=csv_fps)
    assert e.value.arg == arg and words in e.value.message and e.value.fix, e.value.message


def test_bvh_round_trip_and_positions(body, fit, motion):
    m = motion.slice(0, 12)
    text, notes = bvh_text(body, fit, m)
    assert any("no arms" in n for n in notes)
    parsed = parse_bvh(text)
    assert parsed.joints[0] == "pelvis" and sorted(parsed.joints) == sorted(SMPLX_JOINTS)
    assert abs(parsed.fps - 24.0) < 1e-4 and len(parsed.positions) == 12       # Frame Time: 8 decimals
    back = bvh_motion(parsed, fit)
    err = (back.rotation_matrices() - m.rotation_matrices()).abs().max()
    assert err < 1e-4, err                         # 6-decimal degrees
    # the BVH's joints, posed by forward kinematics of its own offsets and rotations, lie where the
    # body model puts them (the file is the body, in metres)
    P = parsed.parents
    world_R = [None] * len(P)
    world_p = np.zeros((len(P), 3))
    t = 5
    for j in range(len(P)):
        R = parsed.rotations[t, j].numpy()
        if P[j] < 0:
            world_R[j], world_p[j] = R, parsed.positions[t]
        else:
            world_R[j] = world_R[P[j]] @ R
            world_p[j] = world_p[P[j]] + world_R[P[j]] @ parsed.offsets[j]
    args = body.frame_pose_args(fit, m, t, t + 1)
    joints = body.forward(args[0], args[1], args[2], args[3], torch.zeros_like(args[4]))["joints"][0].numpy()
    order = [parsed.joints.index(n) for n in SMPLX_JOINTS]
    assert np.abs(world_p[order] - joints).max() < 1e-4
    height = joints[:, 1].max() - joints[:, 1].min()
    assert 1.0 < height < 2.2, height              # metres: Blender imports it at real size (Scale 1.0)


def test_bvh_bad_input(fit):
    with pytest.raises(ExchangeError) as e:
        parse_bvh("HIERARCHY ROOT hips { OFFSET 0 0 0 CHANNELS 3 Zrotation Xrotation Yrotation } "
                  "MOTION Frames: 2 Frame Time: 0.04 1 2 3")
    assert e.value.arg == "path" and "3 channels" in e.value.message
    ok = parse_bvh("HIERARCHY ROOT hips { OFFSET 0 0 0 CHANNELS 3 Zrotation Xrotation Yrotation } "
                   "MOTION Frames: 1 Frame Time: 0.04 1 2 3")
    with pytest.raises(ExchangeError) as e:
        bvh_motion(ok, fit)
    assert "not of the SMPL-X skeleton" in e.value.message


# ----------------------------------------------------------------------------- through the server
def test_nodes_round_trip_and_bad_csv(comfy):
    """Save ARKit CSV -> Load ARKit CSV through the server gives the motion back; a CSV with
    missing columns is reported, one with no blendshapes refused naming the node and input."""
    out = {"m": {"class_type": "VLOGGER_LoadMotion", "inputs": {"motion_file": "talking_astronaut_motion.npz"}},
           "c": {"class_type": "VLOGGER_SaveARKitCSV",
                 "inputs": {"motion": ["m", 0], "filename_prefix": "exchange_test/rt", "units": "degrees"}}}
    res = comfy.run(out)
    assert res.error is None, res.error
    (written,) = list((comfy.output_dir / "exchange_test").glob("rt_*.csv"))
    rows = written.read_text().splitlines()
    header = rows[0].split(",")
    keep = [i for i, h in enumerate(header) if h not in ("MouthRollLower", "RightEyeRoll")]
    (comfy.input_dir / "exchange_rt.csv").write_text("\n".join(",".join(r.split(",")[i] for i in keep) for r in rows))
    res = comfy.run({"l": {"class_type": "VLOGGER_LoadARKitCSV", "inputs": {
        "csv_file": "exchange_rt.csv", "fps": 24.0, "csv_fps": 0.0, "units": "degrees"}},
        "s": {"class_type": "VLOGGER_SaveMotion", "inputs": {"motion": ["l", 0], "filename_prefix": "exchange_test/back"}}})
    assert res.error is None, res.error
    assert "missing blendshapes (read as 0): mouthRollLower" in res.outputs["l"]["text"][0]
    (saved,) = list((comfy.output_dir / "exchange_test").glob("back_*.npz"))
    back, true = Motion.load_npz(str(saved)), Motion.load_npz(str(TRUE))
    k = ARKIT52.index("jawOpen")
    assert back.num_frames == true.num_frames and (back.expression[:, k] - true.expression[:, k]).abs().max() < 1e-5
    (comfy.input_dir / "exchange_bad.csv").write_text("Timecode,Foo\n00:00:00:00.000,1\n")
    res = comfy.run({"l": {"class_type": "VLOGGER_LoadARKitCSV", "inputs": {
        "csv_file": "exchange_bad.csv", "fps": 24.0, "csv_fps": 0.0, "units": "radians"}},
        "p": {"class_type": "VLOGGER_MotionPreview", "inputs": {"motion": ["l", 0], "width": 400, "height": 256}}})
    msg = res.error["exception_message"]
    assert "[VLOGGER_LoadARKitCSV] input 'csv_file'" in msg and "none of the 52" in msg and "Fix:" in msg
