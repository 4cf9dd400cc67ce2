"""The reference fit drawn for the artist: the fitted body projected into the photo, the fit
editor's data (web/js/vlogger_fit_editor.js) and the debug overlay image."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..motion.params import SMPLX_INDEX
from .detect import MP_POSE_JOINTS

if TYPE_CHECKING:
    from .reference import ReferenceFit


def project_fit(fit: ReferenceFit, body) -> dict:
    """The fitted body seen by the fitted camera: pixel positions of vertices, joints and
    landmarks (for overlays and tests)."""
    out = body.pose_fit(fit)
    res = {}
    for k in ("vertices", "joints", "landmarks"):
        uv, z = fit.camera.project(out[k][0].cpu())
        res[k] = uv
        res[k + "_depth"] = z
    return res


def fit_editor_data(fit: ReferenceFit, body, max_outline: int = 400) -> dict:
    """What the frontend's fit editor (web/js/vlogger_fit_editor.js) draws and edits, as plain
    JSON in photo pixels: the body's silhouette outline, its face landmarks and face centre
    (the point the scale override keeps fixed), and the overrides this fit was made with."""
    import cv2

    from ..render.rasterizer import rasterize

    p = project_fit(fit, body)
    H, W = fit.height, fit.width
    uvz = torch.cat([p["vertices"], p["vertices_depth"][:, None]], 1).numpy().astype(np.float32)
    on = (rasterize(uvz[None], body.faces, W, H).tri_id[0] >= 0).astype(np.uint8)
    cnts, _ = cv2.findContours(on, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    outline = max(cnts, key=cv2.contourArea)[:, 0, :] if cnts else np.zeros((0, 2), int)
    if len(outline) > max_outline:
        outline = outline[np.linspace(0, len(outline) - 1, max_outline).astype(int)]
    lm = p["landmarks"].numpy()
    return {"width": W, "height": H, "detector": fit.detector,
            "fov_diag_deg": round(float(fit.camera.fov_diag_deg), 2),
            "outline": [[int(x), int(y)] for x, y in outline],
            "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in lm],
            "face_center": [round(float(v), 2) for v in lm.mean(0)],
            "overrides": dict(fit.info.get("overrides", {}))}


def draw_fit_overlay(fit: ReferenceFit, body, alpha: float = 0.45) -> torch.Tensor:
    """[H,W,3] float: the photo with the fitted body (shaded, coloured by part, with its
    silhouette outlined), the body's landmarks (green) and the detected points (red)."""
    import cv2

    from ..render.rasterizer import rasterize

    img = fit.image.cpu().numpy()
    H, W = img.shape[:2]
    p = project_fit(fit, body)
    uvz = torch.cat([p["vertices"], p["vertices_depth"][:, None]], 1).numpy().astype(np.float32)
    frags = rasterize(uvz[None], body.faces, W, H)
    tri = frags.tri_id[0]
    v = uvz
    f = body.faces
    # screen-space shading: how much each triangle faces the camera
    a = v[f[:, 1], :2] - v[f[:, 0], :2]
    b = v[f[:, 2], :2] - v[f[:, 0], :2]
    area = np.abs(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0])
    pal = _part_palette(len(body.part_names))
    col = pal[body.face_labels] * (0.6 + 0.4 * np.tanh(area * 4))[:, None]
    out = img.copy()
    on = tri >= 0
    out[on] = (1 - alpha) * img[on] + alpha * col[tri[on]]
    o8 = (np.clip(out, 0, 1) * 255).astype(np.uint8).copy()
    mask = on.astype(np.uint8)
    cnts, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    r = max(1, round(max(H, W) / 400))
    cv2.drawContours(o8, cnts, -1, (255, 255, 0), r)
    for x, y in fit.info.get("detected_landmarks", []):
        cv2.circle(o8, (int(x), int(y)), r + 1, (255, 40, 40), -1)
    for x, y in fit.info.get("detected_joints", {}).values():
        cv2.circle(o8, (int(x), int(y)), r + 3, (255, 40, 40), -1)
    for x, y in p["landmarks"].numpy():
        cv2.circle(o8, (int(x), int(y)), r, (40, 255, 40), -1)
    for j in MP_POSE_JOINTS.values():
        x, y = p["joints"][SMPLX_INDEX[j]].numpy()
        cv2.circle(o8, (int(x), int(y)), r + 2, (40, 255, 40), -1)
    return torch.from_numpy(o8.astype(np.float32) / 255.0)


def _part_palette(n: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    pal = rng.uniform(0.25, 1.0, (n, 3)).astype(np.float32)
    pal[0] = 0
    return pal
