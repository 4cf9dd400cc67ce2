"""Training the stage-2 video model on a prepared dataset (vlogger-dataset-v1), in the paper's
two stages, on accelerate (multi-GPU and mixed precision where a user has GPUs; CPU here).

Stage 1: only the new control layers (the ControlNet-style branch and the context), on single
frames (N = 1: the temporal layers see one frame and stay frozen), large batches. Stage 2: the
temporal layers too, on N-frame windows (N = the model's clip length), sampled as far in time from
the clip's reference frame as the clip allows (the paper samples the reference temporally far).
Loss: the scheduler's prediction target (epsilon, v or sample) at random timesteps; the control
input (controls AND reference) is dropped to the all-zero null with `cond_dropout`, the null the
sampler's classifier-free guidance uses. The frozen base (and VAE) never change.
Checkpoints: OUT/last = model folder + optimizer/RNG state (safetensors) + state.json, every
--ckpt-every steps; --resume continues the same loss trajectory. Losses: OUT/loss_log.jsonl and
OUT/loss_plot.png. Result: OUT/model, a folder VLOGGER_VideoModelLoader / load_model loads.

    python -m vlogger_core.training.video --data DATASET --out FOLDER --stage 1 --steps 1000 \\
        [--init MODEL_FOLDER | --config tiny_video|pixel128_video|sd15_video|SPEC.json]
        [--checkpoint SD15.safetensors] [--resume] [--mixed-precision fp16|bf16]
    accelerate launch -m vlogger_core.training.video ...   (same arguments, several GPUs)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ..diffusion.model import (
    VideoDiffusionModel,
    VideoSpec,
    build_video_model,
    read_config,
)
from ..diffusion.sampling import build_condition
from ..diffusion.weights import load_model, save_model
from ..errors import VloggerError
from .dataset_format import read_clip, read_dataset


class TrainingError(VloggerError):
    """Settings or data training cannot use (named, with the fix)."""


@dataclass
class VideoTrainConfig:
    data: str
    out: str
    stage: int = 1
    steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-4
    warmup: int = 50
    cond_dropout: float = 0.1
    seed: int = 0
    log_every: int = 10
    ckpt_every: int = 200
    init: str = ""
    config: str = ""
    checkpoint: str = ""
    mixed_precision: str = "no"
    cpu: bool = False
    resume: bool = False
    time_limit_min: float = 0.0
    max_memory_gb: float = 0.0


HELP = {
    "data": "a prepared dataset folder (vlogger-dataset-v1, see vlogger_core/training/dataset_format.py)",
    "out": "run folder: last/ (checkpoint), model/ (result), loss_log.jsonl, loss_plot.png",
    "stage": "1 = control branch + context on single frames; 2 = + temporal layers on N-frame windows",
    "steps": "total optimizer steps of this stage (a resumed run counts from its checkpoint)",
    "batch_size": "stage 1: frames per step (per process); stage 2: N-frame clips per step",
    "lr": "AdamW learning rate (after warmup, cosine decay to 0 at --steps)",
    "warmup": "linear warmup steps",
    "cond_dropout": "probability of replacing a sample's control input + reference by the all-zero "
                    "null (what classifier-free guidance needs at sampling)",
    "seed": "seed of batch sampling, noise and timesteps",
    "log_every": "steps per loss_log.jsonl row (the row holds the mean loss over them)",
    "ckpt_every": "steps between checkpoints in OUT/last",
    "init": "a model folder to start from (e.g. OUT_OF_STAGE_1/model for stage 2)",
    "config": "or a fresh model from a VideoSpec JSON: a file, or a name in vlogger_core/diffusion/configs "
              "(tiny_video, pixel128_video, sd15_video)",
    "checkpoint": "the SD 1.x single-file .safetensors a latent (sd15) model runs on",
    "mixed_precision": "no | fp16 | bf16 (accelerate); fp16 needs a GPU",
    "cpu": "force the CPU even when a GPU is present",
    "resume": "continue from OUT/last (starts fresh when there is none)",
    "time_limit_min": "stop (with a checkpoint and the model folder) after this many minutes; 0 = none",
    "max_memory_gb": "memory budget for the fit check; 0 = what the device has free",
}


# ----------------------------------------------------------------------------- data
def load_clips(data: str, spec: VideoSpec) -> list[dict]:
    """Every clip of the dataset, kept as uint8 arrays (converted per batch: a float copy of a
    real dataset would not fit in memory)."""
    try:
        d = read_dataset(data)
    except (OSError, ValueError) as e:
        raise TrainingError(str(e)) from e
    size = d.get("frame_size", [spec.image_size])[0]
    if size != spec.image_size:
        raise TrainingError(f"the dataset's frames are {size}x{size} but the model takes "
                            f"{spec.image_size}x{spec.image_size}: prepare it with frame_size {spec.image_size}")
    clips = []
    for name in d["clips"]:
        c = read_clip(data, name)
        n_c = len(c["part_names"]) - 1
        if n_c != spec.num_parts:
            raise TrainingError(f"the dataset has {n_c} body parts, the model {spec.num_parts}")
        clips.append({k: c[k] for k in ("frames", "dense", "semantic", "warped", "reference")}
                     | {"ref": int(c["reference_index"]), "name": name})
    if not clips:
        raise TrainingError(f"{data} holds no clips")
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


def make_batch(clips, model: VideoDiffusionModel, stage: int, batch: int, gen: torch.Generator):
    """(frames RGB 0..1 [B*N,3,H,W], condition [B*N,K,H,W], N)."""
    n = 1 if stage == 1 else model.spec.num_frames
    frames, conds = [], []
    for _ in range(batch):
        c = clips[int(torch.randint(len(clips), (1,), generator=gen))]
        T = c["frames"].shape[0]
        if T < n:
            raise TrainingError(f"clip {c['name']} has {T} frames, fewer than the model's clip length {n}: "
                                f"prepare the dataset with longer clips")
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


# ----------------------------------------------------------------------------- memory check
def activation_bytes(spec: VideoSpec, stage: int) -> float:
    """Bytes autograd keeps per frame for backward, measured by a forward on the meta device
    (no memory, no compute) at batch 1 and 2 of this model and stage; the difference cancels the
    weights some ops save. On the tiny model it is ~1.6x the real peak growth (errs high)."""
    n = 1 if stage == 1 else spec.num_frames
    with torch.device("meta"):
        m = build_video_model(spec)
    stage_parameters(m, stage)
    c, s = m.sample_channels, spec.sample_size

    def saved(b: int) -> int:
        seen: dict[int, int] = {}

        def pack(t):  # one count per storage: ops often save views of the same tensor
            st = t.untyped_storage()
            seen[st._cdata] = st.nbytes()
            return t
        x = torch.zeros(b * n, c, s, s, device="meta")
        cond = torch.zeros(b * n, spec.cond_channels, spec.image_size, spec.image_size, device="meta")
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            m(x, torch.zeros(b * n, dtype=torch.long, device="meta"), cond, n)
        return sum(seen.values())
    return (saved(2) - saved(1)) / n


def estimate_memory_gb(model: VideoDiffusionModel, trainable: list, stage: int,
                       mixed_precision: str = "no") -> tuple[float, float]:
    """Rough peak as (fixed, per batch sample) GB: all weights + grads and AdamW state of the
    trained ones; the activations kept for backward per sample (mixed precision halves them)."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    train = sum(p.numel() for p in trainable) * 4 * 3
    n = 1 if stage == 1 else model.spec.num_frames
    try:
        per_frame = activation_bytes(model.spec, stage)
    except Exception:  # an op without a meta kernel: a coarse bound from the sample size
        per_frame = model.sample_channels * model.spec.sample_size ** 2 * 4 * 2000
    per_sample = n * per_frame * (0.5 if mixed_precision in ("fp16", "bf16") else 1.0)
    return (weights + train) / 1e9, per_sample / 1e9


def available_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0] / 1e9
    try:
        import psutil
        return psutil.virtual_memory().available / 1e9
    except ImportError:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 1e9


def check_fits(model, trainable, cfg: "VideoTrainConfig", device: torch.device,
               flag: str = "--batch-size") -> float:
    """The estimated peak in GB, or a TrainingError naming the setting (`flag`: the CLI's, or a
    node input's name) and the batch size that fits."""
    fixed, per = estimate_memory_gb(model, trainable, cfg.stage, cfg.mixed_precision)
    need, have = fixed + cfg.batch_size * per, cfg.max_memory_gb or available_gb(device)
    if need > have:
        fit = int((have - fixed) // per) if per > 0 else 0
        n = 1 if cfg.stage == 1 else model.spec.num_frames
        fix = (f"lower {flag} to {fit} or less" if fit >= 1 else
               "even batch size 1 does not fit: use a smaller model (image_size / num_frames) or a bigger GPU")
        raise TrainingError(f"batch_size {cfg.batch_size} (stage {cfg.stage}: {n} frame(s) of "
                            f"{model.spec.image_size}x{model.spec.image_size} per sample) needs about "
                            f"{need:.1f} GB, {have:.1f} GB is free on {device.type}: {fix}" +
                            (" (or --mixed-precision bf16/fp16; the estimate errs high, --max-memory-gb "
                             "sets the budget it is checked against)" if flag.startswith("--") else ""))
    return need


# ----------------------------------------------------------------------------- model set-up
def build_or_load(cfg: VideoTrainConfig, device) -> VideoDiffusionModel:
    if cfg.init:
        return load_model(cfg.init, checkpoint=cfg.checkpoint or None, device=device)
    if not cfg.config:
        raise TrainingError("give --init (a model folder) or --config (a VideoSpec JSON)")
    path = Path(cfg.config)
    try:
        spec = VideoSpec.from_json(json.loads(path.read_text()) if path.is_file() else read_config(cfg.config))
    except FileNotFoundError:
        raise TrainingError(f"--config {cfg.config}: no such file or shipped config "
                            f"(tiny_video, pixel128_video, sd15_video)") from None
    if spec.base == "sd15":
        if not cfg.checkpoint:
            raise TrainingError("a latent (SD 1.x) model needs --checkpoint SD15.safetensors")
        from ..diffusion.sd_checkpoint import load_sd1_checkpoint
        base, vae = load_sd1_checkpoint(cfg.checkpoint, spec.unet_config, spec.vae_config)
        return build_video_model(spec, base, vae).to(device)
    return build_video_model(spec).to(device)


def is_temporal(name: str) -> bool:
    return ".temporal." in name or name.startswith("temporal.")


def stage_parameters(model: VideoDiffusionModel, stage: int) -> list:
    """Stage 1: control branch + context (temporal frozen); stage 2: those + temporal layers.
    LoRA parameters (personalization) are trained by personalization.py, not here."""
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
    cfg = read_config(model.spec.scheduler_config)
    return DDPMScheduler(**{k: v for k, v in cfg.items() if k in DDPMScheduler.__init__.__code__.co_varnames})


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


def plot_log(log_path: Path, png: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [json.loads(l) for l in log_path.read_text().splitlines() if l.strip()]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], color="tab:blue",
            marker="." if len(rows) < 40 else None)
    ax.set_xlabel("step"); ax.set_ylabel(f"diffusion loss (mean per {rows[0].get('every', '')} steps)")
    ax.set_yscale("log"); ax.grid(alpha=0.3)
    ax.set_title(f"VLOGGER video model, stage {rows[-1]['stage']} ({log_path.parent.name})")
    fig.tight_layout(); fig.savefig(png); plt.close(fig)


# ----------------------------------------------------------------------------- checkpoints
def _checkpoint(model, opt, gen: torch.Generator, step: int, folder: Path, cfg: VideoTrainConfig) -> None:
    """Model folder + optimizer/RNG tensors + JSON step, written beside and renamed (never half)."""
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(model, tmp, note=f"checkpoint at step {step}")
    sd = opt.state_dict()
    flat = {f"{pid}.{k}": (v if torch.is_tensor(v) else torch.tensor(float(v))).contiguous()
            for pid, st in sd["state"].items() for k, v in st.items()}
    flat["__rng__"] = gen.get_state()
    save_file(flat, str(tmp / "optimizer.safetensors"))
    (tmp / "state.json").write_text(json.dumps({"step": step, "stage": cfg.stage, "param_groups": sd["param_groups"],
                                                "config": asdict(cfg)}, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def _restore(opt, gen: torch.Generator, folder: Path) -> int:
    st = json.loads((folder / "state.json").read_text())
    flat = load_file(str(folder / "optimizer.safetensors"))
    gen.set_state(flat.pop("__rng__"))
    state: dict = {}
    for key, v in flat.items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": st["param_groups"]})
    return int(st["step"])


# ----------------------------------------------------------------------------- the loop
def train(cfg: VideoTrainConfig, log=print, progress=None, interrupt=None) -> Path:
    from accelerate import Accelerator
    from diffusers.optimization import get_cosine_schedule_with_warmup

    if cfg.stage not in (1, 2):
        raise TrainingError(f"--stage must be 1 or 2, got {cfg.stage}")
    if not 0 <= cfg.cond_dropout < 1:
        raise TrainingError(f"--cond-dropout must be in [0, 1), got {cfg.cond_dropout}")
    out, acc = Path(cfg.out), Accelerator(mixed_precision=cfg.mixed_precision, cpu=cfg.cpu)
    if not acc.is_main_process:
        log = lambda *a: None  # noqa: E731 (one voice with several processes)
    last = out / "last"
    resume = (last / "state.json").exists()
    if resume and not cfg.resume:
        raise TrainingError(f"{out} already holds a run (checkpoint {last}): pass --resume to continue it, "
                            f"or choose another --out")
    if resume:
        done = json.loads((last / "state.json").read_text())
        if done["stage"] != cfg.stage:
            raise TrainingError(f"{last} is a stage-{done['stage']} run; --stage {cfg.stage} cannot resume it "
                                f"(start stage 2 with --init {out / 'model'} and a new --out)")
    model = load_model(last, checkpoint=cfg.checkpoint or None, device=acc.device) if resume \
        else build_or_load(cfg, acc.device)
    model.train()
    trainable = stage_parameters(model, cfg.stage)
    need = check_fits(model, trainable, cfg, acc.device)
    clips = load_clips(cfg.data, model.spec)
    sched = make_ddpm(model)
    opt = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=0.01)
    # every process draws its own batches; a resumed run restores process 0's stream exactly
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + acc.process_index)
    start = _restore(opt, gen, last) if resume else 0
    if resume and acc.process_index:
        gen.manual_seed(cfg.seed * 1000 + acc.process_index + 7919 * start)
    lr_sched = get_cosine_schedule_with_warmup(opt, cfg.warmup, cfg.steps, last_epoch=start - 1)
    net, opt = acc.prepare(model, opt)
    raw = acc.unwrap_model(net)
    log_path = out / "loss_log.jsonl"
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        rows = log_path.read_text().splitlines() if resume and log_path.exists() else []
        # rows logged after the checkpoint belong to steps that will be run again
        log_path.write_text("".join(r + "\n" for r in rows if r.strip() and json.loads(r)["step"] <= start))
    log(f"stage {cfg.stage}: {sum(p.numel() for p in trainable):,} trained parameters, "
        f"estimated peak memory {need:.2f} GB, " + (f"resuming at step {start}" if resume else "from step 0"))
    sums, t0, step = [], time.time(), start
    while step < cfg.steps:
        if interrupt is not None:
            interrupt()
        frames, cond, n = make_batch(clips, raw, cfg.stage, cfg.batch_size, gen)
        with acc.autocast():
            loss = diffusion_loss(raw, sched, frames.to(acc.device), cond.to(acc.device), n,
                                  cfg.cond_dropout, gen, net=net)
        opt.zero_grad()
        acc.backward(loss)
        acc.clip_grad_norm_(trainable, 1.0)
        opt.step()
        lr_sched.step()
        step += 1
        sums.append(float(acc.gather(loss.detach()[None]).mean()))   # the mean over processes
        if progress is not None:
            progress(step, cfg.steps)
        over = bool(cfg.time_limit_min) and time.time() - t0 > cfg.time_limit_min * 60
        if (step % cfg.log_every == 0 or step == cfg.steps or over) and acc.is_main_process:
            row = {"step": step, "stage": cfg.stage, "loss": sum(sums) / len(sums), "every": len(sums),
                   "lr": lr_sched.get_last_lr()[0], "s_per_step": round((time.time() - t0) / (step - start), 3)}
            with log_path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            log(json.dumps(row))
        if step % cfg.log_every == 0 or over:
            sums = []
        if step % cfg.ckpt_every == 0 or step == cfg.steps or over:
            if acc.is_main_process:
                _checkpoint(raw, opt, gen, step, last, cfg)
                plot_log(log_path, out / "loss_plot.png")
            acc.wait_for_everyone()
        if over:
            log(f"time limit ({cfg.time_limit_min} min) reached at step {step}: checkpoint in {last}")
            break
    for p in raw.parameters():
        p.requires_grad_(False)
    final = out / "model"
    if acc.is_main_process:
        tmp = out / "model.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        save_model(raw.eval(), tmp, note=f"trained by vlogger_core.training.video, stage {cfg.stage}, "
                   f"{step} steps on {cfg.data}")
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        plot_log(log_path, out / "loss_plot.png")
    acc.wait_for_everyone()
    return final


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m vlogger_core.training.video", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    for f, default in asdict(VideoTrainConfig("", "")).items():
        flag = f"--{f.replace('_', '-')}"
        if f in ("data", "out"):
            ap.add_argument(flag, required=True, help=HELP[f])
        elif isinstance(default, bool):
            ap.add_argument(flag, dest=f, action="store_true", help=HELP[f])
        elif f == "mixed_precision":
            ap.add_argument(flag, dest=f, nargs="?", const="bf16", default="no", choices=["no", "fp16", "bf16"],
                            help=HELP[f] + " (the flag alone = bf16)")
        else:
            ap.add_argument(flag, dest=f, type=type(default), default=default,
                            help=f"{HELP[f]} (default {default!r})")
    try:
        final = train(VideoTrainConfig(**vars(ap.parse_args(argv))))
        if int(os.environ.get("RANK", "0")) == 0:
            print(final)
    except TrainingError as e:
        ap.exit(2, f"error: {e}\n")


if __name__ == "__main__":
    main()
