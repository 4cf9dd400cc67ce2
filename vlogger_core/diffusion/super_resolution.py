"""Super-resolution cascade (VLOGGER: 128 -> 256 -> 512), temporal diffusion SR models.

Each stage is a pixel-space UNet2DConditionModel whose input is the noisy high-res frame (3)
concatenated with the bilinearly upsampled low-res frame (3), both in -1..1, with the same temporal
convs in its down blocks as the base video model and a learned context instead of text. Unlike the
base, the SR UNet is trained whole (nothing frozen). Configs: configs/sr256_unet.json, sr512_unet.json.

Tiling bounds memory: at every denoising step the noise prediction is computed tile by tile (all
frames of the clip at once, so the temporal convs still see the whole clip) and blended with
feathered weights; the scheduler step then runs on the whole frame. Tiles differ from the untiled
result only through receptive field and GroupNorm statistics at tile borders.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Iterator

import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from torch import nn

from ..callbacks import Interrupt, Progress, check, report
from ..errors import VloggerError
from .model import SPEC_FIX, read_config
from .sampling import check_steps, make_scheduler
from .temporal import add_temporal_layers, set_num_frames


@dataclass
class SRSpec:
    unet_config: dict | str = "sr256_unet"
    scheduler_config: dict | str = "pixel_scheduler"
    in_size: int = 128
    out_size: int = 256
    num_frames: int = 8
    context_tokens: int = 1
    temporal_kernel: int = 3

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "SRSpec":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class SuperResolutionModel(nn.Module):
    def __init__(self, spec: SRSpec, unet: UNet2DConditionModel | None = None):
        super().__init__()
        self.spec = spec
        self.unet = unet if unet is not None else UNet2DConditionModel.from_config(read_config(spec.unet_config))
        cfg = self.unet.config
        if cfg.in_channels != 6 or cfg.out_channels != 3:
            raise VloggerError("an SR UNet takes 6 channels (noisy 3 + upsampled low-res 3) and predicts 3",
                               "spec", SPEC_FIX)
        self.multiple = 2 ** (len(cfg.block_out_channels) - 1)
        if spec.out_size % self.multiple:
            raise VloggerError(f"out_size {spec.out_size} must be a multiple of {self.multiple}", "spec", SPEC_FIX)
        self.context = nn.Parameter(torch.zeros(1, spec.context_tokens, cfg.cross_attention_dim))
        self.temporal = nn.ModuleList(add_temporal_layers(self.unet, spec.temporal_kernel))

    def trained_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("temporal.")}

    def forward(self, sample, timestep, low_up, num_frames: int):
        set_num_frames(self, num_frames)
        ctx = self.context.to(sample.dtype).expand(sample.shape[0], -1, -1)
        return self.unet(torch.cat([sample, low_up], 1), timestep, encoder_hidden_states=ctx, return_dict=False)[0]


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    if tile >= size:
        return [0]
    starts = list(range(0, size - tile, tile - overlap))
    return starts + [size - tile]


def _feather(tile: int, overlap: int) -> torch.Tensor:
    ramp = torch.ones(tile)
    if overlap > 0:
        r = torch.arange(1, overlap + 1, dtype=torch.float32) / (overlap + 1)
        ramp[:overlap] = r
        ramp[-overlap:] = torch.minimum(ramp[-overlap:], r.flip(0))
    return ramp[:, None] * ramp[None, :]


def tiled_eps(model: SuperResolutionModel, x, t, low_up, num_frames: int, tile: int, overlap: int):
    """Noise prediction on the whole frame, computed tile by tile and feather-blended."""
    h, w = x.shape[-2:]
    if tile <= 0 or tile >= max(h, w):
        return model(x, t, low_up, num_frames)
    tile = min(tile, h, w)
    out = torch.zeros_like(x)
    weight = torch.zeros((1, 1, h, w), dtype=x.dtype, device=x.device)
    wt = _feather(tile, overlap).to(x)[None, None]
    for y in tile_starts(h, tile, overlap):
        for xo in tile_starts(w, tile, overlap):
            sl = (..., slice(y, y + tile), slice(xo, xo + tile))
            out[sl] += model(x[sl], t, low_up[sl], num_frames) * wt
            weight[sl] += wt
    return out / weight


_OOM = (getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError), MemoryError)


def is_out_of_memory(e: BaseException) -> bool:
    return isinstance(e, _OOM) or (isinstance(e, RuntimeError) and "out of memory" in str(e).lower())


class TilePlan:
    """The tile size in use for one run. On out-of-memory the tile is halved (down to the model's
    size multiple) and the step retried; the smaller tile is kept for the rest of the run, so a
    long video does not hit the same failure window after window."""

    def __init__(self, model: "SuperResolutionModel", tile: int, overlap: int, log=None):
        self.model, self.tile, self.overlap, self.log = model, tile, overlap, log
        self.halvings = 0

    def eps(self, x, t, low_up, num_frames: int):
        while True:
            try:
                return tiled_eps(self.model, x, t, low_up, num_frames, self.tile, self.overlap)
            except Exception as e:
                if not is_out_of_memory(e):
                    raise
                self._halve(max(x.shape[-2:]), e)

    def _halve(self, size: int, err: BaseException) -> None:
        m = self.model.multiple
        current = self.tile if 0 < self.tile < size else size
        new = (current // 2) // m * m
        if new < m or new < 8:
            raise MemoryError(f"out of memory even with {current}-pixel SR tiles ({err}); free memory "
                              f"(fewer frames per window, a smaller model, or the CPU)") from err
        self.tile, self.overlap = new, min(self.overlap, new // 4)
        self.halvings += 1
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if self.log:
            self.log(f"SR ran out of memory; retrying with {new}-pixel tiles (overlap {self.overlap})")


def check_sr_model(model, arg: str = "model") -> SuperResolutionModel:
    """The model, if it is a super-resolution stage (anything with an SRSpec)."""
    if not isinstance(getattr(model, "spec", None), SRSpec):
        raise VloggerError("the model is a video model, not a super-resolution stage", arg,
                           "load an SR folder (config kind 'super_resolution')")
    return model


def check_tiling(model: SuperResolutionModel, tile: int, overlap: int, tile_arg: str = "tile",
                 overlap_arg: str = "overlap") -> None:
    """Tiles are a multiple of the UNet's size step and overlap by at most half (the caller's
    argument names go into the error)."""
    if tile <= 0:
        return
    if tile % model.multiple:
        raise VloggerError(f"tile {tile} must be a multiple of {model.multiple} for this SR model (or 0 = untiled)",
                           tile_arg, f"use a multiple of {model.multiple}, or 0 for whole frames")
    if not 0 <= overlap <= tile // 2:
        raise VloggerError(f"overlap {overlap} must be between 0 and half the tile ({tile // 2})", overlap_arg,
                           f"use an overlap from 0 to {tile // 2}")


def check_window_overlap(model: SuperResolutionModel, chunk_overlap: int, arg: str = "chunk_overlap") -> None:
    n = model.spec.num_frames
    if not 0 <= chunk_overlap < n:
        raise VloggerError(f"{arg} must be between 0 and N-1 = {n - 1} (the SR window is {n} frames), "
                           f"got {chunk_overlap}", arg, f"use 0 .. {n - 1}")


def _check_frames(s: SRSpec, frames: torch.Tensor) -> None:
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise VloggerError(f"frames must be RGB [T, 3, H, W], got {tuple(frames.shape)}", "frames",
                           "give an RGB frame batch")
    if tuple(frames.shape[-2:]) != (s.in_size, s.in_size):
        raise VloggerError(f"frames are {frames.shape[-1]}x{frames.shape[-2]}; this SR stage takes "
                           f"{s.in_size}x{s.in_size} (-> {s.out_size}x{s.out_size})", "frames",
                           f"feed {s.in_size}x{s.in_size} frames (the previous stage's output)")


def sr_windows(total: int, num_frames: int, chunk_overlap: int) -> int:
    """How many SR windows a video of `total` frames takes."""
    if total <= num_frames:
        return 1
    return 1 + -(-(total - num_frames) // (num_frames - chunk_overlap))


@torch.no_grad()
def _sr_window(model, lo, gen, sched_name, steps, plan: TilePlan, known, progress, interrupt, done, total):
    """One window of low-res frames lo (0..1) -> x0 in -1..1; the first len(known) frames are held
    to `known` (previous window's outputs) by re-noising, as in temporal outpainting."""
    s = model.spec
    p = next(model.parameters())
    lo = lo.to(p.device, p.dtype) * 2 - 1
    n, k = lo.shape[0], 0 if known is None else known.shape[0]
    low_up = F.interpolate(lo, size=(s.out_size, s.out_size), mode="bilinear", align_corners=False)
    sched = make_scheduler(s.scheduler_config, sched_name)
    sched.set_timesteps(steps, device=p.device)
    x = torch.randn(low_up.shape, generator=gen).to(p) * sched.init_noise_sigma
    if k:
        known = known.to(p)
        x[:k] = sched.add_noise(known, x[:k], sched.timesteps[:1])
    for i, t in enumerate(sched.timesteps):
        check(interrupt)
        eps = plan.eps(sched.scale_model_input(x, t), t, low_up, n)
        x = sched.step(eps, t, x).prev_sample
        if k:
            if i + 1 < len(sched.timesteps):
                noise = torch.randn(known.shape, generator=gen).to(p)
                x[:k] = sched.add_noise(known, noise, sched.timesteps[i + 1:i + 2])
            else:
                x[:k] = known
        report(progress, done + i + 1, total)
    return x.clamp(-1, 1)


def super_resolve_stream(model: SuperResolutionModel, frames: Iterable[torch.Tensor], *, steps: int = 20,
                         seed: int = 0, scheduler: str = "ddim", tile: int = 0, overlap: int = 32,
                         chunk_overlap: int = 0, total_frames: int | None = None, progress: Progress = None,
                         interrupt: Interrupt = None, plan: TilePlan | None = None,
                         log=None) -> Iterator[torch.Tensor]:
    """Upscale a stream of low-res frame batches (RGB 0..1 [F, 3, in, in]), yielding RGB 0..1
    [F', 3, out, out] batches in order as soon as each window is done. With chunk_overlap k > 0
    every window after the first re-uses the last k upscaled frames as known frames, so the
    windows join without a jump (temporal outpainting for SR); memory stays flat. On
    out-of-memory the tile is halved and the step retried (`plan` / `log` report it)."""
    s = check_sr_model(model).spec
    n = s.num_frames
    check_window_overlap(model, chunk_overlap)
    check_steps(steps)
    check_tiling(model, tile, overlap)
    plan = plan or TilePlan(model, tile, overlap, log)
    gen = torch.Generator().manual_seed(int(seed))
    total_steps = steps * sr_windows(total_frames, n, chunk_overlap) if total_frames else 0
    pending: list[torch.Tensor] = []
    prev_lo = prev_hi = None
    w = 0

    def window(new_lo):
        nonlocal prev_lo, prev_hi, w
        lo = new_lo if prev_lo is None else torch.cat([prev_lo, new_lo.to(prev_lo)])
        x0 = _sr_window(model, lo, gen, scheduler, steps, plan, prev_hi, progress, interrupt,
                        w * steps, total_steps or (w + 1) * steps)
        w += 1
        k = chunk_overlap
        prev_lo, prev_hi = (lo[-k:], x0[-k:]) if k else (None, None)
        return ((x0[lo.shape[0] - new_lo.shape[0]:] + 1) / 2).float().cpu()

    for batch in frames:
        _check_frames(s, batch)
        pending.extend(batch.unbind(0))
        while len(pending) >= (n if prev_lo is None else n - chunk_overlap):
            take = n if prev_lo is None else n - chunk_overlap
            yield window(torch.stack(pending[:take]))
            del pending[:take]
    if pending:
        yield window(torch.stack(pending))


def super_resolve(model: SuperResolutionModel, frames: torch.Tensor, *, steps: int = 20, seed: int = 0,
                  scheduler: str = "ddim", tile: int = 0, overlap: int = 32, chunk_overlap: int = 0,
                  progress: Progress = None, interrupt: Interrupt = None, plan: TilePlan | None = None,
                  log=None) -> torch.Tensor:
    """RGB 0..1 [T, 3, in, in] -> RGB 0..1 [T, 3, out, out], in windows of spec.num_frames frames."""
    _check_frames(check_sr_model(model).spec, frames)
    return torch.cat(list(super_resolve_stream(
        model, [frames], steps=steps, seed=seed, scheduler=scheduler, tile=tile, overlap=overlap,
        chunk_overlap=chunk_overlap, total_frames=frames.shape[0], progress=progress, interrupt=interrupt,
        plan=plan, log=log)))
