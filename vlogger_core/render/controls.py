"""VLOGGER's 2D controls: dense map C_d, semantic map C_m, warped reference C_w (+ alpha, depth).

Per frame the posed body is rasterized with the camera fitted to the photo:
- dense   C_d: each pixel shows the REST-POSE (template) position of the body point under it,
  normalised to 0..1 by the template's bounding box: a per-vertex colour that follows the skin.
- semantic C_m: the part label of the triangle under the pixel (0 = background); one-hot masks
  are built only on request (Controls.masks / mask), the index map is what is stored.
- warped  C_w: every vertex visible in the reference photo takes the photo's colour under it
  (reference_colors); the body is rendered in the new pose with those colours. A pixel gets a
  colour only where all three vertices of its triangle were visible in the photo; elsewhere
  colour 0 and warped_valid False (the generator must invent it).
- alpha (1 on the body), depth (camera z, inf on the background).

Camera for another output size: `camera_for` scales the photo's camera so the output is COVERED
(the shorter relative side fits, the other is centre-cropped), keeping the fitted focal length
per pixel consistent, so the maps line up with a resized/cropped photo.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..body.camera import PerspectiveCamera
from ..body.model import check_expression_set
from ..callbacks import Interrupt, Progress, check, report
from ..errors import VloggerError
from . import rasterizer

# A fixed palette for the semantic visualisation (index = label id; 0 = background = black).
_PALETTE = np.array([
    [0, 0, 0], [230, 190, 160], [220, 40, 60], [120, 20, 40], [250, 250, 240], [40, 120, 240],
    [90, 60, 30], [160, 110, 60], [240, 150, 90], [200, 160, 130], [60, 170, 90], [170, 90, 200],
    [250, 210, 60], [60, 210, 220], [240, 110, 180], [130, 200, 60], [100, 100, 220],
    [220, 120, 40], [40, 90, 60], [180, 180, 180],
], np.float32) / 255.0


def palette(num_labels: int) -> np.ndarray:
    """[num_labels, 3] colours 0..1; label ids beyond the fixed table get fixed random colours."""
    if num_labels <= len(_PALETTE):
        return _PALETTE[:num_labels].copy()
    rng = np.random.default_rng(0)   # fixed seed: the same label always has the same colour
    extra = rng.uniform(0.25, 1.0, (num_labels - len(_PALETTE), 3)).astype(np.float32)
    return np.concatenate([_PALETTE, extra], 0)


def control_channels_of(dense: torch.Tensor, warped: torch.Tensor, num_parts: int,
                        semantic: torch.Tensor | None = None) -> torch.Tensor:
    """The video model's control input [N, 3 + N_c + 3, H, W]: dense RGB | one-hot of the part
    labels 1..N_c | warped RGB, from maps [N,H,W,3] and label ids [N,H,W] (None: every part
    channel 0, for maps made elsewhere). The background has no channel of its own."""
    if dense.ndim != 4 or dense.shape[-1] != 3:
        raise VloggerError(f"dense maps must be [N,H,W,3], got {tuple(dense.shape)}", "dense",
                           "give one RGB dense map per frame")
    if warped.shape != dense.shape:
        raise VloggerError(f"warped maps {tuple(warped.shape)} differ from the dense maps {tuple(dense.shape)}",
                           "warped", "give both one image per frame at the same size")
    if semantic is None:
        parts = dense.new_zeros(*dense.shape[:3], num_parts)
    else:
        parts = torch.nn.functional.one_hot(semantic.long(), num_parts + 1)[..., 1:].to(dense.dtype)
    return torch.cat([dense, parts, warped], -1).permute(0, 3, 1, 2).float().contiguous()


@dataclass
class Controls:
    """The control maps of N frames (torch tensors, CPU)."""

    dense: torch.Tensor          # [N,H,W,3] float 0..1
    semantic: torch.Tensor       # [N,H,W] uint8 label ids, 0 = background
    warped: torch.Tensor         # [N,H,W,3] float 0..1, 0 where not valid
    alpha: torch.Tensor          # [N,H,W] float, 1 where the body was rasterized
    warped_valid: torch.Tensor   # [N,H,W] bool, pixels whose vertices had a reference colour
    depth: torch.Tensor          # [N,H,W] float camera z, inf on the background
    part_names: list[str] = field(default_factory=list)   # index = label id, [0] = background
    camera: PerspectiveCamera | None = None               # the camera the maps were rendered with

    @property
    def num_frames(self) -> int:
        return int(self.semantic.shape[0])

    @property
    def num_parts(self) -> int:
        """N_c: the part classes, background excluded."""
        return max(0, len(self.part_names) - 1)

    def label_ids(self, names) -> list[int]:
        names = [names] if isinstance(names, str) else list(names)
        unknown = [n for n in names if n not in self.part_names]
        if unknown:
            raise KeyError(f"unknown part(s) {unknown}; known: {self.part_names[1:]}")
        return [self.part_names.index(n) for n in names]

    def masks(self, part_names) -> torch.Tensor:
        """[N, K, H, W] float one-hot channels, one per requested part (built now, not stored)."""
        ids = self.label_ids(part_names)
        return torch.stack([(self.semantic == i) for i in ids], 1).float()

    def mask(self, part_names) -> torch.Tensor:
        """ComfyUI MASK [N,H,W] float: 1 where any of the named parts is visible."""
        ids = torch.tensor(self.label_ids(part_names), dtype=torch.uint8)
        return torch.isin(self.semantic, ids).float()

    def semantic_rgb(self) -> torch.Tensor:
        """[N,H,W,3] float: the label map colour-coded with `palette` (for previews)."""
        pal = torch.from_numpy(palette(max(len(self.part_names), int(self.semantic.max()) + 1)))
        return pal[self.semantic.long()]

    def to_channels(self) -> torch.Tensor:
        """[N, 3 + N_c + 3, H, W] float: the video diffusion branch's input (control_channels_of)."""
        return control_channels_of(self.dense, self.warped, self.num_parts, self.semantic)

    def select(self, start: int, stop: int) -> "Controls":
        return Controls(self.dense[start:stop], self.semantic[start:stop], self.warped[start:stop],
                        self.alpha[start:stop], self.warped_valid[start:stop],
                        self.depth[start:stop], list(self.part_names), self.camera)

    @staticmethod
    def concat(parts: list["Controls"]) -> "Controls":
        p0 = parts[0]
        return Controls(*(torch.cat([getattr(p, k) for p in parts]) for k in
                          ("dense", "semantic", "warped", "alpha", "warped_valid", "depth")),
                        part_names=list(p0.part_names), camera=p0.camera)


# ----------------------------------------------------------------------------- geometry

def camera_for(cam: PerspectiveCamera, width: int, height: int) -> PerspectiveCamera:
    """The photo's camera re-targeted to width x height, covering the frame (centre crop).

    The focal length in pixels scales by s = max(width / W, height / H); the excess of the
    other side is cropped equally from both ends. Same aspect -> the plain resize.
    """
    if width * cam.height == height * cam.width:
        return cam.resized(width, height)
    s = max(width / cam.width, height / cam.height)
    f = cam.focal * s
    cx, cy = cam.center
    principal = (cx * s + (width - cam.width * s) / 2, cy * s + (height - cam.height * s) / 2)
    fov = 2 * math.degrees(math.atan(0.5 * math.hypot(width, height) / f))
    return PerspectiveCamera(width, height, fov, cam.rotation.clone(), cam.translation.clone(),
                             principal)


def project(cam: PerspectiveCamera, vertices: torch.Tensor) -> np.ndarray:
    """World vertices [n,V,3] -> [n,V,3] float32 (pixel x, pixel y, camera z) for the rasterizer."""
    return rasterizer.project_points(vertices.detach().to("cpu", torch.float32).contiguous(),
                                     cam.rotation.detach().cpu().numpy(),
                                     cam.translation.detach().cpu().numpy(), cam.focal,
                                     cam.center)


def vertex_normals(verts: torch.Tensor, faces: np.ndarray) -> torch.Tensor:
    """[n,V,3] area-weighted unit vertex normals (outward for counter-clockwise faces)."""
    f = torch.as_tensor(faces, dtype=torch.long)
    a, b, c = verts[:, f[:, 0]], verts[:, f[:, 1]], verts[:, f[:, 2]]
    fn = torch.cross(b - a, c - a, dim=-1)
    vn = torch.zeros_like(verts)
    for k in range(3):
        vn.index_add_(1, f[:, k], fn)
    return torch.nn.functional.normalize(vn, dim=-1)


def facing_camera(cam: PerspectiveCamera, verts: torch.Tensor, faces: np.ndarray) -> np.ndarray:
    """[n,V] float32: |cos| of the angle between each vertex's normal and its line of sight
    (1 = facing the camera, 0 = seen edge-on)."""
    v = verts.detach().to("cpu", torch.float32)
    R = cam.rotation.detach().cpu().float()
    x = v @ R.T + cam.translation.detach().cpu().float().reshape(1, 1, 3)     # camera axes
    n = vertex_normals(v, faces) @ R.T
    return (n * torch.nn.functional.normalize(x, dim=-1)).sum(-1).abs().numpy()


def dense_colors_of(template: torch.Tensor) -> np.ndarray:
    """Template vertices [V,3] -> [V,3] colours 0..1 (normalised by the bounding box, per axis)."""
    t = template.detach().to("cpu", torch.float32)
    lo, hi = t.min(0).values, t.max(0).values
    return ((t - lo) / (hi - lo).clamp_min(1e-8)).numpy()


def sample_bilinear(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """image [H,W,C], xy [V,2] continuous pixel coordinates (centres at +0.5) -> [V,C]."""
    h, w = image.shape[:2]
    x = np.clip(xy[:, 0] - 0.5, 0, w - 1)
    y = np.clip(xy[:, 1] - 0.5, 0, h - 1)
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    fx = (x - x0)[:, None]
    fy = (y - y0)[:, None]
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bot = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return (top * (1 - fy) + bot * fy).astype(np.float32)


def reference_colors_from(vertices: torch.Tensor, faces, camera: PerspectiveCamera,
                          image: torch.Tensor, resolution=None, backend: str = "numba",
                          cull_backfaces: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference-pose vertices [V,3] (world) seen by `camera` in `image` [H,W,3].

    Visibility is decided by rasterizing at `resolution` (the long side, or a (width, height)
    pair of which the long side counts; None = the photo's size);
    colours are sampled bilinearly from the photo at its own resolution. Invisible vertices get
    colour 0. Returns (colors [V,3] float, visible [V] bool).
    """
    img = image.detach().to("cpu", torch.float32).numpy()
    if img.ndim != 3 or img.shape[2] != 3:
        raise VloggerError(f"reference image must be [H,W,3], got {tuple(img.shape)}", "image",
                           "give the photo as one RGB image")
    h, w = img.shape[:2]
    cam = camera if (camera.width, camera.height) == (w, h) else camera_for(camera, w, h)
    v = vertices.reshape(1, -1, 3)
    full = project(cam, v)                                     # photo pixels
    if isinstance(resolution, (tuple, list)):
        resolution = max(resolution)
    if resolution is None or resolution >= max(w, h):
        rcam, pts = cam, full
    else:
        s = resolution / max(w, h)
        rcam = cam.resized(max(1, round(w * s)), max(1, round(h * s)))
        pts = project(rcam, v)
    frags = rasterizer.rasterize(pts, faces, rcam.width, rcam.height, backend=backend,
                                 cull_backfaces=cull_backfaces)
    visible = rasterizer.vertex_visibility(pts, faces, frags)[0]
    colors = np.zeros((full.shape[1], 3), np.float32)
    colors[visible] = sample_bilinear(img, full[0, visible, :2])
    return torch.from_numpy(colors), torch.from_numpy(visible)


def render_maps(vertices: torch.Tensor, faces, face_labels, dense_colors, camera: PerspectiveCamera,
                ref_colors, ref_visible, part_names: list[str], backend: str = "numba",
                cull_backfaces: bool = False) -> Controls:
    """Posed world vertices [n,V,3] -> Controls at the camera's resolution.

    cull_backfaces: skip triangles facing away (only for closed meshes wound counter-clockwise
    seen from outside, as SMPL-X bodies are); the maps are unchanged and rasterizing is faster.
    """
    pts = project(camera, vertices if vertices.dim() == 3 else vertices[None])
    rc = ref_colors.detach().cpu().numpy() if torch.is_tensor(ref_colors) else ref_colors
    rv = ref_visible.detach().cpu().numpy() if torch.is_tensor(ref_visible) else ref_visible
    if backend == "numba":
        frags, dense, sem, warped, valid = rasterizer.rasterize_shade(
            pts, faces, camera.width, camera.height, dense_colors, face_labels, rc, rv,
            cull_backfaces=cull_backfaces)
    else:
        frags = rasterizer.rasterize(pts, faces, camera.width, camera.height, backend=backend,
                                     cull_backfaces=cull_backfaces)
        dense, sem, warped, valid = rasterizer.shade(frags, dense_colors, face_labels, rc, rv)
    t = torch.from_numpy
    return Controls(t(dense), t(sem), t(warped), t(frags.alpha), t(valid), t(frags.depth),
                    list(part_names), camera)


# ----------------------------------------------------------------------------- with a body

# SMPL-X-format bodies are closed-ish meshes wound counter-clockwise seen from outside: back faces
# never win the depth test, so culling them changes no pixel (checked on the shipped body in
# tests/test_control_maps.py) and saves a third of the rasterizing time.
CULL_BODY_BACKFACES = True
# dense, warped and semantic RGB (12 B each), depth, alpha and a mask (4 B each), ids and flags
BYTES_PER_PIXEL = 56


def check_body_inputs(body, fit, motion=None) -> None:
    """The fit and the motion were made for this body (its name, its expression set)."""
    if getattr(fit, "body_name", body.name) != body.name:
        raise VloggerError(f"the fit was made with body '{fit.body_name}', not '{body.name}'", "fit",
                           "use the same body model for the fit and for rendering")
    if motion is not None:
        check_expression_set(body, motion.expression_set)


def dense_colors(body) -> np.ndarray:
    """The dense map's per-vertex colours [V,3] float32 (the body's own, else from its template)."""
    d = body.dense_colors() if hasattr(body, "dense_colors") else dense_colors_of(
        body.template_vertices())
    return np.ascontiguousarray(torch.as_tensor(d).detach().cpu().numpy(), dtype=np.float32)


def reference_colors(body, fit, resolution=None,
                     backend: str = "numba") -> tuple[torch.Tensor, torch.Tensor]:
    """(colors [V,3], visible [V] bool): each vertex visible in the reference photo takes the
    photo's colour under it (see reference_colors_from)."""
    verts = body.pose_frames(fit, None, 0, 1, "cpu")[0]
    return reference_colors_from(verts, body.faces, fit.camera, fit.image, resolution, backend,
                                 CULL_BODY_BACKFACES)


def render_controls(body, fit, vertices: torch.Tensor, width: int, height: int,
                    ref_colors, ref_visible, backend: str = "numba") -> Controls:
    """Posed vertices [n,V,3] of `body` -> Controls at width x height with the fitted camera."""
    cam = camera_for(fit.camera, width, height)
    return render_maps(vertices, body.faces, body.face_labels, dense_colors(body), cam,
                       ref_colors, ref_visible, list(body.part_names), backend,
                       CULL_BODY_BACKFACES)


def render_motion(body, fit, motion, width: int, height: int, start: int = 0,
                  stop: int | None = None, chunk: int = 16, device="cpu",
                  ref_resolution: int | None = None, progress: Progress = None, interrupt: Interrupt = None,
                  backend: str = "numba") -> Controls:
    """Pose and render frames start..stop of `motion` (None = the reference pose, one frame),
    `chunk` frames at a time (posing is batched; memory stays bounded)."""
    check_body_inputs(body, fit, motion)
    total = 1 if motion is None else motion.num_frames
    stop = total if stop is None else min(stop, total)
    if not 0 <= start < stop:
        raise VloggerError(f"frame range {start}..{stop} is empty (the motion has {total} frames)", "start",
                           f"start below {total}")
    ref_c, ref_v = reference_colors(body, fit, ref_resolution, backend)
    cam = camera_for(fit.camera, width, height)
    dense = dense_colors(body)
    parts = []
    for s in range(start, stop, chunk):
        check(interrupt)
        e = min(stop, s + chunk)
        verts = body.pose_frames(fit, motion, s, e, device)
        parts.append(render_maps(verts, body.faces, body.face_labels, dense, cam, ref_c, ref_v,
                                 list(body.part_names), backend, CULL_BODY_BACKFACES))
        report(progress, e - start, stop - start)
    return Controls.concat(parts)
