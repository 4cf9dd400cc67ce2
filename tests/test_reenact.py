"""Reenactment (vlogger_core/motion/reenact.py, nodes/nodes_reenact.py): a driving video -> a motion.

The driving video is the shipped examples/talking_astronaut.mp4, whose true motion ships, so the
recovered motion is checked against a known answer; bad input (faces missing in some frames,
several people, one frame, no face at all, a bad setting) gets the documented behaviour."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from prep_recovery import lip_gap

from vlogger_core.body.detect import Landmarks
from vlogger_core.body.model import load_body
from vlogger_core.body.reference import fit_reference
from vlogger_core.media import iter_frames, read_frames
from vlogger_core.motion.params import ARKIT52, IDENTITY_6D, Motion
from vlogger_core.motion.plot import joint_angles
from vlogger_core.motion.reenact import (
    ReenactError,
    ReenactSettings,
    apply_parts,
    by_rows,
    reenact,
    reenact_file,
    reenact_frames,
    rereference,
    scale_rotations,
    smooth_zero_phase,
    tie_jaw_,
    two_crop_faces,
)
from vlogger_core.motion.synthetic.priors import JAW_MAX_RAD
from vlogger_core.paths import EXAMPLES

VIDEO = EXAMPLES / "talking_astronaut.mp4"
FAST = dict(iters=40)          # fewer fit iterations: these tests check behaviour, the benchmark accuracy


@pytest.fixture(scope="module")
def body():
    return load_body()


@pytest.fixture(scope="module")
def frames():
    return read_frames(VIDEO)[0]


@pytest.fixture(scope="module")
def true_motion():
    return Motion.load_npz(str(EXAMPLES / "talking_astronaut_motion.npz"))


def _r(a, b) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def test_file_streamed_recovers_the_true_motion(body, true_motion):
    res = reenact_file(VIDEO, body, ReenactSettings(window=40, overlap=8))   # 3 windows, crossfaded
    m, rep = res.motion, res.report
    assert m.num_frames == true_motion.num_frames == 96 and m.fps == 24.0 and rep["windows"] == 3
    assert rep["lost_frames"] == 0 and rep["neutral_frame"] == 0 and rep["faces_max"] == 1
    assert torch.isfinite(m.as_vector()).all()
    # relative to the neutral frame: that frame is the photo's own pose and expression
    assert torch.allclose(m.rot6d[0], IDENTITY_6D.expand(len(m.joints), 6), atol=1e-4)
    assert m.expression[0].abs().max() < 1e-5
    t = rereference(true_motion, 0)
    blink = np.mean([_r(t.expression[:, ARKIT52.index(k)], m.expression[:, ARKIT52.index(k)])
                     for k in ("eyeBlinkLeft", "eyeBlinkRight")])
    assert blink > 0.6, blink
    assert _r(t.expression[:, ARKIT52.index("jawOpen")], m.expression[:, ARKIT52.index("jawOpen")]) > 0.5
    # the head's turn (yaw) through the chain pelvis .. head: the fit spreads it over those joints
    chain = ("pelvis", "spine1", "spine2", "spine3", "neck", "head")
    yaw = lambda mo: sum(joint_angles(mo, j)[:, 1] for j in chain)  # noqa: E731
    assert _r(yaw(t), yaw(m)) > 0.8
    # no seam at the windows' borders: the step there is like the steps elsewhere
    steps = (m.as_vector()[1:] - m.as_vector()[:-1]).abs().sum(1)
    assert steps[[31, 32, 63, 64]].max() < 3 * steps.median() + 1e-3, steps
    # the mouth (benchmarks/reenact.py's mouth_r here): the photo's lip gap posed by the recovered
    # motion follows the one posed by the true motion (measured 0.83; 0.74 before the two-crop
    # face, the weaker expression prior and the tied jaw)
    photo = torch.from_numpy(np.asarray(Image.open(EXAMPLES / "astronaut.png").convert("RGB"), np.float32) / 255)
    pfit = fit_reference(photo, body)
    assert _r(lip_gap(body, pfit, t), lip_gap(body, pfit, m)) > 0.79
    # the jaw carried as the pack's motions carry it: pitch = JAW_MAX_RAD x jawOpen in every frame
    pitch = joint_angles(m, "jaw")[:, 0]
    assert np.allclose(pitch, JAW_MAX_RAD * m.expression[:, ARKIT52.index("jawOpen")].numpy(), atol=1e-4)


def test_iter_frames_streams_the_same_frames(frames):
    chunks = list(iter_frames(VIDEO, None, 40))
    assert [len(c) for c in chunks] == [40, 40, 16]
    assert np.array_equal(np.concatenate(chunks), frames)
    half = list(iter_frames(VIDEO, 12.0, 1000, long_side=128))
    assert half[0].shape == (48, 128, 128, 3)


def test_windows_are_pulled_lazily(body, frames):
    """Memory stays flat: a window is fitted before the source has given more than it needs."""
    given, seen = [0], []

    def source():
        for a in range(0, 48, 8):
            given[0] += 8
            yield frames[a:a + 8]

    res = reenact(source(), 24.0, body, ReenactSettings(window=16, overlap=4, **FAST), 48,
                  progress=lambda d, t: seen.append((d, given[0])))
    assert res.motion.num_frames == 48 and res.report["windows"] == 4
    assert seen[0][1] <= 16 and seen[0][0] == 12, seen       # 16 frames decoded when the first came out


def test_missing_faces_interpolated_and_reported(body, frames):
    f = frames[:40].copy()
    f[10:16] = 128                                 # no face in frames 10..15
    res = reenact_frames(f, 24.0, body, ReenactSettings(**FAST))
    rep = res.report
    assert rep["lost_frames"] == 6 and rep["lost_ranges"] == [[10, 15]]
    assert any("no face in 6 of 40 frames" in n for n in rep["notes"])
    x = res.motion.as_vector()
    assert torch.isfinite(x).all()
    # the lost frames lie between their neighbours (interpolated), not at a prior's rest value
    k = ARKIT52.index("jawOpen")
    lo, hi = sorted((float(x[9, k]), float(x[16, k])))
    assert lo - 0.05 <= float(x[12, k]) <= hi + 0.05


def test_several_people_follow_the_largest(body, frames):
    import cv2

    heads = frames[:16, 10:170, 30:190]          # two people: the driver's head large and small
    canvas = np.full((16, 256, 256, 3), 200, np.uint8)
    canvas[:, :150, :150] = np.stack([cv2.resize(f, (150, 150)) for f in heads])
    canvas[:, 156:, 156:] = np.stack([cv2.resize(f, (100, 100)) for f in heads[::-1]])   # other motion
    big = canvas.copy()
    big[:, 150:, 150:] = 200
    res = reenact_frames(canvas, 24.0, body, ReenactSettings(**FAST))
    alone = reenact_frames(big, 24.0, body, ReenactSettings(**FAST))
    assert res.report["faces_max"] == 2 and any("largest face" in n for n in res.report["notes"])
    k = ARKIT52.index("jawOpen")
    assert _r(res.motion.expression[:, k], alone.motion.expression[:, k]) > 0.8


def test_one_frame_and_no_face(body, frames):
    one = reenact_frames(frames[:1], 24.0, body, ReenactSettings(**FAST)).motion
    assert one.num_frames == 1 and one.expression.abs().max() < 1e-5
    with pytest.raises(ReenactError) as e:
        reenact_frames(np.full((3, 64, 64, 3), 90, np.uint8), 24.0, body, ReenactSettings(**FAST))
    assert e.value.arg == "frames" and "no face" in e.value.message
    for bad in (dict(parts="arms"), dict(face_strength=-1.0), dict(smoothing=float("nan")),
                dict(neutral_frame=-2)):
        with pytest.raises(ReenactError) as e:
            reenact_frames(frames[:2], 24.0, body, ReenactSettings(**bad))
        assert e.value.arg == next(iter(bad)) and e.value.fix
    with pytest.raises(ReenactError) as e:
        reenact_frames(frames[:2], 0.0, body)
    assert e.value.arg == "fps"


def test_parts_strength_and_zero_phase_smoothing():
    g = torch.Generator().manual_seed(0)
    m = Motion.neutral(10, 24.0)
    m.expression = torch.rand(10, 52, generator=g)
    aa = torch.randn(10, len(m.joints), 3, generator=g) * 0.2
    from vlogger_core.motion.params import axis_angle_to_matrix, matrix_to_rot6d

    m.rot6d = matrix_to_rot6d(axis_angle_to_matrix(aa))
    angle = lambda mo, j: joint_angles(mo, j)  # noqa: E731
    face = apply_parts(m, ReenactSettings(parts="face", face_strength=0.5))
    assert np.abs(angle(face, "head")).max() < 1e-5 and np.abs(angle(face, "left_elbow")).max() < 1e-5
    assert np.allclose(angle(face, "jaw"), 0.5 * angle(m, "jaw"), atol=1e-4)
    assert torch.allclose(face.expression, 0.5 * m.expression)
    head = apply_parts(m, ReenactSettings(parts="face+head", head_strength=2.0))
    assert np.allclose(angle(head, "head"), 2 * angle(m, "head"), atol=1e-3)
    assert np.abs(angle(head, "left_elbow")).max() < 1e-5
    full = apply_parts(m, ReenactSettings(body_strength=0.0))
    assert np.abs(angle(full, "left_elbow")).max() < 1e-5 and np.allclose(angle(full, "head"), angle(m, "head"), atol=1e-4)
    assert torch.allclose(scale_rotations(m.rot6d, 1.0), m.rot6d)
    # zero phase: a peak stays where it was (no lag) and the filter is symmetric
    x = torch.zeros(41, 2)
    x[20] = 1.0
    y = smooth_zero_phase(x, 2.0)
    assert int(torch.argmax(y[:, 0])) == 20 and torch.allclose(y[:20].flip(0), y[21:], atol=1e-6)
    assert abs(float(y[:, 0].sum()) - 1.0) < 1e-4
    # re-referencing is exact: relative to frame 3, frame 3 is the identity and the rest follows
    r = rereference(m, 3)
    assert torch.allclose(r.rot6d[3], IDENTITY_6D.expand(len(m.joints), 6), atol=1e-5)
    R = m.rotation_matrices()
    assert torch.allclose(R[3][None] @ r.rotation_matrices(), R, atol=1e-5)


# ----------------------------------------------------------------------------- through the server
def test_node_images_input_face_only(comfy):
    prompt = {
        "b": {"class_type": "VLOGGER_BodyModelLoader", "inputs": {"body": "anny_smplx"}},
        "v": {"class_type": "LoadVideo", "inputs": {"file": "talking_astronaut.mp4"}},
        "c": {"class_type": "GetVideoComponents", "inputs": {"video": ["v", 0]}},
        "r": {"class_type": "VLOGGER_Reenact", "inputs": {
            "body": ["b", 0], "images": ["c", 0], "fps": ["c", 2], "parts": "face", "face_strength": 1.0,
            "head_strength": 1.0, "body_strength": 1.0, "neutral_frame": 0, "smoothing": 0.5}},
        "s": {"class_type": "VLOGGER_SaveMotion", "inputs": {"motion": ["r", 0], "filename_prefix": "reenact/face"}},
    }
    res = comfy.run(prompt)
    assert res.error is None, res.error
    text = " ".join(res.outputs["r"]["text"])
    assert "96 frames at 24 fps" in text and "lost 0" in text
    (saved,) = list((comfy.output_dir / "reenact").glob("face_*.npz"))
    m = Motion.load_npz(str(saved))
    assert m.num_frames == 96 and np.abs(joint_angles(m, "head")).max() < 1e-5
    assert float(m.expression.abs().max()) > 0.1 and np.abs(joint_angles(m, "jaw")).max() > 0.01


def test_node_bad_inputs(comfy):
    base = {"b": {"class_type": "VLOGGER_BodyModelLoader", "inputs": {"body": "anny_smplx"}}}
    node = {"class_type": "VLOGGER_Reenact", "inputs": {
        "body": ["b", 0], "fps": 24.0, "parts": "face", "face_strength": 1.0, "head_strength": 1.0,
        "body_strength": 1.0, "neutral_frame": 0, "smoothing": 1.0}}
    res = comfy.run({**base, "r": node})
    assert res.error is not None
    msg = res.error["exception_message"]
    assert "[VLOGGER_Reenact] input 'video'" in msg and "Fix:" in msg
    blank = {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 2, "color": 0}}
    res = comfy.run({**base, "e": blank, "r": {**node, "inputs": {**node["inputs"], "images": ["e", 0]}}})
    msg = res.error["exception_message"]
    assert "[VLOGGER_Reenact] input 'images'" in msg and "no face" in msg and "Fix:" in msg


# ----------------------------------------------------------------------------- combining motions
def test_combine_parts_and_seams(true_motion):
    from vlogger_core.motion.combine import Source, combine_motions, part_of, ramp

    face = true_motion
    g = torch.Generator().manual_seed(3)
    other = Motion.neutral(48, 12.0)                    # another rate: resampled to the face's 24 fps
    from vlogger_core.motion.params import axis_angle_to_matrix, matrix_to_rot6d

    other.rot6d = matrix_to_rot6d(axis_angle_to_matrix(torch.randn(48, len(other.joints), 3, generator=g) * 0.3))
    out = combine_motions(face, head=Source(other, 20), gestures=Source(other, 0), crossfade=4)
    assert out.num_frames == face.num_frames and torch.equal(out.expression, face.expression)
    R, Rf = out.rotation_matrices(), face.rotation_matrices()
    from vlogger_core.motion.resample import resample_motion

    Ro = resample_motion(other, 24.0).rotation_matrices()          # 96 frames at 24 fps
    for k, j in enumerate(out.joints):
        p = part_of(j)
        if p == "face":
            assert torch.allclose(R[:, k], Rf[:, k], atol=1e-5), j
        elif p == "head":
            assert torch.allclose(R[:20, k], Rf[:20, k], atol=1e-5), j            # before its start
            assert torch.allclose(R[25:, k], Ro[5:76, k], atol=1e-4), j           # inside, past the fade
        else:
            assert torch.allclose(R[:, k], Ro[:96, k], atol=1e-4), j              # covers it all: no fade
    w = ramp(96, 20, 96, 4)
    assert w[19] == 0 and 0 < w[20] < w[21] < w[23] < 1 and w[24] == 1 and w[-1] == 1
    # the seam is gradual: the head's steps across it are no bigger than the cut's
    k = out.joints.index("head")
    cut = combine_motions(face, head=Source(other, 20), crossfade=0).rotation_matrices()[:, k]
    step = lambda x: (x[1:] - x[:-1]).abs().amax((-1, -2))  # noqa: E731
    assert step(R[:, k])[18:25].max() < step(cut)[18:25].max()
    with pytest.raises(Exception) as e:
        combine_motions(face, head=Source(other, 500))
    assert getattr(e.value, "arg", None) == "head"


# ----------------------------------------------------------------------------- keyframed edits
def test_edits_change_their_time_range_only(true_motion):
    import json

    from vlogger_core.motion.edits import EditError, apply_edits

    m = true_motion
    edits = {"version": 1, "tracks": {"head_yaw": [[1.0, 0.0], [1.5, 30.0], [2.0, 0.0]],
                                      "jawOpen": [[3.0, 0.0], [3.2, 0.4], [3.4, 0.0]]},
             "blinks": [{"t": 11.5 / 24, "action": "add"}], "mute": [[3.1, 3.3]]}
    out = apply_edits(m, json.dumps(edits))
    assert torch.equal(apply_edits(m, edits).as_vector(), out.as_vector())                        # dict or JSON text: the same
    k = m.joints.index("head")
    d = (out.rotation_matrices()[:, k] - m.rotation_matrices()[:, k]).abs().amax((-1, -2))
    inside = slice(24, 48)                                                # frames with centres in 1..2 s
    assert float(d[36]) > 0.3 and float(d[:24].max()) < 1e-6 and float(d[48:].max()) < 1e-6
    assert float(d[inside].max()) == float(d.max())
    other = [j for j in range(len(m.joints)) if j != k]
    assert torch.allclose(out.rot6d[:, other], m.rot6d[:, other])
    jaw = ARKIT52.index("jawOpen")
    dj = (out.expression[:, jaw] - m.expression[:, jaw]).abs()
    assert float(dj[73]) > 0.1 and float(dj[:72].max()) == 0 and float(dj[82:].max()) == 0
    assert float(dj[75:79].max()) == 0                                    # muted 3.1..3.3 s
    b = ARKIT52.index("eyeBlinkLeft")
    assert float(out.expression[11, b]) == 1.0 and float(out.expression[:, b].min()) >= 0
    assert torch.allclose(apply_edits(m, '{"version": 1}').expression, m.expression.clamp(0, 1))
    for bad in ("{", '{"tracks": {"nose": [[0, 1]]}}', '{"tracks": {"smile": [[1, 0], [0.5, 1]]}}',
                '{"blinks": [{"t": 1}]}', '{"mute": [[2, 1]]}'):
        with pytest.raises(EditError) as e:
            apply_edits(m, bad)
        assert e.value.arg == "edits" and e.value.fix


def test_two_crop_faces_average_where_they_agree():
    g = np.random.default_rng(0)
    tracked = g.uniform(100, 160, (4, 478, 2)).astype(np.float32)    # a face about 60 px tall
    photo = tracked + 1.0                                             # the photo-mode mesh 1 px off
    photo[1] += 40.0                                                  # another face (disagrees)
    photo[2] = np.nan                                                 # none found in photo mode
    tracked[3] = np.nan                                               # none found while tracking
    pose, hands = np.zeros((4, 33, 3), np.float32), {"left": np.zeros((4, 21, 2), np.float32)}
    out = two_crop_faces(Landmarks(tracked, pose, hands), Landmarks(photo, pose, hands))
    assert np.allclose(out.face[0], tracked[0] + 0.5)                 # averaged
    assert np.array_equal(out.face[1], tracked[1]) and np.array_equal(out.face[2], tracked[2])
    assert np.isnan(out.face[3]).all()                                # still no face there
    assert out.pose is pose and out.hands is hands                    # body and hands: the tracked ones


def test_tie_jaw_keeps_the_opening_in_the_packs_convention():
    from vlogger_core.motion.params import axis_angle_to_matrix, matrix_to_rot6d

    m = Motion.neutral(3, 24.0)
    k, jo = m.joints.index("jaw"), ARKIT52.index("jawOpen")
    aa = torch.tensor([[0.16, 0.02, -0.01], [0.0, 0.0, 0.0], [-0.05, 0.0, 0.03]])    # pitch, yaw, roll
    m.rot6d[:, k] = matrix_to_rot6d(axis_angle_to_matrix(aa))
    m.expression[:, jo] = torch.tensor([0.0, 0.4, 0.1])
    opening = m.expression[:, jo] + aa[:, 0] / JAW_MAX_RAD                          # [0.5, 0.4, -0.056]
    tie_jaw_(m)
    got = joint_angles(m, "jaw")
    assert torch.allclose(m.expression[:, jo], opening / 2, atol=1e-5)
    assert np.allclose(got[:, 0], JAW_MAX_RAD * (opening / 2).numpy(), atol=1e-5)
    assert np.allclose(got[:, 1:], aa[:, 1:].numpy(), atol=1e-4)                    # other axes as they were
    assert m.expression[:, ARKIT52.index("eyeBlinkLeft")].abs().max() == 0           # other channels untouched


def test_long_motion_steps_work_in_slices():
    """smooth_zero_phase and the rotations' steps go through a long motion in slices (flat memory):
    the same result as all at once."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, 40, generator=g)
    whole = smooth_zero_phase(x, 1.5, block=1000)
    assert torch.allclose(smooth_zero_phase(x, 1.5, block=7), whole, atol=1e-6)
    ref = torch.nn.functional.conv1d(torch.nn.functional.pad(x.T[:, None], (5, 5), mode="reflect"),
                                     (lambda k: (k / k.sum())[None, None])(
                                         torch.exp(-0.5 * (torch.arange(-5, 6.0) / 1.5) ** 2)))[:, 0].T
    assert torch.allclose(whole, ref, atol=1e-5)
    assert torch.equal(by_rows(lambda r: r * 2, x, rows=64), x * 2)
    from vlogger_core.motion.params import axis_angle_to_matrix, matrix_to_rot6d

    m = Motion.neutral(300, 24.0)
    m.rot6d = matrix_to_rot6d(axis_angle_to_matrix(torch.randn(300, len(m.joints), 3, generator=g) * 0.3))
    r = rereference(m, 7)
    R = m.rotation_matrices()
    assert torch.allclose(r.rotation_matrices(), R[7].transpose(-1, -2)[None] @ R, atol=1e-5)
