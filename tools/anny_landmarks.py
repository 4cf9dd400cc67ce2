"""Helpers of tools/bake_anny_body.py: Anny's own segmentation, face landmarks found by running
mediapipe's face mesh on a front render of the baked head, and the final per-face labels."""
from __future__ import annotations

import numpy as np

from vlogger_core.body.detect import MP_STATIC, detect
from vlogger_core.body.parts import (
    PART_NAMES,
    P,
    face_labels_from_vertices,
    vertex_labels,
)
from vlogger_core.render.rasterizer import rasterize

_SEG = {"eye_front.L": "eyes", "eye_front.R": "eyes", "eye_back.L": "eyes", "eye_back.R": "eyes",
        "eye_cavity.L": "face_skin", "eye_cavity.R": "face_skin",
        "mouth_cavity": "mouth_interior", "tongue": "tongue", "hand.L": "hands",
        "hand.R": "hands", "foot.L": "legs_other", "foot.R": "legs_other"}


def anny_segments(model) -> dict[str, np.ndarray]:
    """Anny's per-face segmentation masks (from its texture-space part map)."""
    from anny.face_segmentation import get_face_segmentation_mask
    return {k: get_face_segmentation_mask(model, [k]).cpu().numpy() for k in _SEG}


def _render_head(v, f, head, seg, size=512):
    """Front view of the head (Lambert, skin tone, dark eyes/mouth) -> (image uint8, frags,
    projected verts)."""
    dist, fov = 0.55, 28.0
    foc = 0.5 * size / np.tan(np.radians(fov) / 2)
    pc = np.stack([v[:, 0] - head[0], -(v[:, 1] - head[1]), head[2] + dist - v[:, 2]], -1)
    proj = np.stack([foc * pc[:, 0] / pc[:, 2] + size / 2, foc * pc[:, 1] / pc[:, 2] + size / 2,
                     pc[:, 2]], -1).astype(np.float32)
    frags = rasterize(proj[None], f, size, size)
    tri = frags.tri_id[0]
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    shade = np.clip(np.abs(n[:, 2]), 0, 1) * 0.8 + 0.2
    col = np.tile(np.array([0.86, 0.68, 0.58]), (len(f), 1))
    col[seg["eye_front.L"] | seg["eye_front.R"]] = [0.25, 0.18, 0.12]
    col[seg["eye_back.L"] | seg["eye_back.R"]] = [0.95, 0.95, 0.95]
    col[seg["mouth_cavity"] | seg["tongue"]] = [0.35, 0.1, 0.1]
    fc = col * shade[:, None]
    img = np.where(tri[..., None] >= 0, fc[np.maximum(tri, 0)], 0.55)
    return (img * 255).astype(np.uint8), frags


def find_landmarks(v_template, faces, joints, seg) -> dict:
    """Lift mediapipe's 478 face points from a front render of the head onto the mesh."""
    v = np.asarray(v_template, np.float64)
    f = np.asarray(faces, np.int64)
    head = joints[15] + np.array([0.0, 0.06, 0.0])      # a bit above the head joint: the face
    img, frags = _render_head(v, f, head, seg)
    lms = detect(img[None], parts=("face",))
    if not lms.face_found()[0]:
        raise RuntimeError("mediapipe found no face on the render of the baked head")
    H, W = img.shape[:2]
    pts = lms.face[0].astype(np.float64)
    tri = frags.tri_id[0]
    bary = frags.bary[0]
    ys, xs = np.nonzero(tri >= 0)
    fid = np.zeros(len(pts), np.int64)
    bc = np.zeros((len(pts), 3), np.float32)
    for i, (x, y) in enumerate(pts):
        px, py = int(np.clip(x, 0, W - 1)), int(np.clip(y, 0, H - 1))
        if tri[py, px] < 0:   # off the mesh: nearest covered pixel
            k = np.argmin((xs - x) ** 2 + (ys - y) ** 2)
            px, py = xs[k], ys[k]
        fid[i] = tri[py, px]
        bc[i] = bary[py, px]
    ib = np.array(MP_STATIC)
    return {"mp_faces_idx": fid, "mp_bary": bc, "ibug_faces_idx": fid[ib], "ibug_bary": bc[ib],
            "render": img, "mp_points": pts}


def label_faces(body: dict, seg: dict) -> dict:
    """Per-face labels: the generic skinning+landmark rules, then Anny's own segmentation
    for the parts it knows exactly (eyes, mouth cavity, tongue, hands, feet)."""
    f = body["f"].astype(np.int64)
    vlab = vertex_labels(body["v_template"], f, body["weights"], body["lmk_faces_idx"],
                         body["lmk_bary_coords"])
    # Eyelids hide under the brows at rest: vertices the blinks move are skin, not brow.
    from vlogger_core.motion.params import ARKIT52
    blink = sum(np.linalg.norm(body["shapedirs"][:, :, 300 + ARKIT52.index(n)], axis=1)
                for n in ("eyeBlinkLeft", "eyeBlinkRight"))
    vlab[(vlab == P["eyebrows"]) & (blink > 1e-3)] = P["face_skin"]
    lab = face_labels_from_vertices(vlab, f)
    for k, part in _SEG.items():
        lab[seg[k]] = P[part]
    return {"face_labels": lab.astype(np.uint8), "part_names": list(PART_NAMES)}
