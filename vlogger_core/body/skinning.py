"""Fast CPU blend shapes + linear blend skinning for many frames (numba), for posing speed.

smplx's forward does, per frame, a dense [V,55] x [55,16] weight product and a [V*3, L] shape
product through generic torch kernels; on a shared 2-core CPU that is 5-15 ms per frame for the
13.7k-vertex body, more than rasterizing. Skinning weights are sparse (the shipped body has at
most 7 joints per vertex, 1.9 on average), so this kernel keeps only the non-zero weights and
fuses shape blending and skinning in one pass over the vertices:

    v_shaped[v] = template[v] + sum_l coeffs[l] * dirs[v, :, l]
    T[v]        = sum_k w[v,k] * A[joint[v,k]]               (A: [55, 3, 4] world transforms)
    out[v]      = T[v, :, :3] @ v_shaped[v] + T[v, :, 3]

The joint transforms A (a 55-joint chain, cheap) still come from smplx.lbs.batch_rigid_transform,
so the result equals smplx's own LBS (pose-corrective blend shapes are NOT applied: use this
only when posedirs are all zero, as in the shipped Anny bake).
"""
from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange


@njit(parallel=True, cache=True)
def _blend_skin_kernel(template, dirs, coeffs, w_idx, w_val, A, out):
    n = coeffs.shape[0]
    nv = template.shape[0]
    nl = dirs.shape[2]
    kmax = w_idx.shape[1]
    for unit in prange(n):
        for v in range(nv):
            x = template[v, 0]
            y = template[v, 1]
            z = template[v, 2]
            for l in range(nl):
                c = coeffs[unit, l]
                if c != 0.0:
                    x += c * dirs[v, 0, l]
                    y += c * dirs[v, 1, l]
                    z += c * dirs[v, 2, l]
            for r in range(3):
                t0 = 0.0
                t1 = 0.0
                t2 = 0.0
                t3 = 0.0
                for k in range(kmax):
                    wk = w_val[v, k]
                    if wk == 0.0:
                        break
                    j = w_idx[v, k]
                    t0 += wk * A[unit, j, r, 0]
                    t1 += wk * A[unit, j, r, 1]
                    t2 += wk * A[unit, j, r, 2]
                    t3 += wk * A[unit, j, r, 3]
                out[unit, v, r] = t0 * x + t1 * y + t2 * z + t3


class SparseSkinner:
    """Precomputed sparse weights and blend directions of one body (build once, reuse)."""

    def __init__(self, template: torch.Tensor, blend_dirs: torch.Tensor, weights: torch.Tensor,
                 tol: float = 0.0):
        self.template = np.ascontiguousarray(template.detach().cpu().numpy(), np.float32)
        self.dirs = np.ascontiguousarray(blend_dirs.detach().cpu().numpy(), np.float32)  # [V,3,L]
        w = weights.detach().cpu().numpy().astype(np.float32)
        k = max(1, int((w > tol).sum(1).max()))
        order = np.argsort(-w, axis=1)[:, :k]
        val = np.take_along_axis(w, order, 1)
        val[val <= tol] = 0.0                       # zeros sort last: the kernel stops at them
        self.w_idx = np.ascontiguousarray(order, np.int32)
        self.w_val = np.ascontiguousarray(val, np.float32)

    def __call__(self, coeffs: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
        """coeffs [n,L] (betas then expression), transforms [n,J,4,4] -> vertices [n,V,3]."""
        c = np.ascontiguousarray(coeffs.detach().cpu().numpy(), np.float32)
        A = np.ascontiguousarray(transforms.detach().cpu().numpy()[:, :, :3, :], np.float32)
        if c.shape[1] != self.dirs.shape[2]:
            raise ValueError(f"{c.shape[1]} blend coefficients for {self.dirs.shape[2]} directions")
        out = np.empty((c.shape[0], self.template.shape[0], 3), np.float32)
        _blend_skin_kernel(self.template, self.dirs, c, self.w_idx, self.w_val, A, out)
        return torch.from_numpy(out)


_SKINNERS: dict[int, tuple] = {}


def _skinner_of(body):
    """(SparseSkinner, joint template [J,3], joint blend dirs [L, J*3]) of a BodyModel, cached."""
    key = id(body.smplx)
    hit = _SKINNERS.get(key)
    if hit is None or hit[0] is not body.smplx:
        m = body.smplx
        dirs = torch.cat([m.shapedirs, m.expr_dirs], -1).detach().cpu().float()   # [V,3,L]
        jreg = m.J_regressor.detach().cpu().float()
        j_dirs = torch.einsum("jv,vkl->ljk", jreg, dirs).reshape(dirs.shape[-1], -1)
        j_t = jreg @ m.v_template.detach().cpu().float()
        hit = (m, SparseSkinner(m.v_template, dirs, m.lbs_weights), j_t, j_dirs)
        _SKINNERS[key] = hit
    return hit[1:]


def skin_vertices(body, betas, global_orient, transl, full_pose, expression) -> torch.Tensor:
    """The vertices BodyModel.forward returns (same arguments, all batched [B,...]), through
    the sparse numba kernel. Only for bodies without pose correctives (posedirs all zero)."""
    from smplx.lbs import batch_rigid_transform

    from ..motion.params import axis_angle_to_matrix

    if getattr(body, "_zero_posedirs", False) is not True:
        raise ValueError("skin_vertices skips pose-corrective blend shapes; this body has them")
    skinner, j_t, j_dirs = _skinner_of(body)
    f32 = dict(device="cpu", dtype=torch.float32)
    rot = full_pose.to(**f32)
    n = rot.shape[0]
    R0 = axis_angle_to_matrix(global_orient.to(**f32)).expand(n, 3, 3)
    rot = torch.cat([(R0 @ rot[:, 0])[:, None], rot[:, 1:]], dim=1)
    coeffs = torch.cat([betas.to(**f32).expand(n, -1), expression.to(**f32).expand(n, -1)], 1)
    joints = (j_t.reshape(1, -1) + coeffs @ j_dirs).view(n, -1, 3)
    _, A = batch_rigid_transform(rot, joints, body.smplx.parents.cpu(), dtype=torch.float32)
    return skinner(coeffs, A) + transl.to(**f32).reshape(-1, 1, 3)
