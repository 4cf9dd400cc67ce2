"""The numba rasterizer: fill rule, depth test, perspective-correct barycentrics, visibility,
and equality with a slow per-pixel reference implementation on random meshes."""
import numpy as np
import pytest

from vlogger_core.render import rasterizer as R


def slow_rasterize(v, f, w, h, near=1e-3):
    """Per-pixel reference: for every pixel centre test every triangle (exact top-left rule)."""
    n = v.shape[0]
    tri = -np.ones((n, h, w), np.int32)
    bary = np.zeros((n, h, w, 3))
    depth = np.full((n, h, w), np.inf)
    for fi in range(n):
        for t, (a, b, c) in enumerate(f):
            P = v[fi, [a, b, c]].astype(np.float64)
            if (P[:, 2] < near).any():
                continue
            area = (P[1, 0] - P[0, 0]) * (P[2, 1] - P[0, 1]) - (P[1, 1] - P[0, 1]) * (P[2, 0] - P[0, 0])
            if area == 0:
                continue
            order = [0, 1, 2] if area > 0 else [0, 2, 1]
            Q = P[order]
            area = abs(area)
            for y in range(h):
                for x in range(w):
                    p = (x + 0.5, y + 0.5)
                    ws = []
                    ok = True
                    for k in range(3):
                        s, e = Q[(k + 1) % 3], Q[(k + 2) % 3]
                        wk = (e[0] - s[0]) * (p[1] - s[1]) - (e[1] - s[1]) * (p[0] - s[0])
                        dy, dx = e[1] - s[1], e[0] - s[0]
                        tl = dy < 0 or (dy == 0 and dx > 0)
                        if not (wk > 0 or (wk == 0 and tl)):
                            ok = False
                            break
                        ws.append(wk / area)
                    if not ok:
                        continue
                    q = np.array(ws) / Q[:, 2]
                    z = 1 / q.sum()
                    if z < depth[fi, y, x]:
                        depth[fi, y, x] = z
                        tri[fi, y, x] = t
                        bb = q / q.sum()
                        bary[fi, y, x, order] = bb
    return tri, bary, depth


def test_right_triangle_covers_expected_pixels_with_top_left_rule():
    # Legs along the top and left edges; the hypotenuse x + y = 4 passes exactly through the
    # centres of pixels with x + y = 3: those lie on a right edge and must NOT be covered.
    v = np.array([[[0, 0, 1], [4, 0, 1], [0, 4, 1]]], np.float32)
    f = np.array([[0, 1, 2]], np.int32)
    fr = R.rasterize(v, f, 6, 6)
    expected = np.array([[x + y < 3 for x in range(6)] for y in range(6)])
    assert np.array_equal(fr.tri_id[0] == 0, expected)
    # the same triangle with the other winding covers the same pixels
    fr2 = R.rasterize(v, f[:, [0, 2, 1]], 6, 6)
    assert np.array_equal(fr2.tri_id[0] == 0, expected)


def test_shared_edge_pixels_are_covered_exactly_once():
    # A square split along its diagonal, whose line passes through pixel centres: every pixel
    # of the square belongs to exactly one of the two triangles (no gaps, no double coverage).
    v = np.array([[[1, 1, 1], [5, 1, 1], [5, 5, 1], [1, 5, 1]]], np.float32)
    f = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    # count per-triangle coverage separately so double coverage would show
    a = R.rasterize(v, f[:1], 7, 7).tri_id[0] >= 0
    b = R.rasterize(v, f[1:], 7, 7).tri_id[0] >= 0
    assert not (a & b).any()
    square = np.zeros((7, 7), bool)
    square[1:5, 1:5] = True
    assert np.array_equal(a | b, square)


def test_depth_test_picks_the_nearer_triangle_in_either_order():
    near = [[0, 0, 2.0], [8, 0, 2.0], [0, 8, 2.0]]
    far = [[0, 0, 5.0], [8, 0, 5.0], [0, 8, 5.0]]
    f = np.array([[0, 1, 2], [3, 4, 5]], np.int32)
    for verts, nearer in ((near + far, 0), (far + near, 1)):
        fr = R.rasterize(np.array([verts], np.float32), f, 8, 8)
        inside = fr.tri_id[0] >= 0
        assert inside.sum() > 10
        assert (fr.tri_id[0][inside] == nearer).all()
        assert np.allclose(fr.depth[0][inside], 2.0)
        assert np.isinf(fr.depth[0][~inside]).all()


def test_barycentrics_are_perspective_correct_on_a_tilted_quad():
    # A quad in 3D tilted away from a pinhole camera (f=40, centre 32): interpolating the
    # vertices' 3D positions with the barycentrics must give points ON the plane that project
    # back to the pixel centre (screen-space/affine weights would fail this by ~1 px).
    f_px, c = 40.0, 32.0
    world = np.array([[-1, -1, 2.0], [1, -1, 2.0], [1, 1, 6.0], [-1, 1, 6.0]])
    proj = np.stack([f_px * world[:, 0] / world[:, 2] + c, f_px * world[:, 1] / world[:, 2] + c,
                     world[:, 2]], 1)[None].astype(np.float32)
    faces = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    fr = R.rasterize(proj, faces, 64, 64)
    pos = R.interpolate(fr, world.astype(np.float32))[0]
    ys, xs = np.nonzero(fr.tri_id[0] >= 0)
    assert len(xs) > 200
    p = pos[ys, xs]
    u = f_px * p[:, 0] / p[:, 2] + c
    v = f_px * p[:, 1] / p[:, 2] + c
    assert np.abs(u - (xs + 0.5)).max() < 1e-3
    assert np.abs(v - (ys + 0.5)).max() < 1e-3
    assert np.allclose(p[:, 2], fr.depth[0][ys, xs], rtol=1e-4)
    # and the affine (non-corrected) weights would indeed be wrong here
    affine_err = []
    for y, x in zip(ys[::7], xs[::7]):
        t = fr.tri_id[0, y, x]
        a, b, d = proj[0, faces[t], :2].astype(np.float64)
        m = np.array([[a[0] - d[0], b[0] - d[0]], [a[1] - d[1], b[1] - d[1]]])
        l01 = np.linalg.solve(m, np.array([x + 0.5 - d[0], y + 0.5 - d[1]]))
        l = np.array([l01[0], l01[1], 1 - l01.sum()])
        affine_err.append(np.abs(l - fr.bary[0, y, x]).max())
    assert max(affine_err) > 0.02


def test_near_plane_drops_triangles_with_a_vertex_behind_it():
    v = np.array([[[0, 0, 1], [8, 0, 1], [0, 8, -1]]], np.float32)
    fr = R.rasterize(v, np.array([[0, 1, 2]], np.int32), 8, 8)
    assert (fr.tri_id == -1).all()


def test_hidden_vertex_is_not_visible():
    # a small triangle behind a big one: its vertices are hidden; the big one's are visible
    big = [[-10, -10, 1.0], [30, -10, 1.0], [-10, 30, 1.0]]
    small = [[4, 4, 3.0], [8, 4, 3.0], [4, 8, 3.0]]
    v = np.array([big + small], np.float32)
    f = np.array([[0, 1, 2], [3, 4, 5]], np.int32)
    fr = R.rasterize(v, f, 16, 16)
    vis = R.vertex_visibility(v, f, fr)[0]
    assert not vis[3:].any()
    # big triangle's vertices are outside the image: off-screen but their triangle won pixels
    assert vis[:3].all()
    # remove the occluder: the small triangle's vertices become visible
    fr2 = R.rasterize(v, f[1:], 16, 16)
    assert R.vertex_visibility(v, f[1:], fr2)[0][3:].all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numba_matches_slow_reference_on_random_meshes(seed):
    rng = np.random.default_rng(seed)
    n, nv, nf, w, h = 2, 30, 25, 23, 17
    v = np.concatenate([rng.uniform(-3, 26, (n, nv, 2)), rng.uniform(0.5, 4, (n, nv, 1))], 2)
    # quantise to quarter pixels so many centres land exactly on edges (exercises the fill rule)
    v[..., :2] = np.round(v[..., :2] * 4) / 4
    v = v.astype(np.float32)
    f = rng.integers(0, nv, (nf, 3)).astype(np.int32)
    fr = R.rasterize(v, f, w, h)
    tri, bary, depth = slow_rasterize(v, f, w, h)
    assert np.array_equal(fr.tri_id, tri)
    assert np.allclose(fr.bary, bary, atol=1e-5)
    assert np.allclose(fr.depth, depth, rtol=1e-5)
    # the single-frame (row-band) path gives the same as the batch (frame) path
    one = R.rasterize(v[1:], f, w, h)
    assert np.array_equal(one.tri_id[0], fr.tri_id[1])


def test_shade_matches_interpolate_and_labels():
    rng = np.random.default_rng(3)
    v = np.concatenate([rng.uniform(0, 32, (1, 40, 2)), rng.uniform(1, 3, (1, 40, 1))], 2)
    v = v.astype(np.float32)
    f = rng.integers(0, 40, (30, 3)).astype(np.int32)
    fr = R.rasterize(v, f, 32, 32)
    col = rng.random((40, 3)).astype(np.float32)
    ref = rng.random((40, 3)).astype(np.float32)
    valid = rng.random(40) > 0.3
    labels = rng.integers(1, 9, 30).astype(np.uint8)
    dense, sem, warped, wvalid = R.shade(fr, col, labels, ref, valid)
    assert np.allclose(dense, R.interpolate(fr, col), atol=1e-6)
    assert np.array_equal(sem, R.face_label_map(fr, labels))
    body = fr.tri_id >= 0
    all_valid = valid[f].all(1)
    assert np.array_equal(wvalid, body & all_valid[np.maximum(fr.tri_id, 0)])
    assert np.allclose(warped[wvalid], R.interpolate(fr, ref)[wvalid], atol=1e-6)
    assert (warped[~wvalid] == 0).all() and (dense[~body] == 0).all()
    assert wvalid.any() and (body & ~wvalid).any()


def test_bad_inputs_are_rejected():
    v = np.zeros((1, 3, 3), np.float32)
    with pytest.raises(ValueError, match="faces index"):
        R.rasterize(v, np.array([[0, 1, 3]]), 4, 4)
    with pytest.raises(ValueError, match="backend"):
        R.rasterize(v, np.array([[0, 1, 2]]), 4, 4, backend="opengl")
    if not R.pytorch3d_available():
        with pytest.raises(RuntimeError, match="pytorch3d"):
            R.rasterize(v, np.array([[0, 1, 2]]), 4, 4, backend="pytorch3d")


def test_backface_culling_drops_clockwise_seen_triangles_only():
    # world CCW seen from the camera = negative screen area with y down = front face
    front = np.array([[[0, 0, 1], [0, 8, 1], [8, 0, 1]]], np.float32)   # area < 0
    back = front[:, [0, 2, 1]]
    f = np.array([[0, 1, 2]], np.int32)
    assert (R.rasterize(front, f, 8, 8, cull_backfaces=True).tri_id == 0).sum() > 20
    assert (R.rasterize(back, f, 8, 8, cull_backfaces=True).tri_id == -1).all()
    assert (R.rasterize(back, f, 8, 8).tri_id == 0).sum() > 20


def test_fused_raster_shade_equals_separate_passes():
    rng = np.random.default_rng(5)
    v = np.concatenate([rng.uniform(-2, 40, (3, 60, 2)), rng.uniform(1, 3, (3, 60, 1))], 2)
    v = v.astype(np.float32)
    f = rng.integers(0, 60, (80, 3)).astype(np.int32)
    col = rng.random((60, 3)).astype(np.float32)
    ref = rng.random((60, 3)).astype(np.float32)
    valid = rng.random(60) > 0.3
    labels = rng.integers(1, 9, 80).astype(np.uint8)
    for frames in (v, v[:1]):   # batch path and single-frame band path
        fr, *maps = R.rasterize_shade(frames, f, 37, 29, col, labels, ref, valid)
        ref_fr = R.rasterize(frames, f, 37, 29)
        assert np.array_equal(fr.tri_id, ref_fr.tri_id) and np.array_equal(fr.bary, ref_fr.bary)
        for a, b in zip(maps, R.shade(ref_fr, col, labels, ref, valid)):
            assert np.array_equal(a, b)
