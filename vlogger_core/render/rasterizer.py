"""A fast CPU z-buffer rasterizer (numba) for the VLOGGER control maps.

Conventions (same as camera.py): pixel (0, 0) is the top-left corner of the top-left pixel, so
pixel (u, v) is sampled at its centre (u + 0.5, v + 0.5); y points down. Input vertices are
already projected: [..., 0:2] pixel coordinates, [..., 2] camera depth (> 0 in front).

- Coverage follows the top-left fill rule, so two triangles sharing an edge never both cover a
  pixel centre lying exactly on it, and none is dropped. Both windings are rasterized by
  default (cull_backfaces=False: back faces of a closed mesh lose the depth test anyway).
- Near plane: a triangle with ANY vertex closer than `near` is dropped whole (no clipping). The
  body sits metres in front of the camera, so this only removes geometry that would be behind
  the viewer; clipping would cost time on every frame for nothing.
- Barycentrics are perspective-correct (screen-space weights divided by depth, renormalised);
  depth is the interpolated camera z (1 / interpolated 1/z), inf on the background.
- Work is split into (frame, band of rows) units run with prange: a single frame is split into
  bands across threads, a batch is split by frames. Each unit walks all triangles and only
  fills its own rows; at 256x256 a body triangle covers under a pixel, so the cost is the
  per-triangle setup, not the filling.

numba compiles each kernel once (about 5 s) and caches the machine code next to this file
(cache=True). If that folder is read-only numba uses its user cache instead; set NUMBA_CACHE_DIR
to choose the folder explicitly.

An optional backend, backend="pytorch3d", is used only when pytorch3d is importable (it is not on
this machine's torch, see the environment facts); the numba backend is the default.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import get_num_threads, njit, prange

BACKENDS = ("numba", "pytorch3d")


@dataclass
class Fragments:
    """What rasterize() returns for n frames of H x W pixels."""

    tri_id: np.ndarray   # [n,H,W] int32, -1 = background
    bary: np.ndarray     # [n,H,W,3] float32, perspective-correct, 0 on the background
    depth: np.ndarray    # [n,H,W] float32 camera z, inf on the background
    faces: np.ndarray | None = None   # [F,3] int32, the faces tri_id indexes (for shading)

    @property
    def alpha(self) -> np.ndarray:
        return (self.tri_id >= 0).astype(np.float32)


# ----------------------------------------------------------------------------- kernels

@njit(cache=True, inline="always")
def _top_left(ax, ay, bx, by):
    # For our orientation (positive signed area with y down), top edges run in +x with dy == 0
    # and left edges run upwards (dy < 0).
    dy = by - ay
    return dy < 0.0 or (dy == 0.0 and bx - ax > 0.0)


@njit(cache=True, inline="always")
def _covered(w, top_left):
    return w > 0.0 or (w == 0.0 and top_left)


@njit(cache=True)
def _raster_band(verts, faces, f, r0, r1, width, near, cull, tri_id, bary, depth):
    """Rasterize every triangle of frame f into rows r0..r1-1 (one work unit)."""
    nf = faces.shape[0]
    for y in range(r0, r1):
        for x in range(width):
            tri_id[f, y, x] = -1
            depth[f, y, x] = np.inf
            bary[f, y, x, 0] = 0.0
            bary[f, y, x, 1] = 0.0
            bary[f, y, x, 2] = 0.0
    for t in range(nf):
        i0 = faces[t, 0]
        i1 = faces[t, 1]
        i2 = faces[t, 2]
        z0 = np.float64(verts[f, i0, 2])
        z1 = np.float64(verts[f, i1, 2])
        z2 = np.float64(verts[f, i2, 2])
        if z0 < near or z1 < near or z2 < near:
            continue
        x0 = np.float64(verts[f, i0, 0])
        y0 = np.float64(verts[f, i0, 1])
        x1 = np.float64(verts[f, i1, 0])
        y1 = np.float64(verts[f, i1, 1])
        x2 = np.float64(verts[f, i2, 0])
        y2 = np.float64(verts[f, i2, 1])
        area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
        if area == 0.0 or not math.isfinite(area) or (cull and area > 0.0):
            continue
        # Pixel centres c = k + 0.5 inside the bounding box, clipped to this band.
        ys = max(r0, math.ceil(min(y0, min(y1, y2)) - 0.5))
        ye = min(r1 - 1, math.floor(max(y0, max(y1, y2)) - 0.5))
        if ys > ye:
            continue
        xs = max(0, math.ceil(min(x0, min(x1, x2)) - 0.5))
        xe = min(width - 1, math.floor(max(x0, max(x1, x2)) - 0.5))
        if xs > xe:
            continue
        s1 = 1
        s2 = 2
        if area < 0.0:  # make the winding positive; remember where weights 1 and 2 go
            x1, x2 = x2, x1
            y1, y2 = y2, y1
            z1, z2 = z2, z1
            s1 = 2
            s2 = 1
            area = -area
        tl0 = _top_left(x1, y1, x2, y2)
        tl1 = _top_left(x2, y2, x0, y0)
        tl2 = _top_left(x0, y0, x1, y1)
        inv_area = 1.0 / area
        iz0 = 1.0 / z0
        iz1 = 1.0 / z1
        iz2 = 1.0 / z2
        for y in range(ys, ye + 1):
            py = y + 0.5
            for x in range(xs, xe + 1):
                px = x + 0.5
                w0 = (x2 - x1) * (py - y1) - (y2 - y1) * (px - x1)
                if not _covered(w0, tl0):
                    continue
                w1 = (x0 - x2) * (py - y2) - (y0 - y2) * (px - x2)
                if not _covered(w1, tl1):
                    continue
                w2 = (x1 - x0) * (py - y0) - (y1 - y0) * (px - x0)
                if not _covered(w2, tl2):
                    continue
                q0 = w0 * inv_area * iz0
                q1 = w1 * inv_area * iz1
                q2 = w2 * inv_area * iz2
                z = 1.0 / (q0 + q1 + q2)   # q sums to 1/z: one division per pixel
                if z < depth[f, y, x]:
                    depth[f, y, x] = z
                    tri_id[f, y, x] = t
                    bary[f, y, x, 0] = q0 * z
                    bary[f, y, x, s1] = q1 * z
                    bary[f, y, x, s2] = q2 * z


@njit(parallel=True, cache=True)
def _visibility_kernel(verts, faces, tri_id, depth, near, rel_tol, vis):
    n, height, width = tri_id.shape
    nv = verts.shape[1]
    for f in prange(n):
        # 1) every vertex of a triangle that won a pixel is on the front surface
        for y in range(height):
            for x in range(width):
                t = tri_id[f, y, x]
                if t >= 0:
                    vis[f, faces[t, 0]] = True
                    vis[f, faces[t, 1]] = True
                    vis[f, faces[t, 2]] = True
        # 2) the rest (vertices of sub-pixel triangles) by a depth test at their own pixel
        for v in range(nv):
            if vis[f, v]:
                continue
            z = verts[f, v, 2]
            if not z >= near:
                continue
            px = math.floor(verts[f, v, 0])
            py = math.floor(verts[f, v, 1])
            if px < 0 or py < 0 or px >= width or py >= height:
                continue
            d = depth[f, py, px]
            # background under the vertex: nothing in front of it (it sits on a silhouette)
            if d == np.inf or z <= d * (1.0 + rel_tol):
                vis[f, v] = True


@njit(cache=True, inline="always")
def _corners(faces, bary, t, f, y, x):
    """(vertex ids, barycentric weights) of triangle t under pixel (y, x) of frame f."""
    return faces[t, 0], faces[t, 1], faces[t, 2], bary[f, y, x, 0], bary[f, y, x, 1], bary[f, y, x, 2]


@njit(parallel=True, cache=True)
def _interp_kernel(tri_id, bary, faces, attr, out):
    """attr [V,C] shared by all frames -> out [n,H,W,C] (0 on the background)."""
    n, height, width = tri_id.shape
    c = attr.shape[1]
    for unit in prange(n * height):
        f = unit // height
        y = unit % height
        for x in range(width):
            t = tri_id[f, y, x]
            if t < 0:
                for k in range(c):
                    out[f, y, x, k] = 0.0
                continue
            a, b, d, b0, b1, b2 = _corners(faces, bary, t, f, y, x)
            for k in range(c):
                out[f, y, x, k] = b0 * attr[a, k] + b1 * attr[b, k] + b2 * attr[d, k]


@njit(parallel=True, cache=True)
def _raster_kernel(verts, faces, height, width, near, bands, cull, tri_id, bary, depth):
    n = verts.shape[0]
    band_h = (height + bands - 1) // bands
    for unit in prange(n * bands):
        f = unit // bands
        r0 = (unit % bands) * band_h
        _raster_band(verts, faces, f, r0, min(height, r0 + band_h), width, near, cull, tri_id,
                     bary, depth)


@njit(parallel=True, cache=True)
def _shade_kernel(tri_id, bary, faces, dense_attr, labels, ref_colors, ref_valid,
                  dense, semantic, warped, warped_valid):
    n, height, width = tri_id.shape
    for unit in prange(n):
        _shade_rows(tri_id, bary, faces, dense_attr, labels, ref_colors, ref_valid, unit, 0,
                    height, dense, semantic, warped, warped_valid)


@njit(parallel=True, cache=True)
def _raster_shade_kernel(verts, faces, height, width, near, bands, cull, tri_id, bary, depth,
                         dense_attr, labels, ref_colors, ref_valid,
                         dense, semantic, warped, warped_valid):
    """Rasterize and shade in ONE parallel region: a band is final once all triangles went
    through it, so it is shaded right away while it is in cache (and the threads meet once)."""
    n = verts.shape[0]
    band_h = (height + bands - 1) // bands
    for unit in prange(n * bands):
        f = unit // bands
        r0 = (unit % bands) * band_h
        r1 = min(height, r0 + band_h)
        _raster_band(verts, faces, f, r0, r1, width, near, cull, tri_id, bary, depth)
        _shade_rows(tri_id, bary, faces, dense_attr, labels, ref_colors, ref_valid, f, r0, r1,
                    dense, semantic, warped, warped_valid)


@njit(cache=True)
def _shade_rows(tri_id, bary, faces, dense_attr, labels, ref_colors, ref_valid, f, r0, r1,
                dense, semantic, warped, warped_valid):
    """All three control maps for rows r0..r1-1 of frame f in one pass over the pixels.

    A warped pixel gets a colour only when all three vertices of its triangle had one in the
    reference photo; otherwise colour 0 and warped_valid False.
    """
    width = tri_id.shape[2]
    for y in range(r0, r1):
        for x in range(width):
            t = tri_id[f, y, x]
            if t < 0:
                semantic[f, y, x] = 0
                warped_valid[f, y, x] = False
                for k in range(3):
                    dense[f, y, x, k] = 0.0
                    warped[f, y, x, k] = 0.0
                continue
            a, b, d, b0, b1, b2 = _corners(faces, bary, t, f, y, x)
            semantic[f, y, x] = labels[t]
            ok = ref_valid[a] and ref_valid[b] and ref_valid[d]
            warped_valid[f, y, x] = ok
            for k in range(3):
                dense[f, y, x, k] = b0 * dense_attr[a, k] + b1 * dense_attr[b, k] + b2 * dense_attr[d, k]
                if ok:
                    warped[f, y, x, k] = b0 * ref_colors[a, k] + b1 * ref_colors[b, k] + b2 * ref_colors[d, k]
                else:
                    warped[f, y, x, k] = 0.0


@njit(cache=True)
def _project_kernel(world, rot, trans, focal, cx, cy, out):
    """World points -> (pixel x, pixel y, camera z); points at z == 0 keep z = 0 (near drops them)."""
    n, nv = world.shape[0], world.shape[1]
    for unit in range(n):   # serial: ~1 us per 1k vertices, less than a parallel region's start
        for v in range(nv):
            x = world[unit, v, 0]
            y = world[unit, v, 1]
            z = world[unit, v, 2]
            cxx = rot[0, 0] * x + rot[0, 1] * y + rot[0, 2] * z + trans[0]
            cyy = rot[1, 0] * x + rot[1, 1] * y + rot[1, 2] * z + trans[1]
            czz = rot[2, 0] * x + rot[2, 1] * y + rot[2, 2] * z + trans[2]
            iz = 1.0 / czz if czz != 0.0 else 0.0
            out[unit, v, 0] = focal * cxx * iz + cx
            out[unit, v, 1] = focal * cyy * iz + cy
            out[unit, v, 2] = czz


# ----------------------------------------------------------------------------- API

def project_points(world, rotation, translation, focal: float, center) -> np.ndarray:
    """World points [n,V,3] with camera X_cam = R X + t and a pinhole (focal, centre) in pixels
    -> [n,V,3] float32 (pixel x, pixel y, camera z), the rasterizer's input. (The torch version
    of this 12-flop map costs several ms per frame in dispatch overhead.)"""
    w = _as_verts(world)
    r = np.ascontiguousarray(np.asarray(rotation, dtype=np.float64).reshape(3, 3))
    t = np.ascontiguousarray(np.asarray(translation, dtype=np.float64).reshape(3))
    out = np.empty_like(w)
    _project_kernel(w, r, t, float(focal), float(center[0]), float(center[1]), out)
    return out


def _as_verts(verts) -> np.ndarray:
    v = verts.detach().cpu().numpy() if hasattr(verts, "detach") else np.asarray(verts)
    v = np.ascontiguousarray(v, dtype=np.float32)
    if v.ndim == 2:
        v = v[None]
    if v.ndim != 3 or v.shape[2] != 3:
        raise ValueError(f"projected vertices must be [n,V,3] (x, y, depth), got {v.shape}")
    return v


def _as_faces(faces, num_vertices: int) -> np.ndarray:
    f = faces.detach().cpu().numpy() if hasattr(faces, "detach") else np.asarray(faces)
    f = np.ascontiguousarray(f, dtype=np.int32)
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"faces must be [F,3], got {f.shape}")
    if f.size and (f.min() < 0 or f.max() >= num_vertices):
        raise ValueError(f"faces index vertices outside 0..{num_vertices - 1}")
    return f


def rasterize(verts, faces, width: int, height: int, near: float = 1e-3,
              backend: str = "numba", cull_backfaces: bool = False) -> Fragments:
    """Projected vertices [n,V,3] (pixel x, pixel y, camera z) + faces [F,3] -> Fragments.

    cull_backfaces drops triangles facing away from the camera, for meshes wound
    counter-clockwise seen from outside (SMPL-X's convention): with y down that is a positive
    signed screen area. Only for closed, consistently wound meshes; it halves the setup work.
    """
    if width < 1 or height < 1:
        raise ValueError(f"image size must be at least 1x1, got {width}x{height}")
    v = _as_verts(verts)
    f = _as_faces(faces, v.shape[1])
    if backend == "pytorch3d":
        return _rasterize_pytorch3d(v, f, width, height, near, cull_backfaces)
    if backend != "numba":
        raise ValueError(f"unknown rasterizer backend {backend!r} (expected one of {BACKENDS})")
    n = v.shape[0]
    bands = _bands(n, height)
    tri_id = np.empty((n, height, width), np.int32)
    bary = np.empty((n, height, width, 3), np.float32)
    depth = np.empty((n, height, width), np.float32)
    _raster_kernel(v, f, height, width, float(near), bands, bool(cull_backfaces), tri_id,
                   bary, depth)
    return Fragments(tri_id, bary, depth, f)


def vertex_visibility(verts, faces, frags: Fragments, near: float = 1e-3,
                      rel_tol: float = 2e-3) -> np.ndarray:
    """[n,V] bool: the vertex lies on the front surface seen by the camera.

    A vertex is visible if a triangle using it won a pixel, or (for vertices of triangles too
    small to cover a pixel centre) if its depth is within `rel_tol` (relative; 2e-3 = 5 mm at
    2.5 m, less than the lips-to-mouth-interior gap) of the z-buffer at its pixel.
    """
    v = _as_verts(verts)
    f = _as_faces(faces, v.shape[1])
    vis = np.zeros(v.shape[:2], np.bool_)
    _visibility_kernel(v, f, frags.tri_id, frags.depth, float(near), float(rel_tol), vis)
    return vis


def interpolate(frags: Fragments, attr, faces=None) -> np.ndarray:
    """Per-vertex attributes [V,C] -> per-pixel [n,H,W,C] with the barycentrics (0 off the body).

    faces defaults to the faces the fragments were rasterized with."""
    a = np.ascontiguousarray(np.asarray(attr), dtype=np.float32)
    if a.ndim == 1:
        a = a[:, None]
    f = _as_faces(frags.faces if faces is None else faces, a.shape[0])
    out = np.empty(frags.tri_id.shape + (a.shape[1],), np.float32)
    _interp_kernel(frags.tri_id, frags.bary, f, a, out)
    return out


def face_label_map(frags: Fragments, face_labels) -> np.ndarray:
    """Per-face labels [F] -> per-pixel [n,H,W] uint8, 0 on the background."""
    lab = np.concatenate([[0], np.asarray(face_labels, dtype=np.uint8)])
    return lab[frags.tri_id + 1]


def rasterize_shade(verts, faces, width: int, height: int, dense_attr, face_labels, ref_colors,
                    ref_valid, near: float = 1e-3, cull_backfaces: bool = False):
    """rasterize() + shade() fused in one parallel pass (each band is shaded as soon as it is
    final). Returns (Fragments, dense, semantic, warped, warped_valid) as shade() does."""
    v = _as_verts(verts)
    f = _as_faces(faces, v.shape[1])
    d, lab, rc, rv = _shade_inputs(f, dense_attr, face_labels, ref_colors, ref_valid)
    if d.shape[0] != v.shape[1]:
        raise ValueError(f"{d.shape[0]} vertex colours for {v.shape[1]} vertices")
    n = v.shape[0]
    bands = _bands(n, height)
    shape = (n, height, width)
    tri_id, depth = np.empty(shape, np.int32), np.empty(shape, np.float32)
    bary = np.empty(shape + (3,), np.float32)
    dense, warped = np.empty(shape + (3,), np.float32), np.empty(shape + (3,), np.float32)
    semantic, valid = np.empty(shape, np.uint8), np.empty(shape, np.bool_)
    _raster_shade_kernel(v, f, height, width, float(near), bands, bool(cull_backfaces), tri_id,
                         bary, depth, d, lab, rc, rv, dense, semantic, warped, valid)
    return Fragments(tri_id, bary, depth, f), dense, semantic, warped, valid


def _bands(n: int, height: int) -> int:
    """Enough (frame, band) units to keep every thread busy; bands of >= 8 rows."""
    threads = get_num_threads()
    return 1 if n >= threads else max(1, min(threads, height // 8))


def _shade_inputs(f, dense_attr, face_labels, ref_colors, ref_valid):
    d = np.ascontiguousarray(dense_attr, dtype=np.float32)
    lab = np.ascontiguousarray(face_labels, dtype=np.uint8)
    rc = np.ascontiguousarray(ref_colors, dtype=np.float32)
    rv = np.ascontiguousarray(ref_valid, dtype=np.bool_)
    if (d.ndim != 2 or d.shape[1] != 3 or lab.shape != (f.shape[0],) or rc.shape != d.shape
            or rv.shape != (d.shape[0],)):
        raise ValueError(f"shade: dense colours {d.shape}, labels {lab.shape}, ref colours "
                         f"{rc.shape}, ref valid {rv.shape} do not match {f.shape[0]} faces")
    if f.size and f.max() >= d.shape[0]:
        raise ValueError(f"faces index vertices beyond the {d.shape[0]} vertex colours")
    return d, lab, rc, rv


def shade(frags: Fragments, dense_attr, face_labels, ref_colors, ref_valid, faces=None):
    """Dense map, semantic index map, warped reference and its validity in one pass.

    Returns (dense [n,H,W,3] f32, semantic [n,H,W] u8, warped [n,H,W,3] f32, warped_valid bool).
    """
    d = np.asarray(dense_attr)
    f = _as_faces(frags.faces if faces is None else faces, d.shape[0])
    d, lab, rc, rv = _shade_inputs(f, dense_attr, face_labels, ref_colors, ref_valid)
    shape = frags.tri_id.shape
    dense = np.empty(shape + (3,), np.float32)
    semantic = np.empty(shape, np.uint8)
    warped = np.empty(shape + (3,), np.float32)
    valid = np.empty(shape, np.bool_)
    _shade_kernel(frags.tri_id, frags.bary, f, d, lab, rc, rv, dense, semantic, warped, valid)
    return dense, semantic, warped, valid


def pytorch3d_available() -> bool:
    try:
        import pytorch3d.renderer  # noqa: F401
        return True
    except Exception:
        return False


def _rasterize_pytorch3d(v: np.ndarray, f: np.ndarray, width: int, height: int,
                         near: float, cull: bool) -> Fragments:
    """The same fragments from pytorch3d's rasterize_meshes (only when it is importable)."""
    try:
        import torch
        from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
        from pytorch3d.structures import Meshes
    except Exception as e:
        raise RuntimeError("backend='pytorch3d' needs pytorch3d, which is not importable here "
                           f"({e}); use backend='numba'") from e
    # pytorch3d's NDC: +x left, +y up, the shorter side spans [-1, 1]; pixel centres match ours.
    s = min(width, height) / 2.0
    pts = torch.from_numpy(v.copy())
    ndc = torch.stack([-(pts[..., 0] - width / 2) / s, -(pts[..., 1] - height / 2) / s,
                       pts[..., 2]], -1)
    faces = torch.from_numpy(f.astype(np.int64))
    meshes = Meshes(verts=list(ndc), faces=[faces] * len(ndc))
    p2f, zbuf, bary, _ = rasterize_meshes(meshes, image_size=(height, width), faces_per_pixel=1,
                                          perspective_correct=True, cull_backfaces=cull)
    nf = f.shape[0]
    tri = p2f[..., 0].numpy().astype(np.int32)
    tri = np.where(tri >= 0, tri % nf, -1).astype(np.int32)
    z = zbuf[..., 0].numpy().astype(np.float32)
    b = bary[..., 0, :].numpy().astype(np.float32)
    # drop triangles with a vertex before the near plane, as the numba backend does
    bad = (v[:, :, 2] < near)[:, f].any(-1)                      # [n,F]
    for i in range(len(tri)):
        m = (tri[i] >= 0) & bad[i][np.maximum(tri[i], 0)]
        tri[i][m] = -1
    z = np.where(tri >= 0, z, np.inf).astype(np.float32)
    b = np.where((tri >= 0)[..., None], b, 0).astype(np.float32)
    return Fragments(tri, b, z, f)


def warm_up() -> None:
    """Compile (or load from the cache) every kernel on a one-triangle scene."""
    v = np.array([[[1.0, 1.0, 1.0], [7.0, 1.0, 1.0], [1.0, 7.0, 1.0]]], np.float32)
    f = np.array([[0, 1, 2]], np.int32)
    fr = rasterize(v, f, 8, 8)
    vertex_visibility(v, f, fr)
    interpolate(fr, np.eye(3, dtype=np.float32))
    shade(fr, np.eye(3, dtype=np.float32), np.ones(1, np.uint8), np.eye(3, dtype=np.float32),
          np.ones(3, np.bool_))
    rasterize_shade(v, f, 8, 8, np.eye(3, dtype=np.float32), np.ones(1, np.uint8),
                    np.eye(3, dtype=np.float32), np.ones(3, np.bool_))

