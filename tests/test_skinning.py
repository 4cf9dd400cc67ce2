"""The sparse numba skinning equals the body's own (smplx) forward on random poses/expressions."""
import pytest
import torch

from vlogger_core.motion.params import axis_angle_to_matrix


def test_sparse_skinning_equals_body_forward():
    bm = pytest.importorskip("vlogger_core.body.model")
    try:
        body = bm.load_body(bm.DEFAULT_BODY, "cpu")
    except Exception as e:
        pytest.skip(f"default body not loadable: {e}")
    from vlogger_core.body.skinning import skin_vertices
    g = torch.Generator().manual_seed(0)
    n = 5
    args = (torch.randn(n, body.num_betas, generator=g),
            0.3 * torch.randn(n, 3, generator=g),
            torch.randn(n, 3, generator=g),
            axis_angle_to_matrix(0.4 * torch.randn(n, 55, 3, generator=g)),
            torch.rand(n, body.num_expression, generator=g))
    want = body.forward(*args)["vertices"]
    got = skin_vertices(body, *args)
    assert got.shape == want.shape
    assert (got - want).abs().max() < 1e-4
    # the poses really move the body (the comparison is not between two rest meshes)
    assert (want - body.template_vertices()).abs().max() > 0.05
