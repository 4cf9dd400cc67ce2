"""The whole stage-2 path as ONE stream: temporal outpainting -> SR stages -> frames, window by window.

Each stage is a generator consuming the previous one, so a writer can take frames as they come
and memory stays flat for any video length (benchmarks/outpaint_memory.py measures it).
"""
from __future__ import annotations

import itertools
from typing import Iterator, Sequence

import torch

from ..callbacks import Interrupt, Progress, report
from ..errors import VloggerError
from ..media import StreamingMP4Writer
from .model import VideoDiffusionModel
from .outpainting import outpaint, total_frames_of, window_starts
from .sampling import check_steps
from .super_resolution import (
    SuperResolutionModel,
    check_sr_model,
    check_tiling,
    check_window_overlap,
    sr_windows,
    super_resolve_stream,
)


def sr_chain(size: int, sr_stages: Sequence[SuperResolutionModel | None], window_overlap: int = 0,
             tile: int = 0, tile_overlap: int = 32) -> tuple[list[SuperResolutionModel], int]:
    """(the SR stages that upscale `size`-pixel frames, in order, the side of their output).
    None entries (unconnected slots) are skipped. Each stage must take what the previous one
    makes; an error names the stage by its position: arg "sr_stages[i]"."""
    stages = []
    for i, sr in enumerate(sr_stages):
        if sr is None:
            continue
        arg = f"sr_stages[{i}]"
        check_sr_model(sr, arg)
        if sr.spec.in_size != size:
            raise VloggerError(f"SR stage {i + 1} takes {sr.spec.in_size}x{sr.spec.in_size} frames but receives "
                               f"{size}x{size}", arg, "order the stages by resolution (e.g. 128->256, then 256->512)")
        check_window_overlap(sr, window_overlap, "sr_window_overlap")
        check_tiling(sr, tile, tile_overlap, "sr_tile", "sr_tile_overlap")
        stages.append(sr)
        size = sr.spec.out_size
    return stages, size


def diffusion_frames(model: VideoDiffusionModel, reference: torch.Tensor, controls, *, overlap: int,
                     steps: int = 25, seed: int = 0, scheduler: str = "ddim", guidance: float = 1.0,
                     sr_stages: Sequence[SuperResolutionModel | None] = (), sr_steps: int = 20, sr_tile: int = 0,
                     sr_tile_overlap: int = 32, sr_window_overlap: int = 0, total_frames: int | None = None,
                     progress: Progress = None, interrupt: Interrupt = None, log=None) -> Iterator[torch.Tensor]:
    """RGB 0..1 frame batches [F, 3, H, W] at the last stage's resolution, in order, as an
    iterator; the settings and the SR chain are checked before it is returned. `log(message)`
    hears about SR tiles halved after an out-of-memory error."""
    total = total_frames_of(controls, total_frames)
    n = model.spec.num_frames
    sr_stages, _ = sr_chain(model.spec.image_size, sr_stages, sr_window_overlap, sr_tile, sr_tile_overlap)
    if sr_stages:
        check_steps(sr_steps, "sr_steps")
    base_units = steps * len(window_starts(total, n, overlap))
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
    return frames


def write_diffusion_video(path, model: VideoDiffusionModel, reference: torch.Tensor, controls, *, fps: float,
                          audio: torch.Tensor | None = None, sample_rate: int | None = None, **kw) -> str:
    """diffusion_frames (same keywords) straight into an MP4 with the speech muxed in, window by
    window. The file is opened once the first window exists (its size is the last stage's)."""
    frames = diffusion_frames(model, reference, controls, **kw)
    first = next(frames)
    with StreamingMP4Writer(path, fps, first.shape[-1], first.shape[-2], audio, sample_rate) as writer:
        for batch in itertools.chain([first], frames):
            writer.write(batch.permute(0, 2, 3, 1))
    return str(path)
