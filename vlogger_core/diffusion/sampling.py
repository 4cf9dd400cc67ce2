"""Clip sampling for the stage-2 video model: N frames of controls + one reference -> N frames.

Classifier-free guidance: the null condition is ALL-ZERO control input, i.e. zero dense map, zero
semantic masks, zero warped image AND zero reference (the same null a trainer must drop to, with
some probability, for guidance to mean anything). eps = eps_null + g * (eps_cond - eps_null);
g = 1 skips the null pass.

`denoise` also takes known frames (x0 in the model's sample space) for temporal outpainting: at
every step they are re-noised to the current noise level and written over the sample (the
replacement / RePaint-style scheme), and after the last step they are put back exactly, so the
conditioning frames are reproduced bit for bit.
"""
from __future__ import annotations

import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

from ..callbacks import Interrupt, Progress, check, report
from .model import VideoDiffusionModel, read_config

SCHEDULERS = {"ddim": DDIMScheduler, "dpmpp_2m": DPMSolverMultistepScheduler}


def make_scheduler(config, name: str = "ddim"):
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler '{name}'; choose one of {sorted(SCHEDULERS)}")
    cfg = read_config(config)
    allowed = set(SCHEDULERS[name].__init__.__code__.co_varnames)
    return SCHEDULERS[name](**{k: v for k, v in cfg.items() if k in allowed})


def as_control_tensor(controls) -> torch.Tensor:
    """Controls dataclass (anything with to_channels()) or a tensor [N, 3+N_c+3, H, W]."""
    if hasattr(controls, "to_channels"):
        controls = controls.to_channels()
    if not torch.is_tensor(controls) or controls.ndim != 4:
        raise ValueError("controls must be a Controls set or a tensor [N, 3 + N_c + 3, H, W]")
    return controls


def control_layout(controls) -> tuple[int, int, int, int]:
    """(frames, channels, H, W) of a control tensor or a control_maps.Controls, without building
    the one-hot channels of a whole video."""
    if torch.is_tensor(controls):
        if controls.ndim != 4:
            raise ValueError(f"controls must be [N, 3 + N_c + 3, H, W], got {tuple(controls.shape)}")
        return tuple(controls.shape)
    if hasattr(controls, "to_channels") and hasattr(controls, "dense"):
        n, h, w, _ = controls.dense.shape
        return n, 3 + int(controls.num_parts) + 3, h, w
    raise ValueError("controls must be a Controls set (control_maps.Controls) or a tensor [N, 3 + N_c + 3, H, W]")


def control_window(controls, start: int, stop: int) -> torch.Tensor:
    """Frames [start, stop) as channels; a Controls set is sliced first (flat memory)."""
    if torch.is_tensor(controls):
        return controls[start:stop]
    if hasattr(controls, "select"):
        return controls.select(start, stop).to_channels()
    return as_control_tensor(controls[start:stop])


def build_condition(model: VideoDiffusionModel, controls: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """[N, 3+N_c+3, H, W] controls + reference [3, H, W] / [1, 3, H, W] (RGB 0..1) -> [N, K, H, W]."""
    s = model.spec
    controls = as_control_tensor(controls)
    want = s.cond_channels - 3
    if controls.shape[1] != want:
        raise ValueError(f"controls have {controls.shape[1]} channels; this model takes {want} "
                         f"(dense 3 + semantic {s.num_parts} + warped 3)")
    if tuple(controls.shape[-2:]) != (s.image_size, s.image_size):
        raise ValueError(f"controls are {controls.shape[-1]}x{controls.shape[-2]}; this model takes "
                         f"{s.image_size}x{s.image_size}")
    ref = reference if reference.ndim == 4 else reference[None]
    if ref.shape[0] != 1 or ref.shape[1] != 3:
        raise ValueError(f"reference must be ONE RGB image [1, 3, H, W], got {tuple(reference.shape)}")
    if tuple(ref.shape[-2:]) != (s.image_size, s.image_size):
        raise ValueError(f"reference is {ref.shape[-1]}x{ref.shape[-2]}; this model takes "
                         f"{s.image_size}x{s.image_size}")
    ref = ref.to(controls).expand(controls.shape[0], -1, -1, -1)
    return torch.cat([controls, ref], dim=1)


def _model_device_dtype(model):
    p = next(model.base.parameters())
    return p.device, p.dtype


@torch.no_grad()
def denoise(model: VideoDiffusionModel, cond: torch.Tensor, *, steps: int, generator: torch.Generator,
            scheduler: str = "ddim", guidance: float = 1.0, known: torch.Tensor | None = None,
            known_mask: torch.Tensor | None = None, progress: Progress = None, interrupt: Interrupt = None,
            step_offset: int = 0, total_steps: int | None = None) -> torch.Tensor:
    """Run the reverse process for ONE clip of N = cond.shape[0] frames; returns x0 [N, C, h, w]."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    device, dtype = _model_device_dtype(model)
    n = cond.shape[0]
    sched = make_scheduler(model.spec.scheduler_config, scheduler)
    sched.set_timesteps(steps, device=device)
    shape = (n, model.sample_channels, model.spec.sample_size, model.spec.sample_size)
    x = torch.randn(shape, generator=generator).to(device, dtype) * sched.init_noise_sigma
    cond = cond.to(device, dtype)
    use_null = guidance != 1.0
    cond_in = torch.cat([torch.zeros_like(cond), cond]) if use_null else cond
    if known is not None:
        known, mask = known.to(device, dtype), known_mask.to(device)
        x[mask] = sched.add_noise(known[mask], x[mask], sched.timesteps[:1])
    total = total_steps or steps
    for i, t in enumerate(sched.timesteps):
        check(interrupt)
        x_in = sched.scale_model_input(torch.cat([x, x]) if use_null else x, t)
        eps = model(x_in, t, cond_in, num_frames=n)
        if use_null:
            e_null, e_cond = eps.chunk(2)
            eps = e_null + guidance * (e_cond - e_null)
        x = sched.step(eps, t, x).prev_sample
        if known is not None:
            if i + 1 < len(sched.timesteps):
                noise = torch.randn(known[mask].shape, generator=generator).to(device, dtype)
                x[mask] = sched.add_noise(known[mask], noise, sched.timesteps[i + 1:i + 2])
            else:
                x[mask] = known[mask]
        report(progress, step_offset + i + 1, total)
    return x


def sample_clip(model: VideoDiffusionModel, reference: torch.Tensor, controls, *, steps: int = 25,
                seed: int = 0, scheduler: str = "ddim", guidance: float = 1.0,
                progress: Progress = None, interrupt: Interrupt = None) -> torch.Tensor:
    """One clip of exactly model.spec.num_frames frames -> RGB 0..1 [N, 3, H, W] (on the CPU).

    Other lengths go through temporal_outpainting.outpaint."""
    controls = as_control_tensor(controls)
    if controls.shape[0] != model.spec.num_frames:
        raise ValueError(f"controls have {controls.shape[0]} frames; this model makes clips of "
                         f"{model.spec.num_frames} frames (use temporal outpainting for other lengths)")
    cond = build_condition(model, controls, reference)
    gen = torch.Generator().manual_seed(int(seed))
    x0 = denoise(model, cond, steps=steps, generator=gen, scheduler=scheduler, guidance=guidance,
                 progress=progress, interrupt=interrupt)
    with torch.no_grad():
        return model.to_pixels(x0).cpu()
