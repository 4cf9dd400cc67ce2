"""Training the stage-2 video model on a prepared dataset (vlogger-dataset-v1), in the paper's
two stages, on the trainer core (trainer.py: accelerate, checkpoints, resume, loss log and plot,
memory check).

Stage 1: only the new control layers (the ControlNet-style branch and the context), on single
frames (N = 1: the temporal layers see one frame and stay frozen), large batches. Stage 2: the
temporal layers too, on N-frame windows (N = the model's clip length), sampled as far in time from
the clip's reference frame as the clip allows (the paper samples the reference temporally far).
Loss: the scheduler's prediction target (epsilon, v or sample) at random timesteps; the control
input (controls AND reference) is dropped to the all-zero null with `cond_dropout`, the null the
sampler's classifier-free guidance uses. The frozen base (and VAE) never change.
Result: OUT/model, a folder VLOGGER_VideoModelLoader / load_model loads (OUT/last/model: the
latest checkpoint's); --resume continues OUT/last with the same loss trajectory.

    python -m vlogger_core.training.video --data DATASET --out FOLDER --stage 1 --steps 1000 \\
        [--init MODEL_FOLDER | --config tiny_video|pixel128_video|sd15_video|SPEC.json]
        [--checkpoint SD15.safetensors] [--resume] [--mixed-precision fp16|bf16]
    accelerate launch -m vlogger_core.training.video ...   (same arguments, several GPUs)
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..diffusion.model import (
    VideoDiffusionModel,
    VideoSpec,
    build_video_model,
    read_config,
)
from ..diffusion.sampling import build_condition
from ..diffusion.weights import load_model, save_model
from .cli import config_from, parser, run_cli
from .dataset_format import read_clip, read_dataset
from .trainer import (
    Job,
    RunSettings,
    TrainingError,
    accelerator,
    activation_gb,
    estimate_gb,
    fit,
    resume_point,
)


@dataclass
class VideoTrainConfig(RunSettings):
    stage: int = 1
    cond_dropout: float = 0.1
    init: str = ""
    config: str = ""
    checkpoint: str = ""


HELP = {
    "data": "a prepared dataset folder (vlogger-dataset-v1, see vlogger_core/training/dataset_format.py)",
    "out": "run folder: last/ (checkpoint), model/ (result), loss_log.jsonl, loss_plot.png",
    "stage": "1 = control branch + context on single frames; 2 = + temporal layers on N-frame windows",
    "batch_size": "stage 1: frames per step (per process); stage 2: N-frame clips per step",
    "cond_dropout": "probability of replacing a sample's control input + reference by the all-zero "
                    "null (what classifier-free guidance needs at sampling)",
    "init": "a model folder to start from (e.g. OUT_OF_STAGE_1/model for stage 2)",
    "config": "or a fresh model from a VideoSpec JSON: a file, or a name in vlogger_core/diffusion/configs "
              "(tiny_video, pixel128_video, sd15_video)",
    "checkpoint": "the SD 1.x single-file .safetensors a latent (sd15) model runs on",
}
DATA_FIX = "give a dataset prepared from footage (VLOGGER Prepare Dataset) at the model's frame size"


# ----------------------------------------------------------------------------- data
def load_clips(data: str, spec: VideoSpec) -> list[dict]:
    """Every clip of the dataset, kept as uint8 arrays (converted per batch: a float copy of a
    real dataset would not fit in memory)."""
    try:
        d = read_dataset(data)
    except (OSError, ValueError) as e:
        raise TrainingError(str(e), "data", DATA_FIX) from e
    size = d.get("frame_size", [spec.image_size])[0]
    if size != spec.image_size:
        raise TrainingError(f"the dataset's frames are {size}x{size} but the model takes "
                            f"{spec.image_size}x{spec.image_size}", "data",
                            f"prepare it with frame_size {spec.image_size}")
    clips = []
    for name in d["clips"]:
        c = read_clip(data, name)
        n_c = len(c["part_names"]) - 1
        if n_c != spec.num_parts:
            raise TrainingError(f"the dataset has {n_c} body parts, the model {spec.num_parts}", "data", DATA_FIX)
        clips.append({k: c[k] for k in ("frames", "dense", "semantic", "warped", "reference")}
                     | {"ref": int(c["reference_index"]), "name": name})
    if not clips:
        raise TrainingError(f"{data} holds no clips", "data", DATA_FIX)
    return clips


def clip_window(c: dict, s: int, n: int, num_parts: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frames [n,3,H,W], controls [n,3+N_c+3,H,W] (0..1 / one-hot) and the reference [3,H,W]."""
    f = lambda a: torch.from_numpy(np.ascontiguousarray(a)).float().div(255).permute(0, 3, 1, 2)  # noqa: E731
    onehot = F.one_hot(torch.from_numpy(c["semantic"][s:s + n]).long(), num_parts + 1)[..., 1:]
    controls = torch.cat([f(c["dense"][s:s + n]), onehot.permute(0, 3, 1, 2).float(), f(c["warped"][s:s + n])], 1)
    return f(c["frames"][s:s + n]), controls, f(c["reference"][None])[0]


def window_start(n_frames: int, window: int, ref: int, gen: torch.Generator) -> int:
    """A window start among the half of the possible starts farthest from the reference frame
    (far from it, as the paper asks, yet not always the same window)."""
    starts = list(range(0, n_frames - window + 1))
    far = sorted(starts, key=lambda s: -abs(s + (window - 1) / 2 - ref))[: max(1, len(starts) // 2)]
    return far[int(torch.randint(len(far), (1,), generator=gen))]


def frames_per_sample(spec: VideoSpec, stage: int) -> int:
    return 1 if stage == 1 else spec.num_frames


def make_batch(clips, model: VideoDiffusionModel, stage: int, batch: int, gen: torch.Generator):
    """(frames RGB 0..1 [B*N,3,H,W], condition [B*N,K,H,W], N)."""
    n = frames_per_sample(model.spec, stage)
    frames, conds = [], []
    for _ in range(batch):
        c = clips[int(torch.randint(len(clips), (1,), generator=gen))]
        T = c["frames"].shape[0]
        if T < n:
            raise TrainingError(f"clip {c['name']} has {T} frames, fewer than the model's clip length {n}",
                                "data", "prepare the dataset with longer clips")
        s = window_start(T, n, c["ref"], gen) if stage == 2 else int(torch.randint(T, (1,), generator=gen))
        fr, ctl, ref = clip_window(c, s, n, model.spec.num_parts)
        frames.append(fr)
        conds.append(build_condition(model, ctl, ref))
    return torch.cat(frames), torch.cat(conds), n


def drop_condition(cond: torch.Tensor, n: int, p: float, gen: torch.Generator) -> torch.Tensor:
    """Each clip's whole control input (all N frames, reference included) replaced by the all-zero
    null with probability p: the null video_sampling.denoise uses for guidance."""
    b = cond.shape[0] // n
    keep = (torch.rand(b, generator=gen) >= p).to(cond.dtype).repeat_interleave(n).to(cond.device)
    return cond * keep[:, None, None, None]


# ----------------------------------------------------------------------------- memory estimate
def sample_gb(model: VideoDiffusionModel, stage: int) -> float:
    """Activation GB per batch sample (1 frame in stage 1, an N-frame clip in stage 2), measured
    by a forward of this architecture on the meta device."""
    spec, n = model.spec, frames_per_sample(model.spec, stage)
    c, s = model.sample_channels, spec.sample_size

    def forward(b: int):
        with torch.device("meta"):
            m = build_video_model(spec)
        stage_parameters(m, stage)
        x = torch.zeros(b * n, c, s, s, device="meta")
        cond = torch.zeros(b * n, spec.cond_channels, spec.image_size, spec.image_size, device="meta")
        return m(x, torch.zeros(b * n, dtype=torch.long, device="meta"), cond, n)
    try:
        return activation_gb(forward)
    except Exception:  # an op without a meta kernel: a coarse bound from the sample size
        return n * c * s ** 2 * 4 * 2000 / 1e9


def estimate_memory_gb(model: VideoDiffusionModel, trainable: list, stage: int,
                       mixed_precision: str = "no") -> tuple[float, float]:
    """Rough peak as (fixed, per batch sample) GB (trainer.estimate_gb for this model and stage)."""
    return estimate_gb(model, trainable, sample_gb(model, stage), mixed_precision)


# ----------------------------------------------------------------------------- model set-up
def build_or_load(cfg: VideoTrainConfig, device) -> VideoDiffusionModel:
    if cfg.init:
        return load_model(cfg.init, checkpoint=cfg.checkpoint or None, device=device)
    if not cfg.config:
        raise TrainingError("no model to train", "init", "give --init (a model folder) or --config (a VideoSpec JSON)")
    path = Path(cfg.config)
    try:
        spec = VideoSpec.from_json(json.loads(path.read_text()) if path.is_file() else read_config(cfg.config))
    except FileNotFoundError:
        raise TrainingError(f"config {cfg.config}: no such file or shipped config", "config",
                            "give a VideoSpec JSON file or tiny_video, pixel128_video, sd15_video") from None
    if spec.base == "sd15":
        if not cfg.checkpoint:
            raise TrainingError("a latent (SD 1.x) model needs its base checkpoint", "checkpoint",
                                "give --checkpoint SD15.safetensors")
        from ..diffusion.sd_checkpoint import load_sd1_checkpoint
        base, vae = load_sd1_checkpoint(cfg.checkpoint, spec.unet_config, spec.vae_config)
        return build_video_model(spec, base, vae).to(device)
    return build_video_model(spec).to(device)


def is_temporal(name: str) -> bool:
    return ".temporal." in name or name.startswith("temporal.")


def stage_parameters(model: VideoDiffusionModel, stage: int) -> list:
    """Stage 1: control branch + context (temporal frozen); stage 2: those + temporal layers.
    LoRA parameters (personalization) are trained by training/lora.py, not here."""
    out = []
    for n, p in model.named_parameters():
        if ".lora_" in n:
            ok = False
        elif is_temporal(n):
            ok = stage == 2
        else:
            ok = not n.startswith(("base.", "vae."))
        p.requires_grad_(ok)
        if ok:
            out.append(p)
    return out


def make_ddpm(model: VideoDiffusionModel):
    from diffusers import DDPMScheduler
    return DDPMScheduler.from_config(read_config(model.spec.scheduler_config))


def diffusion_loss(model: VideoDiffusionModel, sched, frames, cond, n, dropout: float, gen, net=None) -> torch.Tensor:
    """MSE between the network's prediction and the scheduler's target at random timesteps (one
    per clip). `net` is the (accelerate-wrapped) module to call; `model` the plain one."""
    with torch.no_grad():
        x0 = model.from_pixels(frames)
    noise = torch.randn(x0.shape, generator=gen).to(x0)
    b = x0.shape[0] // n
    t = torch.randint(0, sched.config.num_train_timesteps, (b,), generator=gen).repeat_interleave(n).to(x0.device)
    x_t = sched.add_noise(x0, noise, t)
    pred = (net or model)(x_t, t, drop_condition(cond, n, dropout, gen), n)
    kind = sched.config.prediction_type
    target = {"epsilon": noise, "sample": x0}.get(kind)
    if target is None:
        target = sched.get_velocity(x0, noise, t)
    return F.mse_loss(pred.float(), target.float())


def diffusion_job(model: VideoDiffusionModel, params: list, cfg, stage: int, device, save, result: str,
                  title: str) -> Job:
    """The Job of training `params` of `model` with the diffusion loss on cfg.data (stage 1:
    single frames; 2: N-frame windows; cfg: a config with batch_size and cond_dropout): the
    video trainer's, and the LoRA trainer's."""
    clips = load_clips(cfg.data, model.spec)
    sched = make_ddpm(model)
    n, size = frames_per_sample(model.spec, stage), model.spec.image_size

    def loss(net, batch, gen):
        frames, cond, n = batch
        return {"loss": diffusion_loss(model, sched, frames.to(device), cond.to(device), n, cfg.cond_dropout, gen, net)}
    return Job(model, params, lambda gen: make_batch(clips, model, stage, cfg.batch_size, gen), loss, save, result,
               per_sample_gb=sample_gb(model, stage), sample=f"stage {stage}: {n} frame(s) of {size}x{size}",
               info={"stage": stage}, title=title)


# ----------------------------------------------------------------------------- the run
def train(cfg: VideoTrainConfig, log=print, progress=None, interrupt=None) -> Path:
    """Train (or, with cfg.resume, continue) one stage; returns OUT/model."""
    if cfg.stage not in (1, 2):
        raise TrainingError(f"stage must be 1 or 2, got {cfg.stage}", "stage", "set stage to 1 or 2")
    if not 0 <= cfg.cond_dropout < 1:
        raise TrainingError(f"cond_dropout must be in [0, 1), got {cfg.cond_dropout}", "cond_dropout",
                            "set cond_dropout to 0.1 (the usual) or another value below 1")
    done, out = resume_point(cfg), Path(cfg.out)
    if done and done["info"].get("stage") != cfg.stage:
        raise TrainingError(f"{out / 'last'} is a stage-{done['info'].get('stage')} run; stage {cfg.stage} "
                            f"cannot resume it", "stage", f"start stage 2 with --init {out / 'model'} and a new --out")
    acc = accelerator(cfg)
    model = build_or_load(cfg, acc.device).train()

    def save(m, path: Path, step: int, rows: list) -> None:
        save_model(m, path, note=f"vlogger_core.training.video, stage {cfg.stage}, step {step} of {cfg.steps} "
                                 f"on {cfg.data}")
    job = diffusion_job(model, stage_parameters(model, cfg.stage), cfg, cfg.stage, acc.device, save, "model",
                        f"VLOGGER video model, stage {cfg.stage} ({out.name})")
    fit(acc, job, cfg, log, progress, interrupt)
    return out / "model"


def main(argv=None) -> None:
    ap = parser(VideoTrainConfig, HELP, "python -m vlogger_core.training.video", __doc__)
    run_cli(ap, argv, lambda args: train(config_from(VideoTrainConfig, args)))


if __name__ == "__main__":
    main()
