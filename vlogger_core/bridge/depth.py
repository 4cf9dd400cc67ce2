"""Depth, normal and semantic videos of the posed body, for Wan Fun-Control / VACE control input.

Posed exactly as the default renderer poses each frame (keypoints.posed_frames), rasterized by
render/rasterizer with the renderer's camera. Value ranges (ComfyUI IMAGE, float 0..1, RGB):
- depth: what VACE's depth annotator (MiDaS DPT-hybrid) and the Fun-Control depth examples
  feed: relative inverse depth, near = white, far = black, one grey value in all three
  channels. The annotator min-max normalises each frame's disparity; the body alone has no
  room behind it, so here the range is fixed per reference instead (white at the reference
  body's nearest point minus DEPTH_PAD, black at its farthest plus BACKGROUND_GAP, the
  background black as the farthest thing): the same pose gives the same grey in every window,
  no flicker when the arms move.
- normal: camera-space surface normals as ControlNet's normal maps (NormalBae) encode them,
  RGB = (n + 1) / 2 with x to the right, y up and z towards the viewer; background black.
- semantic: the body-part colours of render/controls.palette (VLOGGER's semantic map).
"""
from __future__ import annotations

import numpy as np

from ..render import controls, rasterizer
from ..render.talking_video import TalkingVideoRenderer
from .keypoints import posed_frames

DEPTH_PAD = 0.05            # m in front of the reference body's nearest point that is white
BACKGROUND_GAP = 0.25       # m behind its farthest point that is black
# OpenCV camera axes (x right, y down, z forward) -> normal-map axes (x right, y up, z to viewer)
NORMAL_AXES = np.array([1.0, -1.0, -1.0], np.float32)


def depth_range(renderer: TalkingVideoRenderer) -> tuple[float, float]:
    """(near, far) camera depths in metres mapped to white and black."""
    verts, _ = posed_frames(renderer, None, 0, 1)
    z = controls.project(renderer.camera, verts)[0, :, 2]
    return float(z.min()) - DEPTH_PAD, float(z.max()) + BACKGROUND_GAP


def inverse_depth_image(depth: np.ndarray, near: float, far: float, out: np.ndarray | None = None) -> np.ndarray:
    """Camera depth [n,H,W] (inf off the body) -> [n,H,W,3] float 0..1, near white (into `out`)."""
    out = np.zeros(depth.shape + (3,), np.float32) if out is None else out
    on = np.isfinite(depth)
    v = np.clip((1.0 / depth[on] - 1.0 / far) / (1.0 / near - 1.0 / far), 0.0, 1.0).astype(np.float32)
    out[...] = 0.0
    out[on] = v[:, None]
    return out


def body_maps(renderer: TalkingVideoRenderer, motion, start: int, stop: int,
              near_far: tuple[float, float] | None = None, out: dict | None = None) -> dict[str, np.ndarray]:
    """Frames start..stop as {"depth", "normal", "semantic": [n,H,W,3] float 0..1, "mask": [n,H,W]},
    written into `out`'s arrays when given (each with n frames)."""
    verts, _ = posed_frames(renderer, motion, start, stop)
    cam = renderer.camera
    n = len(verts)
    shape = (n, cam.height, cam.width)
    out = out or {k: np.empty(shape + (3,), np.float32) for k in ("depth", "normal", "semantic")} | {
        "mask": np.empty(shape, np.float32)}
    pts = controls.project(cam, verts)
    faces = renderer.faces
    frags = rasterizer.rasterize(pts, faces, cam.width, cam.height,
                                 cull_backfaces=controls.CULL_BODY_BACKFACES)
    near, far = near_far or depth_range(renderer)
    inverse_depth_image(frags.depth, near, far, out["depth"])
    on = frags.tri_id >= 0
    out["mask"][...] = on
    R = cam.rotation.detach().cpu().float()
    n_cam = (controls.vertex_normals(verts, faces) @ R.T).numpy()            # [n,V,3] camera axes
    normal = out["normal"]
    for i in range(n):                                              # per frame: attributes differ
        one = rasterizer.Fragments(frags.tri_id[i:i + 1], frags.bary[i:i + 1], frags.depth[i:i + 1], faces)
        normal[i] = rasterizer.interpolate(one, n_cam[i])[0]
    nb = normal[on]                                                 # body pixels only
    nb /= np.maximum(np.linalg.norm(nb, axis=-1, keepdims=True), 1e-8)
    normal[...] = 0.0
    normal[on] = (nb * NORMAL_AXES + 1) * 0.5
    labels = rasterizer.face_label_map(frags, renderer.labels)
    pal = controls.palette(max(len(renderer.part_ids) + 1, int(labels.max()) + 1))
    np.take(pal, labels, axis=0, out=out["semantic"])
    return out
