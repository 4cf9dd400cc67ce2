"""The default talking-video path: motion -> posed body -> rasterized controls -> frames -> MP4.

`TalkingVideoRenderer` holds everything that is computed once per reference (reference vertex
positions in the photo, their visibility, the compositor's person mask and plate) and renders any
range of frames of a motion; `render_windows` yields frames window by window, so a 10-minute
video streams into the MP4 writer with flat memory.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from . import control_maps, rasterizer
from .body_model import BodyModel
from .callbacks import Interrupt, Progress, check, report
from .frame_compositor import composite_frame, prepare_reference
from .motion_params import Motion
from .reference_fit import ReferenceFit
from .video_writer import StreamingMP4Writer


def output_size(fit: ReferenceFit, resolution: str) -> tuple[int, int]:
    """'256' / '512' -> square; 'photo' -> the photo's aspect with the long side at 512.
    Sizes are rounded to multiples of 8 (video codecs and the diffusion path need it)."""
    h, w = fit.image.shape[:2]
    if resolution in ("256", "512"):
        s = int(resolution)
        return s, s
    if resolution == "photo":
        scale = 512 / max(h, w)
        return max(8, int(round(w * scale / 8)) * 8), max(8, int(round(h * scale / 8)) * 8)
    raise ValueError(f"resolution must be '256', '512' or 'photo', got {resolution!r}")


class TalkingVideoRenderer:
    def __init__(self, body: BodyModel, fit: ReferenceFit, width: int, height: int,
                 device: torch.device | str = "cpu"):
        self.body, self.fit, self.device = body, fit, torch.device(device)
        self.width, self.height = width, height
        self.camera = fit.camera.resized(width, height)
        self.part_ids = {n: i for i, n in enumerate(body.part_names)}
        faces = np.ascontiguousarray(body.faces, dtype=np.int32)
        self.faces = faces
        ref_verts = body.pose_frames(fit, None, 0, 1, self.device)[0].cpu()
        # where each vertex is in the photo, and whether the photo saw it
        photo_h, photo_w = fit.image.shape[:2]
        uv, z = fit.camera.project(ref_verts)
        self.ref_uv = uv.numpy().astype(np.float32)
        photo = fit.image.cpu().numpy().astype(np.float32)
        colors, visible = control_maps.reference_colors(body, fit, (photo_w, photo_h))
        self.ref_visible = np.asarray(visible, bool)
        # the body's silhouette in the photo seeds the person mask
        ref_raster = self._raster(ref_verts[None], fit.camera)
        silhouette = ref_raster.tri_id[0] >= 0
        labels_ref = np.where(silhouette, body.face_labels[np.maximum(ref_raster.tri_id[0], 0)], 0)
        means = {}
        for name in ("lips", "face_skin"):
            if name in self.part_ids:
                sel = labels_ref == self.part_ids[name]
                if sel.sum() > 3:
                    means[name] = photo[sel].mean(0)
        self.reference = prepare_reference(photo, silhouette, width, height, means)

    def _raster(self, verts: torch.Tensor, camera):
        uv, z = camera.project(verts)
        pts = torch.cat([uv, z[..., None]], -1).numpy().astype(np.float32)
        return rasterizer.rasterize(pts, self.faces, camera.width, camera.height)

    def render(self, motion: Motion | None, start: int, stop: int) -> np.ndarray:
        """Frames [stop-start, H, W, 3] float32 0..1."""
        verts = self.body.pose_frames(self.fit, motion, start, stop, self.device).cpu()
        r = self._raster(verts, self.camera)
        uv_maps = rasterizer.interpolate(r, self.ref_uv)                          # [n,H,W,2]
        valid = rasterizer.interpolate(r, self.ref_visible.astype(np.float32)[:, None])[..., 0]
        frames = np.empty((stop - start, self.height, self.width, 3), np.float32)
        for i in range(stop - start):
            tri = r.tri_id[i]
            alpha = (tri >= 0).astype(np.float32)
            labels = np.where(tri >= 0, self.body.face_labels[np.maximum(tri, 0)], 0)
            frames[i] = composite_frame(self.reference, alpha, uv_maps[i], valid[i] > 0.999,
                                        labels, self.part_ids)
        return frames

    def render_windows(self, motion: Motion, window: int = 48, progress: Progress = None,
                       interrupt: Interrupt = None) -> Iterator[np.ndarray]:
        n = motion.num_frames
        for start in range(0, n, window):
            check(interrupt)
            stop = min(n, start + window)
            yield self.render(motion, start, stop)
            report(progress, stop, n)


def write_talking_video(path: str, renderer: TalkingVideoRenderer, motion: Motion,
                        audio: torch.Tensor | None, sample_rate: int | None, window: int = 48,
                        progress: Progress = None, interrupt: Interrupt = None) -> str:
    """Render `motion` window by window straight into an MP4 with the speech muxed in."""
    with StreamingMP4Writer(path, motion.fps, renderer.width, renderer.height, audio,
                            sample_rate) as writer:
        for frames in renderer.render_windows(motion, window, progress, interrupt):
            writer.write(frames)
    return str(path)
