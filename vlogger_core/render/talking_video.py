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

from ..body.model import BodyModel
from ..body.reference import ReferenceFit
from ..callbacks import Interrupt, Progress, check, report
from ..errors import VloggerError
from ..motion.params import Motion
from . import controls as control_maps
from . import rasterizer
from .compositor import composite_frame, prepare_reference
from ..media import StreamingMP4Writer


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
    raise VloggerError(f"resolution must be '256', '512' or 'photo', got {resolution!r}", "resolution",
                       "pick 256, 512 or photo")


class TalkingVideoRenderer:
    def __init__(self, body: BodyModel, fit: ReferenceFit, width: int, height: int,
                 device: torch.device | str = "cpu"):
        control_maps.check_body_inputs(body, fit)
        self.body, self.fit, self.device = body, fit, torch.device(device)
        self.width, self.height = width, height
        self.camera = control_maps.camera_for(fit.camera, width, height)
        self.part_ids = {n: i for i, n in enumerate(body.part_names)}
        self.faces = np.ascontiguousarray(body.faces, dtype=np.int32)
        self.labels = np.ascontiguousarray(body.face_labels, dtype=np.uint8)
        photo = fit.image.detach().cpu().numpy().astype(np.float32)
        ref_verts = body.pose_frames(fit, None, 0, 1, "cpu")
        # where every vertex lies in the photo (remap's pixel-index coordinates) and whether
        # the photo saw it
        pts = control_maps.project(fit.camera, ref_verts)
        self.src_xy = pts[0, :, :2] - 0.5
        frags = rasterizer.rasterize(pts, self.faces, fit.camera.width, fit.camera.height)
        self.ref_visible = rasterizer.vertex_visibility(pts, self.faces, frags)[0]
        silhouette = frags.tri_id[0] >= 0
        labels_ref = rasterizer.face_label_map(frags, self.labels)[0]
        means = {}
        for name in ("lips", "face_skin", "teeth"):   # teeth: where the photo shows them
            sel = labels_ref == self.part_ids.get(name, -1)
            if sel.sum() > 3:
                means[name] = photo[sel].mean(0)
        # output pixel index -> photo pixel index (same camera pose, other intrinsics)
        a = fit.camera.focal / self.camera.focal
        (cpx, cpy), (cox, coy) = fit.camera.center, self.camera.center
        gx = (np.arange(width) + 0.5 - cox) * a + cpx - 0.5
        gy = (np.arange(height) + 0.5 - coy) * a + cpy - 0.5
        self.identity = np.stack(np.meshgrid(gx, gy), -1).astype(np.float32)
        self.reference = prepare_reference(photo, silhouette, width, height, means, self.identity)
        self.attrs = np.concatenate([self.src_xy, self.ref_visible[:, None]], 1).astype(np.float32)

    def render(self, motion: Motion | None, start: int, stop: int) -> np.ndarray:
        """Frames [stop-start, H, W, 3] float32 0..1."""
        verts = self.body.pose_frames(self.fit, motion, start, stop, "cpu")
        pts = control_maps.project(self.camera, verts)
        frags = rasterizer.rasterize(pts, self.faces, self.width, self.height)
        attrs = rasterizer.interpolate(frags, self.attrs)                 # [n,H,W,3]
        frames = np.empty((len(verts), self.height, self.width, 3), np.float32)
        for i in range(len(verts)):
            frames[i] = composite_frame(self.reference, frags.tri_id[i], attrs[i], self.labels,
                                        self.part_ids, self.identity)
        return frames

    def render_windows(self, motion: Motion, window: int = 48, progress: Progress = None,
                       interrupt: Interrupt = None, start: int = 0,
                       stop: int | None = None) -> Iterator[np.ndarray]:
        """Frames start..stop (None: to the motion's end), `window` frames at a time."""
        control_maps.check_body_inputs(self.body, self.fit, motion)
        n = motion.num_frames
        stop = n if stop is None else min(n, stop)
        if not 0 <= start < stop:
            raise VloggerError(f"frame {start} is past the motion's {n} frames", "start",
                               f"start below {n}")
        for s in range(start, stop, window):
            check(interrupt)
            e = min(stop, s + window)
            yield self.render(motion, s, e)
            report(progress, e - start, stop - start)

    def render_range(self, motion: Motion, start: int = 0, stop: int | None = None, window: int = 48,
                     progress: Progress = None, interrupt: Interrupt = None) -> np.ndarray:
        """Frames start..stop as one array [n, H, W, 3], rendered window by window into it."""
        stop = motion.num_frames if stop is None else min(motion.num_frames, stop)
        out = np.empty((max(0, stop - start), self.height, self.width, 3), np.float32)
        for i, frames in enumerate(self.render_windows(motion, window, progress, interrupt, start, stop)):
            out[i * window:i * window + len(frames)] = frames
        return out


def write_talking_video(path: str, renderer: TalkingVideoRenderer, motion: Motion,
                        audio: torch.Tensor | None, sample_rate: int | None, window: int = 48,
                        progress: Progress = None, interrupt: Interrupt = None) -> str:
    """Render `motion` window by window straight into an MP4 with the speech muxed in."""
    control_maps.check_body_inputs(renderer.body, renderer.fit, motion)
    with StreamingMP4Writer(path, motion.fps, renderer.width, renderer.height, audio,
                            sample_rate) as writer:
        for frames in renderer.render_windows(motion, window, progress, interrupt):
            writer.write(frames)
    return str(path)
