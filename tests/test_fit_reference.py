"""Reference fit on the shipped photo (examples/astronaut.png, NASA public domain) with every
detector; geometry (the fitted head projects into the detected face); overrides; bad images."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vlogger_core.body import fit as bf
from vlogger_core.body import model as bm
from vlogger_core.body import reference as rf
from vlogger_core.body.camera import PerspectiveCamera
from vlogger_core.body.detect import MP_HAND_JOINTS, mediapipe_available
from vlogger_core.body.overlay import draw_fit_overlay, project_fit
from vlogger_core.motion.params import (
    SMPLX_INDEX,
    axis_angle_to_matrix,
    matrix_to_axis_angle,
)
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
    if mediapipe_available():
        out["mediapipe"] = rf.fit_reference(photo, body, "mediapipe")
    return out


def _face_size(fit):
    pts = np.array(fit.info["detected_landmarks"])
    return float(np.ptp(pts[:, 0]))


def test_opencv_fit_lands_on_the_face(body, fits, photo):
    fit = fits["opencv"]
    assert fit.detector == "opencv" and fit.info["face_box"] is not None
    x, y, w, h = fit.info["face_box"]
    p = project_fit(fit, body)
    # the fitted body's landmarks land near the box-derived targets
    assert fit.info["landmark_error_px"] < 0.08 * w
    # the head joint projects inside the detected face box, the pelvis far below it
    hx, hy = p["joints"][SMPLX_INDEX["head"]].tolist()
    assert x < hx < x + w and y < hy < y + h + 0.5 * h
    assert p["joints"][SMPLX_INDEX["pelvis"], 1] > y + 2 * h
    assert fit.camera.width == photo.shape[1] and fit.camera.height == photo.shape[0]
    assert fit.reference_pose.shape == (55, 3, 3) and fit.expression.shape == (52,)


@pytest.mark.needs_mediapipe
def test_mediapipe_fit_matches_detected_landmarks(body, fits):
    fit = fits["mediapipe"]
    assert fit.detector == "mediapipe"
    face = _face_size(fit)
    p = project_fit(fit, body)
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


@pytest.mark.needs_mediapipe
def test_mediapipe_fit_opens_the_mouth_as_the_photo(body, fits):
    """The photo smiles with her teeth showing (lips apart): the fitted inner lips are apart too
    (measured 3.5 of 6.8 px; 0.3 px when the inner-lip points sat on the lips' seam)."""
    fit = fits["mediapipe"]
    used = list(fit.info["landmarks_used"])
    det = np.array(fit.info["detected_landmarks"])
    got = project_fit(fit, body)["landmarks"].numpy()
    det_gap = det[used.index(66), 1] - det[used.index(62), 1]
    fit_gap = got[66 - 17, 1] - got[62 - 17, 1]
    assert det_gap > 4 and fit_gap > 0.4 * det_gap, (det_gap, fit_gap)


@pytest.mark.needs_mediapipe
def test_detectors_agree(body, fits):
    a = project_fit(fits["opencv"], body)["landmarks"].numpy()
    b = project_fit(fits["mediapipe"], body)["landmarks"].numpy()
    face = _face_size(fits["mediapipe"])
    for i in (36, 45, 30, 48, 54):     # eye corners, nose tip, mouth corners
        assert np.linalg.norm(a[i - 17] - b[i - 17]) < 0.2 * face, i


def test_manual_and_overrides(body, photo):
    base = rf.fit_reference(photo, body, "manual")
    assert base.detector == "manual"
    p0 = project_fit(base, body)
    head0 = p0["joints"][SMPLX_INDEX["head"]]
    assert abs(head0[0].item() - photo.shape[1] / 2) < 0.1 * photo.shape[1]   # centred
    moved = rf.fit_reference(photo, body, "manual",
                             rf.FitOverrides(scale=1.5, offset_x=0.1, offset_y=-0.05))
    p1 = project_fit(moved, body)
    f0, f1 = p0["landmarks"].mean(0), p1["landmarks"].mean(0)      # the face's centre
    assert f1[0] - f0[0] == pytest.approx(0.1 * photo.shape[1], abs=2.0)
    assert f1[1] - f0[1] == pytest.approx(-0.05 * photo.shape[0], abs=2.0)
    span0 = np.ptp(p0["landmarks"].numpy()[:, 0])
    span1 = np.ptp(p1["landmarks"].numpy()[:, 0])
    assert span1 / span0 == pytest.approx(1.5, rel=0.05)
    turned = rf.fit_reference(photo, body, "manual", rf.FitOverrides(rotation=30.0))
    p2 = project_fit(turned, body)
    # turning towards its left moves the nose towards the image's right
    assert p2["landmarks"][30 - 17, 0] > p0["landmarks"][30 - 17, 0] + 3
    wide = rf.fit_reference(photo, body, "manual", rf.FitOverrides(fov=70.0))
    assert wide.camera.fov_diag_deg == 70.0


def test_overlay(body, fits, photo):
    fit = fits.get("mediapipe", fits["opencv"])
    ov = draw_fit_overlay(fit, body)
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
    hx, hy = project_fit(fit, body)["joints"][SMPLX_INDEX["head"]].tolist()
    assert x < hx < x + w and y < hy < y + 1.5 * h


def test_bad_images(body):
    with pytest.raises(rf.FitInputError, match="1x1") as e:
        rf.fit_reference(np.zeros((1, 1, 3), np.uint8), body, "opencv")
    assert e.value.arg == "image" and e.value.fix
    with pytest.raises(rf.FitInputError, match="channels"):
        rf.fit_reference(np.zeros((64, 64, 5), np.float32), body, "opencv")
    with pytest.raises(rf.FitInputError, match="batch") as e:
        rf.fit_reference(torch.zeros(2, 64, 64, 3), body, "opencv")
    assert e.value.arg == "image" and "ImageFromBatch" in e.value.fix
    blank = np.full((256, 256, 3), 128, np.uint8)                   # no person
    with pytest.raises(rf.FitInputError, match="found no face") as e:
        rf.fit_reference(blank, body, "opencv")
    assert e.value.arg == "detector" and "manual" in e.value.fix
    with pytest.raises(rf.FitInputError, match="no person") as e:    # auto: refused by default
        rf.fit_reference(blank, body, "auto")
    assert e.value.arg == "image" and "no_person" in e.value.fix
    fit = rf.fit_reference(blank, body, "auto", no_person="warn")  # documented fallback, asked for
    assert fit.detector == "manual" and any("no face found" in w for w in fit.info["warnings"])
    with pytest.raises(rf.FitInputError) as e:
        rf.fit_reference(blank, body, "auto", no_person="maybe")
    assert e.value.arg == "no_person"
    for name in ("offset_x", "offset_y", "rotation", "scale", "fov"):  # NaN: named, not a crash
        with pytest.raises(rf.FitInputError, match="finite") as e:
            rf.fit_reference(blank, body, "manual", rf.FitOverrides(**{name: float("nan")}))
        assert e.value.arg == name and e.value.fix
    with pytest.raises(rf.FitInputError, match="detector") as e:
        rf.fit_reference(blank, body, "yolo")
    assert e.value.arg == "detector"
    for over, arg in ((rf.FitOverrides(scale=0.01), "scale"), (rf.FitOverrides(fov=3.0), "fov")):
        with pytest.raises(rf.FitInputError, match=arg) as e:
            rf.fit_reference(blank, body, "manual", over)
        assert e.value.arg == arg and e.value.fix


ARMS = ["left_shoulder", "right_shoulder", "left_elbow", "right_elbow"]


def _rendered_targets(body, cam, orient, transl, pose, joints=ARMS):
    """What a perfect detector finds for the body placed so: (face targets, joint targets, all
    joints in pixels)."""
    with torch.no_grad():
        out = body.forward(torch.zeros(1, 10), orient, transl, pose, torch.zeros(1, 52))
    lm = cam.project(out["landmarks"][0])[0]
    jn = cam.project(out["joints"][0])[0]
    ft = {k: (float(lm[k, 0]), float(lm[k, 1]), 1.0) for k in range(51)}
    jt = {n: (float(jn[SMPLX_INDEX[n], 0]), float(jn[SMPLX_INDEX[n], 1]), 1.0) for n in joints}
    return ft, jt, jn


def test_optimiser_recovers_a_known_placement(body):
    """Landmarks and joints rendered from a known body placement are fitted back: the fit
    reprojects onto them and finds the depth and turn it was rendered with."""
    cam = PerspectiveCamera(640, 480, bf.DEFAULT_FOV)
    true_t = torch.tensor([[0.15, -0.55, -1.8]])
    true_o = torch.tensor([[0.0, 0.25, 0.0]])                       # turned ~14 deg
    ft, jt, _ = _rendered_targets(body, cam, true_o, true_t, bf.rest_fit_pose(body)[None])
    r = bf.fit_image(body, cam, bf.Targets.from_frames([(ft, jt)]), True, (60, 160))
    assert r.error_px[0, 0].mean() < 1.0
    assert float(r.body.transl[0, 0, 2]) == pytest.approx(-1.8, rel=0.08)
    assert float(r.body.global_orient[0, 0, 1]) == pytest.approx(0.25, abs=0.12)


def test_fov_is_estimated_from_perspective(body):
    """Landmarks rendered through 20, 45 and 70 degree (diagonal) cameras at matching distances
    (the same framing): the FOV scan tells them apart."""
    pose = bf.rest_fit_pose(body)[None]
    found = {}
    for true_fov, z in ((20.0, -3.5), (45.0, -1.6), (70.0, -1.0)):
        cam = PerspectiveCamera(512, 512, true_fov)
        ft, jt, _ = _rendered_targets(body, cam, torch.tensor([[0.0, 0.2, 0.0]]),
                                      torch.tensor([[0.05, -0.45, z]]), pose)
        found[true_fov], _, _ = bf.estimate_fov(body, 512, 512, bf.Targets.from_frames([(ft, jt)]), (40, 100))
    # coarse, but ordered and on the right side of the default (45) for narrow / wide lenses
    assert found[20.0] < found[45.0] < found[70.0], found
    assert found[20.0] < 40 and 30 < found[45.0] < 60 and found[70.0] > 55, found


def test_hand_landmarks_fit_the_fingers(body):
    """mediapipe-style hand points (wrist + 15 finger joints) rendered from a body whose right
    hand is curled: with them the fit frees that hand's fingers and reproduces the curl."""
    cam = PerspectiveCamera(512, 512, bf.DEFAULT_FOV)
    pose_aa = matrix_to_axis_angle(bf.rest_fit_pose(body))
    for f in ("index", "middle", "ring", "pinky"):
        for k in (1, 2, 3):
            pose_aa[SMPLX_INDEX[f"right_{f}{k}"]] = torch.tensor([0.0, 0.0, -0.5])
    names = ARMS + [f"right_{j}" for j in MP_HAND_JOINTS.values()]
    ft, jt, jn = _rendered_targets(body, cam, torch.zeros(1, 3), torch.tensor([[0.0, -0.1, -2.2]]),
                                   axis_angle_to_matrix(pose_aa)[None], names)
    with_hand = bf.fit_image(body, cam, bf.Targets.from_frames([(ft, jt)]), True, (40, 150))
    no_hand = bf.fit_image(body, cam, bf.Targets.from_frames([(ft, {n: jt[n] for n in ARMS})]), True, (40, 150))

    def finger_err(r):
        b = r.body
        with torch.no_grad():
            o = body.forward(b.betas, b.global_orient[:, 0], b.transl[:, 0], b.poses[:, 0], b.expression[:, 0])
        uv = cam.project(o["joints"][0])[0]
        ids = [SMPLX_INDEX[n] for n in names[4:]]
        return float((uv[ids] - jn[ids]).norm(dim=-1).mean())

    assert finger_err(with_hand) < 2.0 < finger_err(no_hand), (finger_err(with_hand), finger_err(no_hand))
    curl = float(matrix_to_axis_angle(with_hand.body.poses[0, 0, SMPLX_INDEX["right_index2"]])[2])
    assert curl < -0.2, curl                      # the fitted finger bends the same way


def test_transparent_photo_is_composited_over_the_chosen_colour():
    """A cut-out (transparent around the person): composited over white (the default), the
    photo's border colour ('border': where its edge is opaque, else white) or the colour the
    artist names; a bad colour or a
    mask of another size names its argument."""
    rgb = torch.zeros(64, 64, 3)                            # what hides under the transparency
    rgb[16:48, 16:48] = torch.tensor([0.9, 0.2, 0.1])
    alpha = torch.zeros(64, 64)
    alpha[16:48, 16:48] = 1.0
    out = rf.prepare_image(rgb, alpha, "border")            # transparent edge: white
    assert torch.allclose(out[0, 0], torch.ones(3)) and torch.allclose(out[32, 32], rgb[32, 32])
    out = rf.prepare_image(rgb, alpha, "#20a0ff")
    assert torch.allclose(out[0, 0], torch.tensor([0x20, 0xa0, 0xff]) / 255.0)
    framed = rgb.clone()
    framed[:, :4] = torch.tensor([0.1, 0.5, 0.1])           # an opaque green strip on the edge
    a2 = alpha.clone()
    a2[:, :4] = 1.0
    out = rf.prepare_image(framed, a2, "border")
    assert torch.allclose(rf.prepare_image(framed, a2)[0, 40], torch.ones(3))   # default: white
    assert torch.allclose(out[0, 40], out[10, 2], atol=0.2) and out[0, 40, 1] > out[0, 40, 0]
    rgba = torch.cat([rgb, alpha[..., None]], -1)           # the same from a 4-channel image
    assert torch.allclose(rf.prepare_image(rgba), rf.prepare_image(rgb, alpha))
    with pytest.raises(rf.FitInputError) as e:
        rf.prepare_image(rgb, alpha, "bluish")
    assert e.value.arg == "background" and "#" in e.value.fix
    with pytest.raises(rf.FitInputError) as e:
        rf.prepare_image(rgb, torch.ones(32, 32))
    assert e.value.arg == "alpha"


def test_rgba_photo_through_the_server_keeps_its_alpha(comfy):
    """An RGBA photo through LoadImage: FitReference takes its MASK, composites the transparent
    area over the chosen colour (not black) and hands the opacity on as its 'alpha' MASK."""
    import io as _io

    photo = np.asarray(Image.open(EXAMPLES / "astronaut.png").convert("RGB"))
    alpha = np.full(photo.shape[:2], 255, np.uint8)
    alpha[:, :100] = 0                                       # the left strip transparent
    Image.fromarray(np.dstack([photo, alpha])).save(comfy.input_dir / "astronaut_cutout.png")
    p = comfy.workflow("fit_reference")
    p["1"]["inputs"]["image"] = "astronaut_cutout.png"
    p["3"]["inputs"].update(photo_mask=["1", 1], background="#00ff00")
    p["5"] = {"class_type": "MaskToImage", "inputs": {"mask": ["3", 3]}}
    p["6"] = {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}}
    res = comfy.run(p)
    assert res.error is None, res.error
    shown = np.asarray(Image.open(_io.BytesIO(comfy.fetch(res.outputs["6"]["images"][0]))).convert("L"))
    assert shown[:, :90].max() < 10 and shown[:, 110:].min() > 245       # the alpha as it was
    overlay = np.asarray(Image.open(_io.BytesIO(comfy.fetch(res.outputs["4"]["images"][0]))).convert("RGB"))
    corner = overlay[5:40, 5:40].reshape(-1, 3).mean(0)                  # composited over green
    assert corner[1] > 200 and corner[0] < 60 and corner[2] < 60, corner
    p["3"]["inputs"]["background"] = "greenish"
    from comfyui_server import PromptRejected
    try:
        msg = str(comfy.run(p).error)
    except PromptRejected as e:
        msg = str(e.body)
    assert "[VLOGGER_FitReference] input 'background'" in msg and "Fix:" in msg, msg
