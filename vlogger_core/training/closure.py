"""Training the lip-closure head (motion/closure.py) on a synthetic corpus's phoneme timelines,
on the trainer core (trainer.py).

Labels: a frame is 'shut' when the phoneme at its centre is a bilabial (p, b, m) or a pause
(visemes.lips_shut). Audio features get the motion trainer's gain and noise-floor augmentation.
Result: OUT/closure.safetensors.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..audio.features import audio_features, num_frames
from ..audio.tts import is_pause
from ..motion.closure import ClosureConfig, LipClosureNet, save_closure
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
    "data": "corpus folder (scripts/make_motion_corpus.py): clip folders with audio.wav + phonemes.json",
    "crop": "frames per training crop",
}


def clip_labels(folder, fps: float) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(audio features [N, A], shut labels [N]) of one corpus clip; None without a timeline."""
    wave, _, timeline = load_clip(folder)
    if timeline is None:
        return None
    n = max(1, num_frames(wave.shape[0], fps))
    shut = torch.tensor([lips_shut(p) for p in timeline.at_frames(fps, n)], dtype=torch.float32)
    return audio_features(wave, fps, n).float(), shut


def load_dataset(root: str, fps: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
    items = [x for x in (clip_labels(f, fps) for f in clip_folders(root)) if x is not None]
    if not items:
        raise TrainingError(f"no corpus clips with phonemes.json under {root}", "data",
                            "write one with scripts/make_motion_corpus.py")
    return items


def make_batch(items, crop: int, b: int, gen: torch.Generator):
    A = items[0][0].shape[1]
    a, y, valid = torch.zeros(b, crop, A), torch.zeros(b, crop), torch.zeros(b, crop)
    for k, i in enumerate(torch.randint(0, len(items), (b,), generator=gen).tolist()):
        feats, shut = items[i]
        s = int(torch.randint(0, max(1, feats.shape[0] - crop + 1), (1,), generator=gen))
        m = min(crop, feats.shape[0] - s)
        a[k, :m], y[k, :m], valid[k, :m] = augment_audio(feats[s:s + m], gen), shut[s:s + m], 1
        a[k, m:] = a[k, m - 1]
    return a, y, valid


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
    share = float(torch.cat([s for _, s in items]).mean())
    say(f"{len(items)} clips, {feats.shape[0] / fps / 60:.1f} min, {100 * share:.1f} % of frames shut")
    pos_weight = torch.tensor((1 - share) / max(share, 1e-3), device=dev)

    def loss(net, batch, gen):
        a, y, valid = (v.to(dev) for v in batch)
        bce = F.binary_cross_entropy_with_logits(net(a), y, pos_weight=pos_weight, reduction="none")
        return {"loss": (bce * valid).sum() / valid.sum().clamp_min(1)}

    def save(m, path: Path, step: int, rows: list) -> None:
        tail = rows[-8:]
        final = round(float(np.mean([r["loss"] for r in tail])), 5) if tail else None
        save_closure(m, str(path), {"step": step, "final_loss": final, "train_config": asdict(cfg)})

    def forward(b: int):
        with torch.device("meta"):
            return LipClosureNet(model.config).train()(torch.zeros(b, cfg.crop, model.config.audio_dim))

    job = Job(model, list(model.parameters()), lambda gen: make_batch(items, cfg.crop, cfg.batch_size, gen), loss,
              save, "closure.safetensors", per_sample_gb=activation_gb(forward), sample=f"a crop of {cfg.crop} frames",
              title=f"VLOGGER lip closure ({Path(cfg.out).name})")
    fit(acc, job, cfg, log, progress, interrupt)
    return Path(cfg.out) / "closure.safetensors"


@torch.no_grad()
def evaluate(model: LipClosureNet, root: str) -> dict:
    """Per-frame figures on a corpus (use the held-out split): recall of shut frames (bilabials
    and pauses apart), false shut on open frames, at p > 0.5."""
    fps = model.config.fps
    bil, pau, opn = [], [], []
    for folder in clip_folders(root):
        wave, _, tl = load_clip(folder)
        if tl is None:
            continue
        n = max(1, num_frames(wave.shape[0], fps))
        p = model.shut(audio_features(wave, fps, n)).numpy() > 0.5
        ph = tl.at_frames(fps, n)
        for k, q in enumerate(ph):
            (pau if is_pause(q) else bil if lips_shut(q) else opn).append(bool(p[k]))
    return {"bilabial_recall": round(float(np.mean(bil)), 3), "pause_recall": round(float(np.mean(pau)), 3),
            "false_shut": round(float(np.mean(opn)), 3), "frames": len(bil) + len(pau) + len(opn)}
