"""Training the stage-2 video model on a prepared dataset (vlogger-dataset-v1), in the paper's
two stages, on accelerate (multi-GPU and mixed precision where a user has GPUs; CPU here).

Stage 1: only the new control layers (the ControlNet-style branch and the context), on single
frames (N = 1, the temporal layers bypassed), large batches. Stage 2: the temporal layers too, on
N-frame windows (N = the model's clip length), sampled as far in time from the clip's reference
frame as the clip allows (the paper samples the reference temporally far from the clip).
Loss: the scheduler's prediction target (epsilon or v) at random timesteps; the control input
(controls AND reference) is dropped to the all-zero null with `cond_dropout`, which is what makes
classifier-free guidance mean something at sampling. The frozen base (and VAE) never change.
Checkpoints: safetensors (trained parts + optimizer state) + JSON step, resumable; losses in
loss_log.jsonl and loss_plot.png; the result is a model folder VLOGGER_VideoModelLoader loads.

    python -m vlogger_core.video_training --data DATASET --out FOLDER --stage 1 --steps 1000 \\
        [--init MODEL_FOLDER | --config pixel128_video|sd15_video|tiny_video|SPEC.json]
        [--checkpoint SD15.safetensors] [--resume]
"""
from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from .dataset_format import read_clip, read_dataset
from .video_diffusion import VideoDiffusionModel, VideoSpec, build_video_model, read_config
from .video_sampling import build_condition, make_scheduler
from .video_weights import load_model, save_model


class TrainingError(ValueError):
    """Settings or data training cannot use (named, with the fix)."""


@dataclass
class VideoTrainConfig:
    data: str
    out: str
    stage: int = 1
    steps: int = 1000
    batch_size: int = 16           # stage 1: frames per step; stage 2: clips per step
    lr: float = 1e-4
    warmup: int = 50
    cond_dropout: float = 0.1
    seed: int = 0
    log_every: int = 10
    ckpt_every: int = 200
    init: str = ""                 # a model folder to continue from (stage 2 after stage 1)
    config: str = ""               # or a VideoSpec JSON for a fresh model
    checkpoint: str = ""           # SD 1.x single file for latent models
    mixed_precision: str = "no"
    cpu: bool = False
    time_limit_min: float = 0.0
    max_memory_gb: float = 0.0     # 0 = what the machine has available


# ----------------------------------------------------------------------------- data
def load_clips(data: str, spec: VideoSpec) -> list[dict]:
    d = read_dataset(data)
    clips = []
    for name in d["clips"]:
        c = read_clip(data, name)
        S = c["frames"].shape[1]
        if S != spec.image_size:
            raise TrainingError(f"the dataset's frames are {S}x{S} but the model takes "
                                f"{spec.image_size}x{spec.image_size}: prepare it with frame_size "
                                f"{spec.image_size}")
        n_c = len(c["part_names"]) - 1
        if n_c != spec.num_parts:
            raise TrainingError(f"the dataset has {n_c} body parts, the model {spec.num_parts}")
        f = lambda a: torch.from_numpy(a).float().div(255).permute(0, 3, 1, 2)  # noqa: E731
        onehot = F.one_hot(torch.from_numpy(c["semantic"]).long(), n_c + 1)[..., 1:].permute(0, 3, 1, 2).float()
        clips.append({"frames": f(c["frames"]), "controls": torch.cat([f(c["dense"]), onehot, f(c["warped"])], 1),
                      "reference": f(c["reference"][None])[0], "ref": int(c["reference_index"])})
    if not clips:
        raise TrainingError(f"{data} holds no clips")
    return clips


def window_start(n_frames: int, window: int, ref: int, gen: torch.Generator) -> int:
    """A window start among the half of the possible starts farthest from the reference frame."""
    starts = list(range(0, n_frames - window + 1))
    far = sorted(starts, key=lambda s: -abs(s + window / 2 - ref))[: max(1, len(starts) // 2)]
    return far[int(torch.randint(len(far), (1,), generator=gen))]


def make_batch(clips, model: VideoDiffusionModel, stage: int, batch: int, gen: torch.Generator):
    """(frames RGB 0..1 [B*N,3,H,W], condition [B*N,K,H,W], N)."""
    n = 1 if stage == 1 else model.spec.num_frames
    frames, conds = [], []
    for _ in range(batch):
        c = clips[int(torch.randint(len(clips), (1,), generator=gen))]
        T = c["frames"].shape[0]
        if T < n:
            raise TrainingError(f"a clip has {T} frames, fewer than the model's clip length {n}")
        s = window_start(T, n, c["ref"], gen) if stage == 2 else int(torch.randint(T, (1,), generator=gen))
        frames.append(c["frames"][s:s + n])
        conds.append(build_condition(model, c["controls"][s:s + n], c["reference"]))
    return torch.cat(frames), torch.cat(conds), n


# ----------------------------------------------------------------------------- memory check
def estimate_memory_gb(model: VideoDiffusionModel, trainable: list, batch: int, n: int) -> float:
    """Rough peak: all weights + grads and AdamW state of the trained ones + activations
    (about 60 floats per sample value per UNet level, measured on the tiny configs x2)."""
    weights = sum(p.numel() for p in model.parameters()) * 4
    train = sum(p.numel() for p in trainable) * 4 * 3
    s = model.spec.sample_size
    acts = batch * n * model.sample_channels * s * s * 4 * 60 * len(model.base.config.block_out_channels) * 8
    return (weights + train + acts) / 1e9


def _available_gb() -> float:
    try:
        import psutil
        return psutil.virtual_memory().available / 1e9
    except Exception:
        return float("inf")


# ----------------------------------------------------------------------------- model set-up
def build_or_load(cfg: VideoTrainConfig, device) -> VideoDiffusionModel:
    if cfg.init:
        return load_model(cfg.init, checkpoint=cfg.checkpoint or None, device=device)
    if not cfg.config:
        raise TrainingError("give --init (a model folder) or --config (a VideoSpec JSON)")
    path = Path(cfg.config)
    spec = VideoSpec.from_json(json.loads(path.read_text()) if path.is_file() else read_config(cfg.config))
    if spec.base == "sd15":
        if not cfg.checkpoint:
            raise TrainingError("a latent (SD 1.x) model needs --checkpoint SD15.safetensors")
        from .sd_checkpoint import load_sd1_checkpoint
        base, vae = load_sd1_checkpoint(cfg.checkpoint, spec.unet_config, spec.vae_config)
        return build_video_model(spec, base, vae).to(device)
    return build_video_model(spec).to(device)


def stage_parameters(model: VideoDiffusionModel, stage: int) -> list:
    """Stage 1: control branch + context (temporal frozen); stage 2: those + temporal layers.
    LoRA parameters (personalization) are trained by personalization.py, not here."""
    out = []
    for n, p in model.named_parameters():
        temporal = ".temporal." in n or n.startswith("temporal.")
        ok = (not n.startswith(("base.", "vae.")) and not temporal and ".lora_" not in n) or \
             (stage == 2 and temporal and ".lora_" not in n)
        p.requires_grad_(ok)
        if ok:
            out.append(p)
    return out


def diffusion_loss(model: VideoDiffusionModel, sched, frames, cond, n, dropout: float, gen) -> torch.Tensor:
    with torch.no_grad():
        x0 = model.from_pixels(frames)
    noise = torch.randn(x0.shape, generator=gen).to(x0)
    b = x0.shape[0] // n
    t = torch.randint(0, sched.config.num_train_timesteps, (b,), generator=gen).repeat_interleave(n).to(x0.device)
    x_t = sched.add_noise(x0, noise, t)
    keep = (torch.rand(b, generator=gen) >= dropout).float().repeat_interleave(n).to(cond)
    pred = model(x_t, t, cond * keep[:, None, None, None], n)
    target = noise if sched.config.prediction_type == "epsilon" else sched.get_velocity(x0, noise, t)
    return F.mse_loss(pred.float(), target.float())


def plot_log(log_path: Path, png: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [json.loads(l) for l in log_path.read_text().splitlines() if l.strip()]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], color="tab:blue")
    ax.set_xlabel("step"); ax.set_ylabel("diffusion loss"); ax.set_yscale("log")
    ax.set_title(f"VLOGGER video model training ({log_path.parent.name})")
    fig.tight_layout(); fig.savefig(png); plt.close(fig)


# ----------------------------------------------------------------------------- the loop
def train(cfg: VideoTrainConfig, log=print, progress=None, interrupt=None) -> Path:
    from accelerate import Accelerator
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_cosine_schedule_with_warmup

    if cfg.stage not in (1, 2):
        raise TrainingError(f"stage must be 1 or 2, got {cfg.stage}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    acc = Accelerator(mixed_precision=cfg.mixed_precision, cpu=cfg.cpu)
    last = out / "last"
    resume = (last / "state.json").exists()
    model = load_model(last, checkpoint=cfg.checkpoint or None, device=acc.device) if resume \
        else build_or_load(cfg, acc.device)
    model.train()
    trainable = stage_parameters(model, cfg.stage)
    n = 1 if cfg.stage == 1 else model.spec.num_frames
    need = estimate_memory_gb(model, trainable, cfg.batch_size, n)
    have = cfg.max_memory_gb or _available_gb()
    if need > have:
        raise TrainingError(f"batch_size {cfg.batch_size} would need about {need:.1f} GB, "
                            f"{have:.1f} GB is available: lower batch_size (or use a GPU / "
                            f"mixed precision)")
    clips = load_clips(cfg.data, model.spec)
    sched = DDPMScheduler(**{k: v for k, v in read_config(model.spec.scheduler_config).items()
                             if k in DDPMScheduler.__init__.__code__.co_varnames})
    opt = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=0.01)
    start = 0
    if resume:
        start = json.loads((last / "state.json").read_text())["step"]
        st = load_file(str(last / "optimizer.safetensors"))
        opt.load_state_dict(_unflatten_opt(st, opt))
        log(f"resuming stage {cfg.stage} at step {start}")
    lr_sched = get_cosine_schedule_with_warmup(opt, cfg.warmup, cfg.steps)
    for _ in range(start):
        lr_sched.step()
    model, opt = acc.prepare(model, opt)
    raw = acc.unwrap_model(model)
    gen = torch.Generator().manual_seed(cfg.seed + start)
    log_path, sums, t0 = out / "loss_log.jsonl", [], time.time()
    step = start
    while step < cfg.steps:
        if interrupt is not None:
            interrupt()
        frames, cond, nn_ = make_batch(clips, raw, cfg.stage, cfg.batch_size, gen)
        with acc.autocast():
            loss = diffusion_loss(raw, sched, frames.to(acc.device), cond.to(acc.device),
                                  nn_, cfg.cond_dropout, gen)
        opt.zero_grad()
        acc.backward(loss)
        acc.clip_grad_norm_(trainable, 1.0)
        opt.step()
        lr_sched.step()
        step += 1
        sums.append(float(loss.detach()))
        if progress is not None:
            progress(step, cfg.steps)
        if step % cfg.log_every == 0 or step == cfg.steps:
            row = {"step": step, "stage": cfg.stage, "loss": sum(sums) / len(sums),
                   "lr": lr_sched.get_last_lr()[0], "elapsed_s": round(time.time() - t0, 2)}
            sums = []
            with log_path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            log(json.dumps(row))
        over = cfg.time_limit_min and time.time() - t0 > cfg.time_limit_min * 60
        if step % cfg.ckpt_every == 0 or step == cfg.steps or over:
            _checkpoint(raw, opt, step, last, cfg)
            plot_log(log_path, out / "loss_plot.png")
        if over:
            log(f"time limit reached at step {step}")
            break
    for p in raw.parameters():
        p.requires_grad_(False)
    final = save_model(raw.eval(), out / "model", note=f"trained by vlogger_core.video_training, stage {cfg.stage}, "
                       f"{step} steps on {cfg.data}")
    plot_log(log_path, out / "loss_plot.png")
    return final


def _flatten_opt(opt) -> dict:
    sd = opt.state_dict()
    flat = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            flat[f"{pid}.{k}"] = v if torch.is_tensor(v) else torch.tensor(float(v))
    return flat


def _unflatten_opt(flat: dict, opt) -> dict:
    sd = opt.state_dict()
    state: dict = {}
    for key, v in flat.items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    sd["state"] = state
    return sd


def _checkpoint(model, opt, step: int, folder: Path, cfg: VideoTrainConfig) -> None:
    tmp = folder.with_name(folder.name + ".partial")
    save_model(model, tmp, note=f"checkpoint at step {step}")
    save_file({k: v.contiguous() for k, v in _flatten_opt(opt).items()}, str(tmp / "optimizer.safetensors"))
    (tmp / "state.json").write_text(json.dumps({"step": step, "config": asdict(cfg)}, indent=1))
    import shutil
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f, default in VideoTrainConfig("", "").__dict__.items():
        if f in ("data", "out"):
            ap.add_argument(f"--{f}", required=True)
        elif isinstance(default, bool):
            ap.add_argument(f"--{f.replace('_', '-')}", dest=f, action="store_true")
        else:
            ap.add_argument(f"--{f.replace('_', '-')}", dest=f, type=type(default), default=default)
    ap.add_argument("--resume", action="store_true", help="continue from OUT/last (automatic when it exists)")
    a = vars(ap.parse_args(argv))
    a.pop("resume")
    print(train(VideoTrainConfig(**a)))


if __name__ == "__main__":
    main()
