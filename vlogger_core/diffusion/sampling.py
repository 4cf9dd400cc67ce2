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
import torch.nn.functional as F
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

from ..callbacks import Interrupt, Progress, check, report
from ..errors import VloggerError
from .model import VideoDiffusionModel, control_channels, read_config

SCHEDULERS = {"ddim": DDIMScheduler, "dpmpp_2m": DPMSolverMultistepScheduler}
CONTROLS_FIX = "connect controls rendered from the motion (a Controls set) or a tensor [N, 3 + N_c + 3, H, W]"


def make_scheduler(config, name: str = "ddim"):
    if name not in SCHEDULERS:
        raise VloggerError(f"unknown scheduler '{name}'", "scheduler", f"choose one of {sorted(SCHEDULERS)}")
    # from_config ignores the keys a scheduler does not take (one config serves both)
    return SCHEDULERS[name].from_config(read_config(config))


def as_control_tensor(controls) -> torch.Tensor:
    """Controls dataclass (anything with to_channels()) or a tensor [N, 3+N_c+3, H, W]."""
    if hasattr(controls, "to_channels"):
        controls = controls.to_channels()
    if not torch.is_tensor(controls) or controls.ndim != 4:
        raise VloggerError("controls must be a Controls set or a tensor [N, 3 + N_c + 3, H, W]", "controls",
                           CONTROLS_FIX)
    return controls


def control_layout(controls) -> tuple[int, int, int, int]:
    """(frames, channels, H, W) of a control tensor or a render.controls.Controls, without building
    the one-hot channels of a whole video."""
    if torch.is_tensor(controls):
        if controls.ndim != 4:
            raise VloggerError(f"controls must be [N, 3 + N_c + 3, H, W], got {tuple(controls.shape)}",
                               "controls", CONTROLS_FIX)
        return tuple(controls.shape)
    if hasattr(controls, "to_channels") and hasattr(controls, "dense"):
        n, h, w, _ = controls.dense.shape
        return n, control_channels(controls.num_parts), h, w
    raise VloggerError("controls must be a Controls set (render.controls.Controls) or a tensor "
                       "[N, 3 + N_c + 3, H, W]", "controls", CONTROLS_FIX)


def check_video_model(model, arg: str = "model") -> VideoDiffusionModel:
    if not isinstance(model, VideoDiffusionModel):
        raise VloggerError("the model is a super-resolution stage, not a video model", arg,
                           "load a video-model folder (config kind 'video')")
    return model


def check_controls(model: VideoDiffusionModel, controls) -> int:
    """The frame count of `controls` (a tensor or a Controls set), after checking them against
    the model: its channel layout (dense 3 + N_c body parts + warped 3), its size, >= 1 frame."""
    s = check_video_model(model).spec
    frames, channels, h, w = control_layout(controls)
    want = control_channels(s.num_parts)
    if channels != want:
        raise VloggerError(f"controls have {channels} channels ({channels - 6} body parts) but this model takes "
                           f"{want} (dense 3 + {s.num_parts} body parts + warped 3)", "controls",
                           "render the controls with the body model (part list) the video model was trained with")
    if (h, w) != (s.image_size, s.image_size):
        raise VloggerError(f"controls are {w}x{h} but this model takes {s.image_size}x{s.image_size}", "controls",
                           f"render the controls at {s.image_size}x{s.image_size}")
    if frames < 1:
        raise VloggerError("controls hold no frames", "controls", "render at least one frame")
    return frames


def control_window(controls, start: int, stop: int) -> torch.Tensor:
    """Frames [start, stop) as channels; a Controls set is sliced first (flat memory)."""
    if torch.is_tensor(controls):
        return controls[start:stop]
    if hasattr(controls, "select"):
        return controls.select(start, stop).to_channels()
    return as_control_tensor(controls[start:stop])


def square_reference(image: torch.Tensor, size: int) -> torch.Tensor:
    """A photo [H, W, C>=3] (RGB 0..1) -> the model's reference [1, 3, size, size]: the centre
    square, resized (antialiased)."""
    if image.ndim != 3 or image.shape[-1] < 3:
        raise VloggerError(f"the reference must be one RGB image [H, W, 3], got {tuple(image.shape)}", "reference",
                           "connect the photo of the person (an IMAGE)")
    x = image[..., :3].permute(2, 0, 1)[None].float()
    h, w = x.shape[-2:]
    s = min(h, w)
    x = x[..., (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    if s != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0, 1)


def build_condition(model: VideoDiffusionModel, controls: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """[N, 3+N_c+3, H, W] controls + reference [3, H, W] / [1, 3, H, W] (RGB 0..1) -> [N, K, H, W]."""
    s = model.spec
    controls = as_control_tensor(controls)
    check_controls(model, controls)
    ref = reference if reference.ndim == 4 else reference[None]
    if ref.shape[0] != 1 or ref.shape[1] != 3:
        raise VloggerError(f"reference must be ONE RGB image [1, 3, H, W], got {tuple(reference.shape)}",
                           "reference", "give one RGB photo")
    if tuple(ref.shape[-2:]) != (s.image_size, s.image_size):
        raise VloggerError(f"reference is {ref.shape[-1]}x{ref.shape[-2]}; this model takes "
                           f"{s.image_size}x{s.image_size}", "reference",
                           f"resize it to {s.image_size}x{s.image_size} (square_reference)")
    ref = ref.to(controls).expand(controls.shape[0], -1, -1, -1)
    return torch.cat([controls, ref], dim=1)


def _model_device_dtype(model):
    p = next(model.base.parameters())
    return p.device, p.dtype


def check_steps(steps: int, arg: str = "steps") -> None:
    if steps < 1:
        raise VloggerError(f"{arg} must be >= 1, got {steps}", arg, "use at least one denoising step")


@torch.no_grad()
def denoise(model: VideoDiffusionModel, cond: torch.Tensor, *, steps: int, generator: torch.Generator,
            scheduler: str = "ddim", guidance: float = 1.0, known: torch.Tensor | None = None,
            known_mask: torch.Tensor | None = None, progress: Progress = None, interrupt: Interrupt = None,
            step_offset: int = 0, total_steps: int | None = None) -> torch.Tensor:
    """Run the reverse process for ONE clip of N = cond.shape[0] frames; returns x0 [N, C, h, w]."""
    check_steps(steps)
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

    Other lengths go through outpainting.outpaint."""
    controls = as_control_tensor(controls)
    frames, n = check_controls(model, controls), model.spec.num_frames
    if frames != n:
        raise VloggerError(f"controls hold {frames} frames but this model makes clips of {n}", "controls",
                           f"give exactly {n} frames, or use temporal outpainting for other lengths")
    cond = build_condition(model, controls, reference)
    gen = torch.Generator().manual_seed(int(seed))
    x0 = denoise(model, cond, steps=steps, generator=gen, scheduler=scheduler, guidance=guidance,
                 progress=progress, interrupt=interrupt)
    with torch.no_grad():
        return model.to_pixels(x0).cpu()
