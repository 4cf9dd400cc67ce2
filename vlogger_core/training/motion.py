"""Training the motion diffusion model on a plain-file corpus (audio.wav + motion.npz per clip),
on the trainer core (trainer.py: accelerate, checkpoints, resume, loss log and plot, memory check).

Each batch uses one random crop length in [min_frames, max_train_frames] (variable-length
training, as in the paper); shorter clips are padded at the end, which a causal model never sees
from earlier frames, and the padding is masked out of the loss. Half the crops get a clean known
prefix (the context a windowed sampler carries over). Audio features get random gain and
noise-floor augmentation so the model does not depend on the recording level. Result:
OUT/model.safetensors (OUT/last/model.safetensors: the latest checkpoint's), with its losses.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

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
from .trainer import (
    Job,
    RunSettings,
    TrainingError,
    accelerator,
    activation_gb,
    fit,
    voice,
)


@dataclass
class TrainConfig(RunSettings):
    steps: int = 6000
    lr: float = 4e-4
    warmup: int = 200
    log_every: int = 25
    ckpt_every: int = 500
    min_frames: int = 24
    known_prob: float = 0.5
    max_known: int = 48
    audio_dropout: float = 0.1
    init: str = ""                   # fine-tune: start from this model (.safetensors), keep its stats


HELP = {
    "data": "corpus folder: clip folders with audio.wav + motion.npz (a synthetic corpus or a prepared dataset)",
    "out": "run folder: last/ (checkpoint), model.safetensors (result), loss_log.jsonl, loss_plot.png",
    "batch_size": "crops per step (per process)",
    "min_frames": "shortest training crop (frames); the longest is the model's max_train_frames",
    "known_prob": "share of crops given a clean known prefix (the sampler's carried-over context)",
    "max_known": "longest known prefix (frames)",
    "audio_dropout": "share of crops trained with the null audio (for classifier-free guidance)",
    "init": "fine-tune: start from this motion model (.safetensors), keeping its normalisation",
}


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
        raise TrainingError(f"no clip folders (audio.wav + motion.npz) under {root}", "data",
                            "give a prepared dataset (with speech) or a motion corpus folder")
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


def sample_gb(mc: MotionModelConfig) -> float:
    """Activation GB per batch sample (a crop of max_train_frames), measured on the meta device."""
    n = mc.max_train_frames

    def forward(b: int):
        with torch.device("meta"):
            m = MotionDiffusion(mc).train()
            return m(torch.zeros(b, n, mc.motion_dim), torch.zeros(b, dtype=torch.long),
                     torch.zeros(b, n, mc.audio_dim), torch.zeros(b, n), torch.ones(b, dtype=torch.bool))
    return activation_gb(forward)


def set_stats(model: MotionDiffusion, items, fine_tune: bool, log) -> None:
    """A fresh model's normalisation from the data. A fine-tune keeps the one it was trained
    with, except where the new data moves a channel the original corpus never moved (std at the
    1e-3 floor): normalised by the old std those values would be hundreds of sigmas and swamp
    the loss."""
    mm, ms, am, ast = compute_stats(items)
    if not fine_tune:
        model.set_stats(mm, ms, am, ast)
        return
    wide = ms > 10 * model.motion_std
    if bool(wide.any()):
        model.set_stats(torch.where(wide, mm, model.motion_mean), torch.maximum(model.motion_std, ms),
                        model.audio_mean.clone(), model.audio_std.clone())
        log(f"fine-tune: {int(wide.sum())} motion channels re-normalised to the new data")


def train(cfg: TrainConfig, model_cfg: MotionModelConfig | None = None, log=print, progress=None,
          interrupt=None) -> Path:
    """Train (or fine-tune from cfg.init; with cfg.resume, continue) a motion model; returns
    OUT/model.safetensors."""
    from diffusers import DDPMScheduler

    acc = accelerator(cfg)
    say = voice(acc, log)
    model = (load_motion_model(cfg.init) if cfg.init else MotionDiffusion(model_cfg or MotionModelConfig())).train()
    if cfg.init:
        say(f"fine-tuning {cfg.init}")
    mc, dev = model.config, acc.device
    t0 = time.time()
    items = load_dataset(cfg.data, mc.fps)
    say(f"{len(items)} clips, {sum(m.shape[0] for m, _ in items) / mc.fps / 60:.1f} min, "
        f"loaded in {time.time() - t0:.0f} s; model {model.num_parameters() / 1e6:.2f} M params")
    set_stats(model, items, bool(cfg.init), say)
    noise_sched = DDPMScheduler(num_train_timesteps=mc.num_train_timesteps, beta_schedule=mc.beta_schedule,
                                prediction_type="sample")

    def loss(net, batch, gen):
        x, a, valid, known = (v.to(dev) for v in batch)
        x0 = model.normalize_motion(x)
        noise = torch.randn(x0.shape, generator=gen).to(dev)
        t = torch.randint(0, mc.num_train_timesteps, (x0.shape[0],), generator=gen).to(dev)
        x_t = torch.where(known[..., None] > 0, x0, noise_sched.add_noise(x0, noise, t))
        keep = (torch.rand(x0.shape[0], generator=gen) >= cfg.audio_dropout).to(dev)
        x0_hat = net(x_t, t, model.normalize_audio(a), known, keep)
        return motion_loss(x0_hat.float(), x0, valid * (1 - known), mc.num_expr, mc.lambda_temp_expr,
                           mc.lambda_temp_pose)

    def save(m, path: Path, step: int, rows: list) -> None:
        tail = rows[-8:]
        final = {k: round(sum(r[k] for r in tail) / len(tail), 5)
                 for k in ("loss", "l_diff", "l_temp_expr", "l_temp_pose")} if tail else {}
        save_motion_model(m, str(path), {"step": step, "final_losses": final, "train_config": asdict(cfg)})
    job = Job(model, list(model.parameters()), lambda gen: make_batch(items, cfg, mc.max_train_frames, gen), loss,
              save, "model.safetensors", per_sample_gb=sample_gb(mc), sample=f"a crop of up to {mc.max_train_frames} "
              f"frames", title=f"VLOGGER motion model ({Path(cfg.out).name})")
    fit(acc, job, cfg, log, progress, interrupt)
    return Path(cfg.out) / "model.safetensors"
