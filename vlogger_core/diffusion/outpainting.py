"""Temporal outpainting (VLOGGER): videos of any length from a model that makes N-frame clips.

Window 0 makes frames [0, N). Every later window makes N' = N - overlap new frames conditioned on
the previous `overlap` frames, which are held fixed with the replacement scheme in
sampling.denoise. The last window is shifted back so it ends exactly at the last frame
(it then re-uses a little more context). Videos shorter than N are made as one shorter clip.

`outpaint` is a generator: it yields each window's NEW frames as soon as they exist, and keeps only
the last N frames' samples, so a writer can stream an hour of video with flat memory.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from ..callbacks import Interrupt, Progress
from ..errors import VloggerError
from .model import VideoDiffusionModel
from .sampling import build_condition, control_layout, control_window, denoise


@dataclass
class OutpaintWindow:
    start: int                 # absolute index of the window's first frame
    new_start: int             # absolute index of frames[0]
    frames: torch.Tensor       # the new frames, RGB 0..1 [F, 3, H, W] (CPU)
    samples: torch.Tensor      # the whole window in the model's sample space [N, C, h, w]


def check_overlap(overlap: int, window: int) -> None:
    """1 <= overlap <= N-1, i.e. 1 <= N' < N: at least one new frame per window, and at least one
    known frame tying it to the previous window (N' >= N would make independent clips)."""
    if not 1 <= overlap < window:
        raise VloggerError(f"overlap must be between 1 and N-1 = {window - 1} (new frames per window N' = N - overlap "
                           f"must satisfy 1 <= N' < N); got overlap {overlap} for N = {window}", "overlap",
                           f"set overlap to a value from 1 to {window - 1} (e.g. {max(1, window // 2)})")


def window_starts(total: int, window: int, overlap: int) -> list[int]:
    if window < 1:
        raise VloggerError(f"window (N) must be >= 1, got {window}", "window", "use a window of at least one frame")
    check_overlap(overlap, window)
    if total <= window:
        return [0]
    starts, step = [0], window - overlap
    while starts[-1] + window < total:
        starts.append(min(starts[-1] + step, total - window))
    return starts


def total_frames_of(controls, total_frames: int | None = None) -> int:
    """The frame count of controls: a tensor, a Controls set, or a lazy source with __len__."""
    if total_frames is not None:
        return total_frames
    if torch.is_tensor(controls) or hasattr(controls, "select"):
        return control_layout(controls)[0]
    return len(controls)


def outpaint(model: VideoDiffusionModel, reference: torch.Tensor, controls, *, overlap: int,
             steps: int = 25, seed: int = 0, scheduler: str = "ddim", guidance: float = 1.0,
             total_frames: int | None = None, progress: Progress = None,
             interrupt: Interrupt = None) -> Iterator[OutpaintWindow]:
    """Yield windows of new frames for every control frame. controls: a tensor [T, K, H, W], a
    render.controls.Controls (sliced per window with select()), or any lazily rendered source with
    __len__ and __getitem__(slice) returning channels."""
    total = total_frames_of(controls, total_frames)
    check_overlap(overlap, model.spec.num_frames)
    if total < 1:
        raise VloggerError("controls hold no frames", "controls", "render at least one frame")
    n = min(model.spec.num_frames, total)
    starts = [0] if total <= n else window_starts(total, n, overlap)
    gen = torch.Generator().manual_seed(int(seed))
    kept = None        # samples of the previous window
    kept_start = 0
    done_until = 0     # frames [0, done_until) have been yielded
    for w, start in enumerate(starts):
        cond = build_condition(model, control_window(controls, start, start + n), reference)
        known = mask = None
        if kept is not None:
            known = torch.zeros_like(kept)
            mask = torch.zeros(n, dtype=torch.bool)
            lo = start - kept_start          # window offset inside the previous window
            m = done_until - start           # how many frames of this window already exist
            known[:m] = kept[lo:lo + m]
            mask[:m] = True
        x0 = denoise(model, cond, steps=steps, generator=gen, scheduler=scheduler, guidance=guidance,
                     known=known, known_mask=mask, progress=progress, interrupt=interrupt,
                     step_offset=w * steps, total_steps=len(starts) * steps)
        first_new = done_until - start
        with torch.no_grad():
            frames = model.to_pixels(x0[first_new:]).cpu()
        yield OutpaintWindow(start=start, new_start=done_until, frames=frames, samples=x0)
        kept, kept_start, done_until = x0, start, start + n


def outpaint_video(model: VideoDiffusionModel, reference: torch.Tensor, controls, *,
                   total_frames: int | None = None, **kw) -> torch.Tensor:
    """All frames of `outpaint` (same keywords) as RGB 0..1 [T, 3, H, W], stored channels-last
    so that the [T, H, W, 3] view (ComfyUI's IMAGE) is free: windows are written straight in."""
    total = total_frames_of(controls, total_frames)
    size = model.spec.image_size
    out = torch.empty(total, size, size, 3).permute(0, 3, 1, 2)
    for w in outpaint(model, reference, controls, total_frames=total, **kw):
        out[w.new_start:w.new_start + w.frames.shape[0]] = w.frames
    return out
