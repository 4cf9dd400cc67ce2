"""Training the motion diffusion model on a plain-file corpus (audio.wav + motion.npz per clip).

Built on accelerate (multi-GPU / mixed precision where available, CPU here). Each batch uses one
random crop length in [min_frames, max_train_frames] (variable-length training, as in the paper);
shorter clips are padded at the end, which a causal model never sees from earlier frames, and
the padding is masked out of the loss. Half the crops get a clean known prefix (the context a
windowed sampler carries over). Audio features get random gain and noise-floor augmentation so
the model does not depend on the recording level. Checkpoints are safetensors (weights + AdamW
state) and resumable; losses go to loss_log.jsonl and loss_plot.png.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..audio.features import LOG_EPS, N_MELS, SUB_STEPS, audio_features
from ..motion.model import (
    MotionDiffusion,
    MotionModelConfig,
    load_motion_model,
    motion_loss,
    save_motion_model,
)
from ..motion.resample import resample_motion
from ..motion.synthetic.corpus import clip_folders, load_clip


@dataclass
class TrainConfig:
    data: str
    out: str
    steps: int = 6000
    batch_size: int = 16
    lr: float = 4e-4
    warmup: int = 200
    min_frames: int = 24
    known_prob: float = 0.5
    max_known: int = 48
    audio_dropout: float = 0.1
    seed: int = 0
    log_every: int = 25
    ckpt_every: int = 500
    mixed_precision: str = "no"
    cpu: bool = False
    time_limit_min: float = 0.0      # stop (and save) after this wall time; 0 = no limit
    init: str = ""                   # fine-tune: start from this model (.safetensors), keep its stats


def load_dataset(root: str, fps: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """[(motion vectors [N,D], audio features [N,A])] for every clip folder under root."""
    items = []
    for folder in clip_folders(root):
        wave, motion, _ = load_clip(folder)
        if abs(motion.fps - fps) > 1e-3:
            motion = resample_motion(motion, fps)
        feats = audio_features(wave, fps, motion.num_frames)
        items.append((motion.as_vector().float(), feats.float()))
    if not items:
        raise FileNotFoundError(f"no clip folders (audio.wav + motion.npz) under {root}")
    return items


def augment_audio(feats: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Exact gain change + a white noise floor, applied in the linear power domain."""
    gain_db = float(torch.empty(1).uniform_(-20, 6, generator=gen))
    floor = 10 ** float(torch.empty(1).uniform_(-9, -5, generator=gen))
    g2 = 10 ** (gain_db / 10)
    nm = SUB_STEPS * N_MELS
    p = (feats[:, :nm].exp() - LOG_EPS).clamp_min(0) * g2 + floor
    rms = (feats[:, nm:].exp() - 1e-4).clamp_min(0) * math.sqrt(g2) + math.sqrt(floor)
    return torch.cat([torch.log(p + LOG_EPS), torch.log(rms + 1e-4)], 1)


def make_batch(items, cfg: TrainConfig, max_frames: int, gen: torch.Generator):
    b = cfg.batch_size
    n = int(torch.randint(cfg.min_frames, max_frames + 1, (1,), generator=gen))
    idx = torch.randint(0, len(items), (b,), generator=gen)
    D, A = items[0][0].shape[1], items[0][1].shape[1]
    x = torch.zeros(b, n, D)
    a = torch.zeros(b, n, A)
    valid = torch.zeros(b, n)
    known = torch.zeros(b, n)
    for k, i in enumerate(idx.tolist()):
        mv, feats = items[i]
        start = int(torch.randint(0, max(1, mv.shape[0] - n + 1), (1,), generator=gen))
        seg = slice(start, start + n)
        m = mv[seg].shape[0]
        x[k, :m], a[k, :m], valid[k, :m] = mv[seg], augment_audio(feats[seg], gen), 1
        x[k, m:] = mv[seg][-1]  # pad with the last frame (masked anyway)
        if float(torch.rand(1, generator=gen)) < cfg.known_prob:
            c = int(torch.randint(1, min(cfg.max_known, m - 1) + 1, (1,), generator=gen)) if m > 2 else 0
            known[k, :c] = 1
    return x, a, valid, known


def compute_stats(items):
    mv = torch.cat([m for m, _ in items])
    af = torch.cat([a for _, a in items])
    return mv.mean(0), mv.std(0), af.mean(0), af.std(0)


def _save_ckpt(path: Path, model, opt, step: int, cfg: TrainConfig) -> None:
    """Weights (with config metadata) + AdamW moments, all safetensors."""
    save_motion_model(model, str(path / "model.safetensors"), {"step": step})
    state = {}
    for gi, group in enumerate(opt.param_groups):
        for pi, p in enumerate(group["params"]):
            st = opt.state.get(p, {})
            for k, v in st.items():
                state[f"{gi}.{pi}.{k}"] = torch.as_tensor(v).detach().cpu().float().reshape(-1) if k == "step" else v.detach().cpu()
    save_file(state, str(path / "optimizer.safetensors"), metadata={"step": str(step)})
    (path / "train_state.json").write_text(json.dumps({"step": step, "config": cfg.__dict__}))


def _load_opt(path: Path, opt) -> None:
    state = load_file(str(path / "optimizer.safetensors"))
    for gi, group in enumerate(opt.param_groups):
        for pi, p in enumerate(group["params"]):
            st = {k.split(".", 2)[2]: v for k, v in state.items() if k.startswith(f"{gi}.{pi}.")}
            if st:
                if "step" in st:
                    st["step"] = st["step"].reshape(())
                opt.state[p] = st


def plot_losses(log_path: Path, png_path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [json.loads(l) for l in log_path.read_text().splitlines() if l.strip()]
    if not rows:
        return
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    s = [r["step"] for r in rows]
    ax[0].plot(s, [r["loss"] for r in rows], label="total")
    ax[0].plot(s, [r["l_diff"] for r in rows], label="L_diff")
    ax[0].set_yscale("log"); ax[0].set_xlabel("step"); ax[0].legend(); ax[0].set_title("loss")
    ax[1].plot(s, [r["l_temp_expr"] for r in rows], label="L_temp expression")
    ax[1].plot(s, [r["l_temp_pose"] for r in rows], label="L_temp pose")
    ax[1].set_yscale("log"); ax[1].set_xlabel("step"); ax[1].legend(); ax[1].set_title("temporal terms")
    fig.tight_layout()
    fig.savefig(png_path, dpi=90)
    plt.close(fig)


def train(cfg: TrainConfig, model_cfg: MotionModelConfig | None = None, log=print) -> Path:
    from accelerate import Accelerator
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_cosine_schedule_with_warmup

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    acc = Accelerator(mixed_precision=cfg.mixed_precision, cpu=cfg.cpu)
    torch.manual_seed(cfg.seed)
    resume = out / "last"
    if (resume / "model.safetensors").exists():
        model = load_motion_model(str(resume / "model.safetensors")).train()
        start = json.loads((resume / "train_state.json").read_text())["step"]
        log(f"resuming from step {start}")
    elif cfg.init:
        model = load_motion_model(cfg.init).train()
        start = 0
        log(f"fine-tuning {cfg.init}")
    else:
        model = MotionDiffusion(model_cfg or MotionModelConfig()).train()
        start = 0
    mc = model.config
    t0 = time.time()
    items = load_dataset(cfg.data, mc.fps)
    log(f"{len(items)} clips, {sum(m.shape[0] for m, _ in items) / mc.fps / 60:.1f} min, "
        f"loaded in {time.time() - t0:.0f} s; model {model.num_parameters() / 1e6:.2f} M params")
    if start == 0 and not cfg.init:
        model.set_stats(*compute_stats(items))
    elif start == 0:
        # a fine-tune keeps the normalisation it was trained with, except where the new data
        # moves a channel the original corpus never moved (std at the 1e-3 floor): normalised by
        # the old std those values would be hundreds of sigmas and swamp the loss
        mm, ms, am, ast = compute_stats(items)
        wide = ms > 10 * model.motion_std
        if bool(wide.any()):
            model.set_stats(torch.where(wide, mm, model.motion_mean), torch.maximum(model.motion_std, ms),
                            model.audio_mean.clone(), model.audio_std.clone())
            log(f"fine-tune: {int(wide.sum())} motion channels re-normalised to the new data")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    if start:
        _load_opt(resume, opt)
    sched = get_cosine_schedule_with_warmup(opt, cfg.warmup, cfg.steps)
    for _ in range(start):
        sched.step()
    model, opt = acc.prepare(model, opt)
    noise_sched = DDPMScheduler(num_train_timesteps=mc.num_train_timesteps,
                                beta_schedule=mc.beta_schedule, prediction_type="sample")
    gen = torch.Generator().manual_seed(cfg.seed + start)
    raw = acc.unwrap_model(model)
    log_path = out / "loss_log.jsonl"
    acc_sum: dict = {}
    t_start = time.time()
    step = start
    while step < cfg.steps:
        x, a, valid, known = make_batch(items, cfg, mc.max_train_frames, gen)
        x, a, valid, known = (v.to(acc.device) for v in (x, a, valid, known))
        x0 = raw.normalize_motion(x)
        noise = torch.randn(x0.shape, generator=gen).to(acc.device)
        t = torch.randint(0, mc.num_train_timesteps, (x0.shape[0],), generator=gen).to(acc.device)
        x_t = noise_sched.add_noise(x0, noise, t)
        x_t = torch.where(known[..., None] > 0, x0, x_t)
        keep = (torch.rand(x0.shape[0], generator=gen) >= cfg.audio_dropout).to(acc.device)
        with acc.autocast():
            x0_hat = model(x_t, t, raw.normalize_audio(a), known, keep)
        losses = motion_loss(x0_hat.float(), x0, valid * (1 - known), mc.num_expr,
                             mc.lambda_temp_expr, mc.lambda_temp_pose)
        opt.zero_grad()
        acc.backward(losses["loss"])
        acc.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        for k, v in losses.items():
            acc_sum[k] = acc_sum.get(k, 0.0) + float(v.detach())
        if step % cfg.log_every == 0 and acc.is_main_process:
            row = {"step": step, **{k: v / cfg.log_every for k, v in acc_sum.items()},
                   "lr": sched.get_last_lr()[0], "elapsed_s": round(time.time() - t_start, 1)}
            acc_sum = {}
            with log_path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            log(json.dumps(row))
        over_time = cfg.time_limit_min and time.time() - t_start > cfg.time_limit_min * 60
        if acc.is_main_process and (step % cfg.ckpt_every == 0 or step == cfg.steps or over_time):
            (out / "last").mkdir(exist_ok=True)
            _save_ckpt(out / "last", raw, opt, step, cfg)
            plot_losses(log_path, out / "loss_plot.png")
        if over_time:
            log(f"time limit reached at step {step}")
            break
    acc.wait_for_everyone()
    final = out / "model.safetensors"
    if acc.is_main_process:
        rows = [json.loads(l) for l in log_path.read_text().splitlines() if l.strip()]
        tail = rows[-8:]
        final_losses = {k: round(sum(r[k] for r in tail) / len(tail), 5)
                        for k in ("loss", "l_diff", "l_temp_expr", "l_temp_pose")} if tail else {}
        save_motion_model(raw.eval(), str(final), {"step": step, "final_losses": final_losses,
                                                   "train_config": {k: v for k, v in cfg.__dict__.items()}})
        plot_losses(log_path, out / "loss_plot.png")
    return final
