"""The whole stage-2 path as ONE stream: temporal outpainting -> SR stages -> frames, window by window.

Each stage is a generator consuming the previous one, so a writer can take frames as they come
and memory stays flat for any video length (benchmarks/outpaint_memory.py measures it).
"""
from __future__ import annotations

from typing import Iterator, Sequence

import torch

from ..callbacks import Interrupt, Progress, report
from .model import VideoDiffusionModel
from .outpainting import outpaint, window_starts
from .sampling import control_layout
from .super_resolution import SuperResolutionModel, sr_windows, super_resolve_stream


def diffusion_frames(model: VideoDiffusionModel, reference: torch.Tensor, controls, *, overlap: int,
                     steps: int = 25, seed: int = 0, scheduler: str = "ddim", guidance: float = 1.0,
                     sr_stages: Sequence[SuperResolutionModel] = (), sr_steps: int = 20, sr_tile: int = 0,
                     sr_tile_overlap: int = 32, sr_window_overlap: int = 0, total_frames: int | None = None,
                     progress: Progress = None, interrupt: Interrupt = None, log=None) -> Iterator[torch.Tensor]:
    """Yield RGB 0..1 frame batches [F, 3, H, W] at the last stage's resolution, in order.
    `log(message)` hears about SR tiles halved after an out-of-memory error."""
    if total_frames is None:
        total_frames = control_layout(controls)[0] if (torch.is_tensor(controls) or hasattr(controls, "select")) \
            else len(controls)
    total = total_frames
    n = model.spec.num_frames
    size = model.spec.image_size
    for i, sr in enumerate(sr_stages):
        if sr.spec.in_size != size:
            raise ValueError(f"SR stage {i + 1} takes {sr.spec.in_size}x{sr.spec.in_size} frames but receives "
                             f"{size}x{size}; order the stages by resolution (e.g. 128->256, then 256->512)")
        if not 0 <= sr_window_overlap < sr.spec.num_frames:
            raise ValueError(f"sr_window_overlap must be between 0 and {sr.spec.num_frames - 1}")
        size = sr.spec.out_size
    base_units = steps * (1 if total <= n else len(window_starts(total, n, overlap)))
    units = [base_units] + [sr_steps * sr_windows(total, sr.spec.num_frames, sr_window_overlap) for sr in sr_stages]
    done = [0] * len(units)

    def stage_progress(k):
        def cb(d, _t):
            done[k] = d
            report(progress, sum(done), sum(units))
        return cb

    frames = (w.frames for w in outpaint(model, reference, controls, overlap=overlap, steps=steps, seed=seed,
                                         scheduler=scheduler, guidance=guidance, total_frames=total,
                                         progress=stage_progress(0), interrupt=interrupt))
    for k, sr in enumerate(sr_stages, start=1):
        frames = super_resolve_stream(sr, frames, steps=sr_steps, seed=seed + k, scheduler=scheduler,
                                      tile=sr_tile, overlap=sr_tile_overlap, chunk_overlap=sr_window_overlap,
                                      total_frames=total, progress=stage_progress(k), interrupt=interrupt,
                                      log=log)
    yield from frames
