"""The body-fitting engine (vlogger_core/body/fit.py) and the detector module's rules
(vlogger_core/body/detect.py), on synthetic landmarks of a posed body (no mediapipe needed): the
photo fit, the clip fit and per-frame tracking each reduce the reprojection error from where they
start; the hand-side rule; the mediapipe -> target conversion."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vlogger_core.body import fit as bf
from vlogger_core.body.camera import PerspectiveCamera
from vlogger_core.body.detect import (
    HAND_WEIGHT,
    HIP_WEIGHT,
    MP_HAND_JOINTS,
    MP_POSE_JOINTS,
    MP_STATIC,
    STABLE_WEIGHT,
    Landmarks,
    hand_side,
)
from vlogger_core.body.model import load_body
from vlogger_core.motion.params import (
    ARKIT52,
    SMPLX_INDEX,
    axis_angle_to_matrix,
    matrix_to_axis_angle,
)

SIZE, FOV, T = 512, 45.0, 8


@pytest.fixture(scope="module")
def body():
    return load_body()


@pytest.fixture(scope="module")
def scene(body):
    """T frames of a posed body (head turning and nodding, jaw opening, a smile, drifting
    sideways) seen through a 45 degree camera, as mediapipe-layout Landmarks."""
    cam = PerspectiveCamera(SIZE, SIZE, FOV)
    rest = matrix_to_axis_angle(bf.rest_fit_pose(body))
    k = torch.arange(T, dtype=torch.float32)
    aa = rest[None].repeat(T, 1, 1)
    aa[:, SMPLX_INDEX["head"]] = torch.stack([0.08 * torch.sin(k), 0.2 * torch.sin(0.7 * k), 0 * k], -1)
    aa[:, SMPLX_INDEX["neck"]] = torch.stack([0.05 * torch.cos(k), 0 * k, 0.04 * torch.sin(k)], -1)
    aa[:, SMPLX_INDEX["jaw"]] = torch.stack([0.05 + 0.15 * k / T, 0 * k, 0 * k], -1)
    expr = torch.zeros(T, body.num_expression)
    expr[:, ARKIT52.index("jawOpen")] = 0.6 * k / T
    expr[:, ARKIT52.index("mouthSmileLeft")] = expr[:, ARKIT52.index("mouthSmileRight")] = 0.4
    truth = SimpleNamespace(betas=torch.zeros(T, body.num_betas),
                            global_orient=torch.tensor([[0.0, 0.2, 0.0]]).repeat(T, 1),
                            transl=torch.tensor([0.03, -0.45, -1.9]) + torch.stack([0.01 * k, 0 * k, 0 * k], -1),
                            poses=axis_angle_to_matrix(aa), expression=expr)
    with torch.no_grad():
        out = body.forward(truth.betas, truth.global_orient, truth.transl, truth.poses, expr)
    lm = cam.project(out["landmarks"])[0].numpy()
    jn = cam.project(out["joints"])[0].numpy()
    verts = cam.project(out["vertices"])[0].numpy()
    face = np.full((T, 478, 2), np.nan, np.float32)
    face[:, MP_STATIC] = lm
    for v, mp_index in bf.eyelid_vertices(body):
        face[:, mp_index] = verts[:, v]
    pose = np.full((T, 33, 3), np.nan, np.float32)
    for i, name in MP_POSE_JOINTS.items():
        pose[:, i, :2], pose[:, i, 2] = jn[:, SMPLX_INDEX[name]], 0.99
    hands = {s: np.full((T, 21, 2), np.nan, np.float32) for s in ("left", "right")}
    return cam, truth, Landmarks(face, pose, hands), lm


def _reprojection_px(body, cam, frames: bf.BodyFrames, lm: np.ndarray) -> float:
    """Mean pixel distance of the body's face landmarks posed by `frames` (P=1) from `lm`."""
    with torch.no_grad():
        n = frames.poses.shape[1]
        out = body.forward(frames.betas.expand(n, -1), frames.global_orient[0], frames.transl[0],
                           frames.poses[0], frames.expression[0])
    return float(np.linalg.norm(cam.project(out["landmarks"])[0].numpy() - lm, axis=-1).mean())


def test_photo_fit_reduces_the_reprojection_error(body, scene):
    cam, _, lms, lm = scene
    targets = bf.Targets.from_frames([lms.targets(3)])
    assert int(targets.body_joints()[0]) == len(MP_POSE_JOINTS)
    start = bf.fit_image(body, cam, targets, True, (0, 0)).error_px[0, 0].mean()
    _, fit, scores = bf.fit_photo(body, SIZE, SIZE, targets, FOV)
    assert scores is None                                    # the FOV was given: no scan
    end = fit.error_px[0, 0].mean()
    assert end < 1.0 and end < 0.25 * start, (float(start), float(end))
    # batched over focal lengths: each member is its own fit, the camera's own focal is member 1
    batch = bf.fit_image(body, cam, targets, True, (40, 100), focals=[0.7 * cam.focal, cam.focal])
    assert batch.loss.shape == (2,) and float(batch.loss[1]) < float(batch.loss[0])
    assert float(batch.error_px[1, 0].mean()) == pytest.approx(float(end), abs=0.2)


def test_clip_fit_reduces_the_reprojection_error(body, scene):
    cam, truth, lms, lm = scene
    _, start, _ = bf.fit_clip(body, lms, SIZE, SIZE, iters=0, fov=FOV)     # the warm start, every frame
    cam_fit, fit, info = bf.fit_clip(body, lms, SIZE, SIZE, iters=80, fov=FOV)
    assert cam_fit.fov_diag_deg == FOV and info["anchor_frame"] == T // 2
    before = float(start.error_px[0].mean())
    after = float(fit.error_px[0].mean())
    assert after < 1.5 and after < 0.2 * before, (before, after)        # measured 9.5 -> 0.6
    assert fit.body.betas.shape == (1, body.num_betas) and fit.body.poses.shape == (1, T, 55, 3, 3)
    assert _reprojection_px(body, cam, fit.body, lm) == pytest.approx(after, abs=1e-3)
    # the mouth opens over the clip as it did (inner-lip gap, iBUG 62 / 66)
    gap = lambda p: p[:, 66 - 17, 1] - p[:, 62 - 17, 1]  # noqa: E731
    fitted, true = gap(fit.landmarks_px[0].numpy()), gap(lm)
    assert np.corrcoef(fitted, true)[0, 1] > 0.9


def test_tracking_reduces_the_reprojection_error(body, scene):
    """From frame 0's true body (camera, shape and orientation fixed), in chunks of 3 frames."""
    cam, truth, lms, lm = scene
    fit0 = SimpleNamespace(camera=cam, betas=truth.betas[0], global_orient=truth.global_orient[0],
                           transl=truth.transl[0], reference_pose=truth.poses[0], expression=truth.expression[0])
    face = lms.face[:, MP_STATIC]
    face[5] = np.nan                                          # a frame without a face
    before = _reprojection_px(body, cam, bf.track_frames(body, fit0, face, iters=0, chunk=3), lm)
    tracked = bf.track_frames(body, fit0, face, iters=60, chunk=3)
    assert tracked.transl.shape == (1, T, 3) and tracked.expression.shape == (1, T, body.num_expression)
    assert torch.equal(tracked.global_orient[0], truth.global_orient[:1].expand(T, 3))    # fixed
    after = _reprojection_px(body, cam, tracked, lm)
    assert math.isfinite(after) and after < 2.5 and after < 0.2 * before, (before, after)   # 18.6 -> 1.2


def test_hand_side_is_the_nearer_pose_wrist():
    pose = np.full((33, 3), np.nan, np.float32)
    pose[15, :2], pose[16, :2] = (300.0, 200.0), (100.0, 200.0)   # person's left wrist on the image's right
    # mediapipe's label is ignored when the pose is known
    assert hand_side(np.array([290.0, 215.0]), pose, "Left") == "left"
    assert hand_side(np.array([110.0, 190.0]), pose, "Left") == "right"
    assert hand_side(np.array([120.0, 230.0]), pose, "Right") == "right"
    # without a pose, the label names the mirrored hand
    assert hand_side(np.array([110.0, 190.0]), None, "Left") == "right"
    assert hand_side(np.array([110.0, 190.0]), None, "Right") == "left"


def test_mediapipe_targets(scene):
    _, _, lms, lm = scene
    hands = {"left": np.full((T, 21, 2), np.nan, np.float32), "right": np.full((T, 21, 2), np.nan, np.float32)}
    hands["left"][2] = np.arange(42, dtype=np.float32).reshape(21, 2)
    pose = lms.pose.copy()
    pose[2, 23, 2] = 0.3                                       # left hip barely seen
    m = Landmarks(lms.face, pose, hands)
    ft, jt = m.targets(2, scale=2.0)
    assert len(ft) == len(MP_STATIC) and ft[30 - 17][2] == STABLE_WEIGHT and ft[0][2] == 1.0
    assert ft[5][:2] == pytest.approx(tuple(2.0 * lm[2, 5]), abs=1e-3)
    assert "left_hip" not in jt and jt["right_hip"][2] == HIP_WEIGHT
    assert jt["left_wrist"] == (0.0, 2.0, 1.0)                 # the hand's wrist replaces the pose's
    assert jt["left_index1"] == (20.0, 22.0, HAND_WEIGHT) and len([k for k in jt if k.startswith("left_")]) == \
        len(MP_HAND_JOINTS) + 2                                # + shoulder, elbow
    assert "right_index1" not in jt and m.targets(2, 1.0) is not None
    gone = Landmarks(np.full_like(lms.face, np.nan), pose, hands)
    assert gone.targets(2) is None
    t = bf.Targets.from_frames([m.targets(2), None])
    assert t.frame_ok().tolist() == [True, False] and t.hands() == ["left"]
    assert int(t.body_joints()[0]) == 7                        # 8 pose joints less the hidden hip
