"""Numba kernels of the frame compositor's per-pixel work (one pass each, rows in parallel)."""
from __future__ import annotations

from numba import njit, prange


@njit(cache=True, inline="always")
def _bilinear(img, x, y, c, clamp):
    """img [H,W,C] sampled at index coordinates (x, y); clamp: replicate the border, else 0."""
    h, w = img.shape[0], img.shape[1]
    if not clamp and (x < -1.0 or y < -1.0 or x > w or y > h):
        return 0.0
    x = min(max(x, 0.0), w - 1.0)
    y = min(max(y, 0.0), h - 1.0)
    x0, y0 = int(x), int(y)
    x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
    fx, fy = x - x0, y - y0
    top = img[y0, x0, c] * (1 - fx) + img[y0, x1, c] * fx
    bot = img[y1, x0, c] * (1 - fx) + img[y1, x1, c] * fx
    return top * (1 - fy) + bot * fy


@njit(parallel=True, cache=True)
def known_flow(tri, attrs, face_labels, identity, out, labels):
    """From one frame's raster (tri [H,W] triangle ids, attrs [H,W,3] = photo x, photo y,
    seen-in-photo): out [H,W,3] = (flow x * known, flow y * known, known), the input of the
    flow extension, and labels [H,W] the semantic part of each pixel (0 = background)."""
    h, w = tri.shape
    for y in prange(h):
        for x in range(w):
            t = tri[y, x]
            labels[y, x] = face_labels[t] if t >= 0 else 0
            if t >= 0 and attrs[y, x, 2] > 0.999:
                out[y, x, 0] = attrs[y, x, 0] - identity[y, x, 0]
                out[y, x, 1] = attrs[y, x, 1] - identity[y, x, 1]
                out[y, x, 2] = 1.0
            else:
                out[y, x, 0] = 0.0
                out[y, x, 1] = 0.0
                out[y, x, 2] = 0.0


@njit(parallel=True, cache=True)
def warp_composite(tri, attrs, identity, flow, near, photo, person_mask, plate, out):
    """Each output pixel samples the photo where its surface point was (body pixels seen in
    the photo) or along the filled flow (flow [H,W,2]: compositor.fill_flow, faded out where
    near [H,W], compositor.near_body, drops below 0.05), and composites the person over the
    background plate."""
    h, w = tri.shape
    for y in prange(h):
        for x in range(w):
            if tri[y, x] >= 0 and attrs[y, x, 2] > 0.999:
                mx, my = attrs[y, x, 0], attrs[y, x, 1]
            else:
                a = min(1.0, near[y, x] / 0.05)
                mx = identity[y, x, 0] + a * flow[y, x, 0]
                my = identity[y, x, 1] + a * flow[y, x, 1]
            pa = _bilinear(person_mask, mx, my, 0, False)
            # a soft edge on the body itself (3x3 average of coverage)
            cov = 0.0
            for dy in range(-1, 2):
                for dx in range(-1, 2):
                    yy, xx = min(max(y + dy, 0), h - 1), min(max(x + dx, 0), w - 1)
                    cov += 1.0 if tri[yy, xx] >= 0 else 0.0
            pa = max(pa, cov / 9.0)
            for c in range(3):
                col = _bilinear(photo, mx, my, c, True)
                v = plate[y, x, c] * (1.0 - pa) + col * pa
                out[y, x, c] = min(max(v, 0.0), 1.0)


@njit(parallel=True, cache=True)
def smooth_edges(groups, src, dst):
    """dst = src, except on the pixels where the layer (groups [H,W], 0 = none) changes to a
    4-neighbour's other layer: there a 3x3 Gaussian (1-2-1) of src (anti-aliased occlusion
    edges; the raster has one sample per pixel)."""
    h, w = groups.shape
    for y in prange(h):
        for x in range(w):
            g = groups[y, x]
            edge = False
            if g > 0:
                for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < h and 0 <= xx < w and groups[yy, xx] > 0 and groups[yy, xx] != g:
                        edge = True
            for c in range(3):
                if not edge:
                    dst[y, x, c] = src[y, x, c]
                    continue
                acc, wsum = 0.0, 0.0
                for dy in range(-1, 2):
                    for dx in range(-1, 2):
                        yy, xx = min(max(y + dy, 0), h - 1), min(max(x + dx, 0), w - 1)
                        k = (2.0 - abs(dy)) * (2.0 - abs(dx))
                        acc += k * src[yy, xx, c]
                        wsum += k
                dst[y, x, c] = acc / wsum
