"""Reference fit on the shipped photo (examples/astronaut.png, NASA public domain) with every
detector; geometry (the fitted head projects into the detected face); overrides; bad images."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vlogger_core.body import model as bm
from vlogger_core.body import reference as rf
from vlogger_core.motion.params import SMPLX_INDEX
from vlogger_core.paths import EXAMPLES


@pytest.fixture(scope="module")
def body():
    return bm.load_body(bm.DEFAULT_BODY, "cpu")


@pytest.fixture(scope="module")
def photo():
    return np.asarray(Image.open(EXAMPLES / "astronaut.png").convert("RGB"))


@pytest.fixture(scope="module")
def fits(body, photo):
    out = {"opencv": rf.fit_reference(photo, body, "opencv")}
    if rf.mediapipe_available():
        out["mediapipe"] = rf.fit_reference(photo, body, "mediapipe")
    return out


def _face_size(fit):
    pts = np.array(fit.info["detected_landmarks"])
    return float(np.ptp(pts[:, 0]))


def test_opencv_fit_lands_on_the_face(body, fits, photo):
    fit = fits["opencv"]
    assert fit.detector == "opencv" and fit.info["face_box"] is not None
    x, y, w, h = fit.info["face_box"]
    p = rf.project_fit(fit, body)
    # the fitted body's landmarks land near the box-derived targets
    assert fit.info["landmark_error_px"] < 0.08 * w
    # the head joint projects inside the detected face box, the pelvis far below it
    hx, hy = p["joints"][SMPLX_INDEX["head"]].tolist()
    assert x < hx < x + w and y < hy < y + h + 0.5 * h
    assert p["joints"][SMPLX_INDEX["pelvis"], 1] > y + 2 * h
    assert fit.camera.width == photo.shape[1] and fit.camera.height == photo.shape[0]
    assert fit.reference_pose.shape == (55, 3, 3) and fit.expression.shape == (52,)


def test_mediapipe_fit_matches_detected_landmarks(body, fits):
    if "mediapipe" not in fits:
        pytest.skip("mediapipe (optional extra) not installed")
    fit = fits["mediapipe"]
    assert fit.detector == "mediapipe"
    face = _face_size(fit)
    p = rf.project_fit(fit, body)
    det = np.array(fit.info["detected_landmarks"])
    got = p["landmarks"].numpy()[np.array(fit.info["landmarks_used"]) - 17]
    err = np.linalg.norm(got - det, axis=1)
    assert err.mean() < 0.05 * face and np.median(err) < 0.04 * face
    # shoulders (if detected) are matched within a fraction of the shoulder width
    dj = fit.info["detected_joints"]
    if "left_shoulder" in dj and "right_shoulder" in dj:
        width = abs(dj["left_shoulder"][0] - dj["right_shoulder"][0])
        for s in ("left_shoulder", "right_shoulder"):
            e = np.linalg.norm(p["joints"][SMPLX_INDEX[s]].numpy() - np.array(dj[s]))
            assert e < 0.25 * width, s
    # the person's left shoulder is on the image's right (they face the camera)
    assert p["joints"][SMPLX_INDEX["left_shoulder"], 0] > p["joints"][SMPLX_INDEX["right_shoulder"], 0]


def test_mediapipe_fit_opens_the_mouth_as_the_photo(body, fits):
    """The photo smiles with her teeth showing (lips apart): the fitted inner lips are apart too
    (measured 3.5 of 6.8 px; 0.3 px when the inner-lip points sat on the lips' seam)."""
    if "mediapipe" not in fits:
        pytest.skip("mediapipe (optional extra) not installed")
    fit = fits["mediapipe"]
    used = list(fit.info["landmarks_used"])
    det = np.array(fit.info["detected_landmarks"])
    got = rf.project_fit(fit, body)["landmarks"].numpy()
    det_gap = det[used.index(66), 1] - det[used.index(62), 1]
    fit_gap = got[66 - 17, 1] - got[62 - 17, 1]
    assert det_gap > 4 and fit_gap > 0.4 * det_gap, (det_gap, fit_gap)


def test_detectors_agree(body, fits):
    if "mediapipe" not in fits:
        pytest.skip("mediapipe (optional extra) not installed")
    a = rf.project_fit(fits["opencv"], body)["landmarks"].numpy()
    b = rf.project_fit(fits["mediapipe"], body)["landmarks"].numpy()
    face = _face_size(fits["mediapipe"])
    for i in (36, 45, 30, 48, 54):     # eye corners, nose tip, mouth corners
        assert np.linalg.norm(a[i - 17] - b[i - 17]) < 0.2 * face, i


def test_manual_and_overrides(body, photo):
    base = rf.fit_reference(photo, body, "manual")
    assert base.detector == "manual"
    p0 = rf.project_fit(base, body)
    head0 = p0["joints"][SMPLX_INDEX["head"]]
    assert abs(head0[0].item() - photo.shape[1] / 2) < 0.1 * photo.shape[1]   # centred
    moved = rf.fit_reference(photo, body, "manual",
                             rf.FitOverrides(scale=1.5, offset_x=0.1, offset_y=-0.05))
    p1 = rf.project_fit(moved, body)
    f0, f1 = p0["landmarks"].mean(0), p1["landmarks"].mean(0)      # the face's centre
    assert f1[0] - f0[0] == pytest.approx(0.1 * photo.shape[1], abs=2.0)
    assert f1[1] - f0[1] == pytest.approx(-0.05 * photo.shape[0], abs=2.0)
    span0 = np.ptp(p0["landmarks"].numpy()[:, 0])
    span1 = np.ptp(p1["landmarks"].numpy()[:, 0])
    assert span1 / span0 == pytest.approx(1.5, rel=0.05)
    turned = rf.fit_reference(photo, body, "manual", rf.FitOverrides(rotation=30.0))
    p2 = rf.project_fit(turned, body)
    # turning towards its left moves the nose towards the image's right
    assert p2["landmarks"][30 - 17, 0] > p0["landmarks"][30 - 17, 0] + 3
    wide = rf.fit_reference(photo, body, "manual", rf.FitOverrides(fov=70.0))
    assert wide.camera.fov_diag_deg == 70.0


def test_overlay(body, fits, photo):
    fit = fits.get("mediapipe", fits["opencv"])
    ov = rf.draw_fit_overlay(fit, body)
    assert ov.shape == (photo.shape[0], photo.shape[1], 3) and ov.dtype == torch.float32
    diff = (ov - torch.from_numpy(np.array(photo)).float() / 255).abs().sum(-1)
    x, y, w, h = (fit.info.get("face_box") or [200, 80, 90, 90])
    assert diff[int(y):int(y + h), int(x):int(x + w)].mean() > 0.1   # the face is drawn on
    assert diff[:20, :20].mean() < 0.02                                # the corner is not


def test_image_formats(body, photo):
    gray = photo.mean(-1).astype(np.uint8)
    fit = rf.fit_reference(gray, body, "opencv")
    assert fit.image.shape == (512, 512, 3)
    rgba = np.concatenate([photo, np.full(photo.shape[:2] + (1,), 255, np.uint8)], -1)
    fit = rf.fit_reference(torch.from_numpy(rgba).float()[None] / 255, body, "opencv")
    assert fit.image.shape == (512, 512, 3) and fit.detector == "opencv"
    big = np.asarray(Image.fromarray(photo).resize((4000, 4000)))    # downscaled for detection
    fit = rf.fit_reference(big, body, "opencv")
    assert fit.info["detection_scale"] > 3 and fit.camera.width == 4000
    x, y, w, h = fit.info["face_box"]
    hx, hy = rf.project_fit(fit, body)["joints"][SMPLX_INDEX["head"]].tolist()
    assert x < hx < x + w and y < hy < y + 1.5 * h


def test_bad_images(body):
    with pytest.raises(rf.FitInputError, match="1x1"):
        rf.fit_reference(np.zeros((1, 1, 3), np.uint8), body, "opencv")
    with pytest.raises(rf.FitInputError, match="channels"):
        rf.fit_reference(np.zeros((64, 64, 5), np.float32), body, "opencv")
    with pytest.raises(rf.FitInputError, match="batch"):
        rf.fit_reference(torch.zeros(2, 64, 64, 3), body, "opencv")
    blank = np.full((256, 256, 3), 128, np.uint8)                   # no person
    with pytest.raises(rf.FitInputError, match="found no face"):
        rf.fit_reference(blank, body, "opencv")
    fit = rf.fit_reference(blank, body, "auto")                     # documented fallback
    assert fit.detector == "manual" and fit.info["warnings"]
    with pytest.raises(rf.FitInputError, match="detector"):
        rf.fit_reference(blank, body, "yolo")


def test_optimiser_recovers_a_known_placement(body):
    """Landmarks and joints rendered from a known body placement are fitted back: the fit
    reprojects onto them and finds the depth and turn it was rendered with."""
    cam = rf.PerspectiveCamera(640, 480, rf.DEFAULT_FOV)
    true_t = torch.tensor([[0.15, -0.55, -1.8]])
    true_o = torch.tensor([[0.0, 0.25, 0.0]])                       # turned ~14 deg
    pose = rf._rest_fit_pose(body)[None]
    with torch.no_grad():
        out = body.forward(torch.zeros(1, 10), true_o, true_t, pose, torch.zeros(1, 52))
    lm = cam.project(out["landmarks"][0])[0]
    jn = cam.project(out["joints"][0])[0]
    ft = {k: (float(lm[k, 0]), float(lm[k, 1]), 1.0) for k in range(51)}
    jt = {n: (float(jn[SMPLX_INDEX[n], 0]), float(jn[SMPLX_INDEX[n], 1]), 1.0)
          for n in ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow")}
    r = rf._optimise(body, cam, ft, jt, True, (60, 160), "cpu")
    assert r["landmark_error_px"].mean() < 1.0
    assert float(r["transl"][2]) == pytest.approx(-1.8, rel=0.08)
    assert float(r["global_orient"][1]) == pytest.approx(0.25, abs=0.12)


def test_fov_is_estimated_from_perspective(body):
    """Landmarks rendered through 20, 45 and 70 degree (diagonal) cameras at matching distances
    (the same framing): the FOV scan tells them apart."""
    pose = rf._rest_fit_pose(body)[None]
    found = {}
    for true_fov, z in ((20.0, -3.5), (45.0, -1.6), (70.0, -1.0)):
        cam = rf.PerspectiveCamera(512, 512, true_fov)
        with torch.no_grad():
            out = body.forward(torch.zeros(1, 10), torch.tensor([[0.0, 0.2, 0.0]]),
                               torch.tensor([[0.05, -0.45, z]]), pose, torch.zeros(1, 52))
        lm = cam.project(out["landmarks"][0])[0]
        jn = cam.project(out["joints"][0])[0]
        ft = {k: (float(lm[k, 0]), float(lm[k, 1]), 1.0) for k in range(51)}
        jt = {n: (float(jn[SMPLX_INDEX[n], 0]), float(jn[SMPLX_INDEX[n], 1]), 1.0)
              for n in ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow")}
        found[true_fov], _, _ = rf.estimate_fov(body, 512, 512, ft, jt, (40, 100), "cpu")
    # coarse, but ordered and on the right side of the default (45) for narrow / wide lenses
    assert found[20.0] < found[45.0] < found[70.0], found
    assert found[20.0] < 40 and 30 < found[45.0] < 60 and found[70.0] > 55, found


def test_hand_landmarks_fit_the_fingers(body):
    """mediapipe-style hand points (wrist + 15 finger joints) rendered from a body whose right
    hand is curled: with them the fit frees that hand's fingers and reproduces the curl."""
    cam = rf.PerspectiveCamera(512, 512, rf.DEFAULT_FOV)
    pose_aa = rf.matrix_to_axis_angle(rf._rest_fit_pose(body))
    for f in ("index", "middle", "ring", "pinky"):
        for k in (1, 2, 3):
            pose_aa[SMPLX_INDEX[f"right_{f}{k}"]] = torch.tensor([0.0, 0.0, -0.5])
    pose = rf.axis_angle_to_matrix(pose_aa)[None]
    with torch.no_grad():
        out = body.forward(torch.zeros(1, 10), torch.zeros(1, 3), torch.tensor([[0.0, -0.1, -2.2]]),
                           pose, torch.zeros(1, 52))
    lm = cam.project(out["landmarks"][0])[0]
    jn = cam.project(out["joints"][0])[0]
    ft = {k: (float(lm[k, 0]), float(lm[k, 1]), 1.0) for k in range(51)}
    names = ["left_shoulder", "right_shoulder", "left_elbow", "right_elbow"] + \
        [f"right_{j}" for j in rf.MP_HAND_JOINTS.values()]
    jt = {n: (float(jn[SMPLX_INDEX[n], 0]), float(jn[SMPLX_INDEX[n], 1]), 1.0) for n in names}
    with_hand = rf._optimise(body, cam, ft, jt, True, (40, 150), "cpu")
    no_hand = rf._optimise(body, cam, ft, {n: jt[n] for n in names[:4]}, True, (40, 150), "cpu")

    def finger_err(r):
        with torch.no_grad():
            o = body.forward(r["betas"][None], r["global_orient"][None], r["transl"][None],
                             r["pose"][None], r["expression"][None])
        uv = cam.project(o["joints"][0])[0]
        ids = [SMPLX_INDEX[n] for n in names[4:]]
        return float((uv[ids] - jn[ids]).norm(dim=-1).mean())

    assert finger_err(with_hand) < 2.0 < finger_err(no_hand), (finger_err(with_hand), finger_err(no_hand))
    curl = float(rf.matrix_to_axis_angle(with_hand["pose"][SMPLX_INDEX["right_index2"]])[2])
    assert curl < -0.2, curl                      # the fitted finger bends the same way
