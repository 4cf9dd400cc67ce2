"""Training the lip-closure head (motion/closure.py) on a synthetic corpus's phoneme timelines,
on the trainer core (trainer.py).

Labels: a frame is 'shut' when the phoneme at its centre is a bilabial (p, b, m) or a pause
(visemes.lips_shut). Bilabials, pauses and open frames each weigh a third of the loss, whatever
their counts (bilabials are ~4 % of frames: weighted by share alone, the head learnt the pauses
and opened late on a p/b/m). Audio features get the motion trainer's gain and
noise-floor augmentation, and NOISE_P of the crops get a stretch of non-speech (white, pink or
brown noise, mains hum; noise_bank) labelled shut: noise is not speech, the lips stay together.
Result: OUT/closure.safetensors.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..audio.features import audio_features, num_frames
from ..audio.speech_io import MODEL_SAMPLE_RATE
from ..audio.tts import is_pause
from ..motion.closure import SHARPEN, ClosureConfig, LipClosureNet, save_closure
from ..motion.synthetic.corpus import clip_folders, load_clip
from ..motion.synthetic.visemes import lips_shut
from .motion import augment_audio
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
class ClosureTrainConfig(RunSettings):
    steps: int = 3000
    batch_size: int = 32
    lr: float = 2e-3
    warmup: int = 100
    log_every: int = 50
    ckpt_every: int = 1000
    crop: int = 200


HELP = {
    "data": "corpus folder (scripts/make_motion_corpus.py): clip folders with audio.wav + phonemes.json; "
            "several folders joined with ':' are read together",
    "crop": "frames per training crop",
}


OPEN, BILABIAL, PAUSE = 0, 1, 2
NOISE_P = 0.25              # share of crops with a stretch of noise in them
NOISE_FRAMES = (12, 150)    # its length in frames


def frame_kind(phoneme: str) -> int:
    """OPEN, BILABIAL or PAUSE: what the lips do for the phoneme at a frame's centre."""
    return PAUSE if is_pause(phoneme) else BILABIAL if lips_shut(phoneme) else OPEN


def clip_labels(folder, fps: float) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(audio features [N, A], kind [N]: OPEN / BILABIAL / PAUSE) of one corpus clip; None
    without a timeline."""
    wave, _, timeline = load_clip(folder)
    if timeline is None:
        return None
    n = max(1, num_frames(wave.shape[0], fps))
    kind = torch.tensor([frame_kind(p) for p in timeline.at_frames(fps, n)], dtype=torch.long)
    return audio_features(wave, fps, n).float(), kind


def load_dataset(root: str, fps: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The clips of one corpus folder, or of several joined with os.pathsep (like PATH)."""
    folders = [f for r in root.split(os.pathsep) if r for f in clip_folders(r)]
    items = [x for x in (clip_labels(f, fps) for f in folders) if x is not None]
    if not items:
        raise TrainingError(f"no corpus clips with phonemes.json under {root}", "data",
                            "write one with scripts/make_motion_corpus.py")
    return items


def noise_bank(fps: float, seconds: float = 12.0, seed: int = 0) -> torch.Tensor:
    """Audio features [N, A] of non-speech: white, pink and brown noise and mains hum (50 and
    60 Hz with harmonics), `seconds` of each at a speech-like level (the batches' gain
    augmentation spreads it over 26 dB)."""
    rng = np.random.default_rng(seed)
    sr = MODEL_SAMPLE_RATE
    t = int(seconds * sr)

    def coloured(power: float) -> np.ndarray:     # 1/f^power spectrum
        f = np.fft.rfftfreq(t, 1 / sr)
        spec = (rng.standard_normal(len(f)) + 1j * rng.standard_normal(len(f))) / np.maximum(f, 20.0) ** (power / 2)
        return np.fft.irfft(spec, t)

    time = np.arange(t) / sr
    hum = sum(np.sin(2 * np.pi * k * base * time + rng.uniform(0, 6.3)) / k
              for base in (50.0, 60.0) for k in (1, 2, 3, 5))
    out = []
    for w in (rng.standard_normal(t), coloured(1.0), coloured(2.0), hum + 0.05 * rng.standard_normal(t)):
        w = (0.1 * w / (np.sqrt(np.mean(w ** 2)) + 1e-9)).astype(np.float32)
        out.append(audio_features(torch.from_numpy(w), fps).float())
    return torch.cat(out)


def make_batch(items, crop: int, b: int, gen: torch.Generator, noise: torch.Tensor | None = None):
    """(features [b, crop, A], shut labels [b, crop], kind [b, crop], valid [b, crop])."""
    A = items[0][0].shape[1]
    a, kind, valid = torch.zeros(b, crop, A), torch.zeros(b, crop, dtype=torch.long), torch.zeros(b, crop)
    for k, i in enumerate(torch.randint(0, len(items), (b,), generator=gen).tolist()):
        feats, kinds = items[i]
        s = int(torch.randint(0, max(1, feats.shape[0] - crop + 1), (1,), generator=gen))
        m = min(crop, feats.shape[0] - s)
        f, q = feats[s:s + m].clone(), kinds[s:s + m].clone()
        if noise is not None and float(torch.rand(1, generator=gen)) < NOISE_P:
            n = min(m, int(torch.randint(NOISE_FRAMES[0], NOISE_FRAMES[1] + 1, (1,), generator=gen)))
            at = int(torch.randint(0, m - n + 1, (1,), generator=gen))
            src = int(torch.randint(0, noise.shape[0] - n + 1, (1,), generator=gen))
            f[at:at + n], q[at:at + n] = noise[src:src + n], PAUSE
        a[k, :m], kind[k, :m], valid[k, :m] = augment_audio(f, gen), q, 1
        a[k, m:] = a[k, m - 1]
    return a, (kind != OPEN).float(), kind, valid


def class_weights(items) -> torch.Tensor:
    """[3] loss weight per kind: each kind's frames weigh, in all, the same (module doc)."""
    counts = torch.bincount(torch.cat([q for _, q in items]), minlength=3).float().clamp_min(1)
    return counts.sum() / (3 * counts)


def train(cfg: ClosureTrainConfig, model_cfg: ClosureConfig | None = None, log=print, progress=None,
          interrupt=None) -> Path:
    acc = accelerator(cfg)
    say = voice(acc, log)
    model = LipClosureNet(model_cfg or ClosureConfig()).train()
    fps, dev = model.config.fps, acc.device
    items = load_dataset(cfg.data, fps)
    feats = torch.cat([f for f, _ in items])
    model.audio_mean.copy_(feats.mean(0))
    model.audio_std.copy_(feats.std(0).clamp_min(1e-3))
    kinds = torch.bincount(torch.cat([q for _, q in items]), minlength=3)
    say(f"{len(items)} clips, {feats.shape[0] / fps / 60:.1f} min, frames open / bilabial / pause "
        f"{kinds.tolist()}")
    weights = class_weights(items).to(dev)
    noise = noise_bank(fps)

    def loss(net, batch, gen):
        a, y, kind, valid = (v.to(dev) for v in batch)
        bce = F.binary_cross_entropy_with_logits(net(a), y, reduction="none") * weights[kind]
        return {"loss": (bce * valid).sum() / valid.sum().clamp_min(1)}

    def save(m, path: Path, step: int, rows: list) -> None:
        tail = rows[-8:]
        final = round(float(np.mean([r["loss"] for r in tail])), 5) if tail else None
        save_closure(m, str(path), {"step": step, "final_loss": final, "train_config": asdict(cfg)})

    def forward(b: int):
        with torch.device("meta"):
            return LipClosureNet(model.config).train()(torch.zeros(b, cfg.crop, model.config.audio_dim))

    job = Job(model, list(model.parameters()), lambda gen: make_batch(items, cfg.crop, cfg.batch_size, gen, noise), loss,
              save, "closure.safetensors", per_sample_gb=activation_gb(forward), sample=f"a crop of {cfg.crop} frames",
              title=f"VLOGGER lip closure ({Path(cfg.out).name})")
    fit(acc, job, cfg, log, progress, interrupt)
    return Path(cfg.out) / "closure.safetensors"


@torch.no_grad()
def evaluate(model: LipClosureNet, root: str) -> dict:
    """Per-frame figures on a corpus (use the held-out split): recall of shut frames (bilabials
    and pauses apart), false shut on open frames, at p > 0.5; bilabials sealed (p above the
    sampler's SHARPEN[1]) and noise read as shut (p > 0.5 on a noise_bank of another seed)."""
    fps = model.config.fps
    bil, pau, opn, sealed = [], [], [], []
    by_kind = {OPEN: opn, BILABIAL: bil, PAUSE: pau}
    for folder in clip_folders(root):
        wave, _, tl = load_clip(folder)
        if tl is None:
            continue
        n = max(1, num_frames(wave.shape[0], fps))
        prob = model.shut(audio_features(wave, fps, n)).numpy()
        p = prob > 0.5
        ph = tl.at_frames(fps, n)
        for k, q in enumerate(ph):
            kind = frame_kind(q)
            by_kind[kind].append(bool(p[k]))
            if kind == BILABIAL:
                sealed.append(bool(prob[k] > SHARPEN[1]))
    noise = model.shut(noise_bank(fps, seed=1)).numpy() > 0.5
    return {"bilabial_recall": round(float(np.mean(bil)), 3), "bilabial_sealed": round(float(np.mean(sealed)), 3),
            "pause_recall": round(float(np.mean(pau)), 3), "false_shut": round(float(np.mean(opn)), 3),
            "noise_shut": round(float(noise.mean()), 3), "frames": len(bil) + len(pau) + len(opn)}
