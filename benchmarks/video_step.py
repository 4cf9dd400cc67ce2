"""One sampler step of the stage-2 video model vs the frozen base alone, same input, this CPU.

Model: the shipped pixel-space base (configs/pixel128_unet.json) at its native 128x128, one clip
of N frames, random weights (timing only). "full" = frozen base + control branch + temporal convs
(in the base's and the branch's down blocks, the default); "base" = the plain UNet2DConditionModel
the video model wraps, on the same samples and context. One step = one denoiser forward + the
DDIM update (guidance 1; classifier-free guidance doubles both sides alike).
"""
from __future__ import annotations

import os
import time

import torch
from diffusers import DDIMScheduler, UNet2DConditionModel

from vlogger_core.diffusion.model import build_video_model, pixel128_spec, read_config
from vlogger_core.diffusion.temporal import unwrapped_state_dict

FRAMES = int(os.environ.get("VIDEO_STEP_FRAMES", "4"))
REPEATS = int(os.environ.get("VIDEO_STEP_REPEATS", "3"))


def _time_once(fn) -> tuple[float, float]:
    """(CPU seconds of this process, wall seconds). With one torch thread the CPU time is the
    work itself, barely touched by the other jobs sharing the cores; wall time is not."""
    c, t = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c, time.perf_counter() - t


@torch.no_grad()
def run() -> dict:
    torch.manual_seed(0)
    threads = int(os.environ.get("VIDEO_STEP_THREADS", "1"))
    torch.set_num_threads(threads)
    spec = pixel128_spec(num_frames=FRAMES)
    model = build_video_model(spec).eval()
    plain = UNet2DConditionModel.from_config(read_config(spec.unet_config)).eval()
    plain.load_state_dict(unwrapped_state_dict(model.base))
    sched = DDIMScheduler(beta_schedule="squaredcos_cap_v2")
    sched.set_timesteps(25)
    t = sched.timesteps[5]
    x = torch.randn(FRAMES, 3, 128, 128)
    cond = torch.rand(FRAMES, spec.cond_channels, 128, 128)
    ctx = model.context.expand(FRAMES, -1, -1)

    def full_step():
        sched.step(model(x, t, cond, num_frames=FRAMES), t, x)

    def base_step():
        sched.step(plain(x, t, encoder_hidden_states=ctx).sample, t, x)

    # Interleave the two so other jobs on the shared cores hit both alike; headline = CPU time
    # (fastest run of each), wall-clock figures alongside.
    base_step(), full_step()  # warm-up (allocator, oneDNN kernels)
    full, base = [], []
    for _ in range(REPEATS):
        base.append(_time_once(base_step))
        full.append(_time_once(full_step))
    t_full, t_base = min(c for c, _ in full), min(c for c, _ in base)
    w_full, w_base = min(w for _, w in full), min(w for _, w in base)
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    return {
        "step_ratio": round(t_full / t_base, 3),
        "full_step_s": round(t_full, 3),
        "base_step_s": round(t_base, 3),
        "timing": "CPU seconds of one step (process_time, 1 torch thread, best of repeats)",
        "step_ratio_wall": round(w_full / w_base, 3),
        "full_step_wall_s": round(w_full, 3),
        "base_step_wall_s": round(w_base, 3),
        "full_step_cpu_s_all": [round(c, 3) for c, _ in full],
        "base_step_cpu_s_all": [round(c, 3) for c, _ in base],
        "goal_step_ratio_max": 1.5,
        "config": "pixel128_unet.json @128x128",
        "frames": FRAMES,
        "threads": threads,
        "repeats": REPEATS,
        "base_params_M": round(n(plain) / 1e6, 2),
        "control_branch_params_M": round(n(model.control) / 1e6, 2),
        "temporal_params_M": round(n(model.temporal) / 1e6, 2),
        "temporal_in": list(spec.temporal_in),
    }
