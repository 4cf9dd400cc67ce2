"""Lip closure from speech: on which frames the lips are shut (p, b, m, and pauses).

Why a head of its own: the motion diffusion model (model.py) follows the mouth's opening well
(r 0.84 with the viseme target, models/motion/MODEL_CARD.md) but smooths away the short, sharp
seals of p/b/m; on the output video the lips never met on a bilabial. This small temporal CNN
over the same audio features (audio/features.py) predicts p(shut) per frame. Like the motion
model it sees the audio up to its own frame plus a short look-ahead (2 frames, 80 ms at 25 fps:
lips close before the sound of a p/b/m starts) and nothing later, so a stream waits 80 ms. Trained on the
synthetic corpus's phoneme timelines (training/closure.py); `close_lips` applies it to a Motion.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..audio.features import FEATURE_DIM, audio_features, num_frames
from ..errors import VloggerError
from ..paths import SHIPPED_MODELS
from .params import (
    ARKIT52,
    Motion,
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_rot6d,
    rot6d_to_matrix,
)

FORMAT = "vlogger-lip-closure-v1"
CONFIG_KEY = "vlogger_lip_closure_config"
DEFAULT_PATH = SHIPPED_MODELS / "motion" / "vlogger_lip_closure.safetensors"
# channels that part the lips (scaled down where they are shut)
_OPENERS = ("mouthFunnel", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft",
            "mouthUpperUpRight", "mouthRollLower", "mouthRollUpper")
SEAL_OPEN = 0.1            # jawOpen kept at a seal (under render/talking_video's LIP_SEAL, 0.12)
SHARPEN = (0.2, 0.6)        # p(shut) below the first: left as sampled; above the second: sealed


@dataclass
class ClosureConfig:
    fps: float = 25.0
    audio_dim: int = FEATURE_DIM
    width: int = 64
    dilations: tuple = (1, 2, 4, 8)
    lookahead: int = 2          # frames of future audio each frame may see


class LipClosureNet(nn.Module):
    """[B, N, A] audio features -> [B, N] logits of 'lips shut'."""

    def __init__(self, config: ClosureConfig = ClosureConfig()):
        super().__init__()
        self.config = c = config
        self.register_buffer("audio_mean", torch.zeros(c.audio_dim))
        self.register_buffer("audio_std", torch.ones(c.audio_dim))
        self.inp = nn.Conv1d(c.audio_dim, c.width, c.lookahead + 2)   # frames t-1 .. t+lookahead
        self.layers = nn.ModuleList(nn.Conv1d(c.width, c.width, 3, dilation=d) for d in c.dilations)
        self.out = nn.Conv1d(c.width, 1, 1)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        c = self.config
        x = ((feats - self.audio_mean) / self.audio_std).transpose(1, 2)
        # padding on the left only (plus `lookahead` on the right for the first layer): causal
        x = F.gelu(self.inp(F.pad(x, (1, c.lookahead), mode="replicate")))
        for layer, d in zip(self.layers, c.dilations):
            x = x + F.gelu(layer(F.pad(x, (2 * d, 0), mode="replicate")))
        return self.out(x)[:, 0]

    @torch.no_grad()
    def shut(self, feats: torch.Tensor) -> torch.Tensor:
        """[N, A] -> [N] probability that the lips are shut."""
        return torch.sigmoid(self(feats[None].to(self.audio_mean.device)))[0].cpu()


def save_closure(model: LipClosureNet, path: str, meta: dict | None = None) -> None:
    info = {"format": FORMAT, CONFIG_KEY: json.dumps(asdict(model.config))}
    info.update({k: json.dumps(v) for k, v in (meta or {}).items()})
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path, metadata=info)


def load_closure(path: str | None = None, device="cpu") -> LipClosureNet:
    """The lip-closure head (the shipped one by default), eval mode."""
    path = str(path or DEFAULT_PATH)
    try:
        from safetensors import safe_open
        with safe_open(path, "pt") as f:
            meta = f.metadata() or {}
        state = load_file(path)
    except (OSError, SafetensorError) as e:
        raise VloggerError(f"cannot read the lip-closure model {path}: {e}", "lip_closure",
                           "reinstall the pack (models/motion/) or set lip_closure to 0") from None
    if meta.get("format") != FORMAT:
        raise VloggerError(f"{path} is not a lip-closure model", "lip_closure",
                           "use the file written by scripts/train_lip_closure.py")
    cfg = json.loads(meta[CONFIG_KEY])
    cfg["dilations"] = tuple(cfg["dilations"])
    model = LipClosureNet(ClosureConfig(**cfg))
    model.load_state_dict(state)
    return model.eval().to(device)


@lru_cache(maxsize=4)
def shipped_closure(device: str = "cpu") -> LipClosureNet:
    return load_closure(None, device)


def shut_track(head: LipClosureNet, wave16k: torch.Tensor, fps: float, n: int) -> torch.Tensor:
    """[n] p(shut) at `fps` for mono 16 kHz speech (computed at the head's own fps, resampled)."""
    hf = head.config.fps
    m = max(1, num_frames(wave16k.shape[0], hf))
    p = head.shut(audio_features(wave16k, hf, m))
    if n == m and abs(fps - hf) < 1e-6:
        return p
    t = (torch.arange(n, dtype=torch.float32) + 0.5) / fps * hf - 0.5
    return torch.from_numpy(np.interp(t.numpy(), np.arange(m), p.numpy())).float()


def close_lips(motion: Motion, shut: torch.Tensor, amount: float = 1.0) -> Motion:
    """Shut the lips where `shut` [N] (0..1) says so, as lips do on a p/b/m: the jaw stays a
    little open (at most SEAL_OPEN of jawOpen and the matching jaw pitch: a smaller opening the
    renderer's soft lips keep sealed, render/talking_video.sealed), the lip-parting channels go
    to 0 (no extra press: on a still, silent face a constant press made the pose detector
    jitter, and one that depends on how long a seal lasts is not causal). A sharpened probability
    (SHARPEN: 0.2..0.6 -> 0..1) so confident frames seal fully and doubtful ones are left to the
    motion model (on held-out TTS, p > 0.6 on 2-5 % of the open frames, on 75 % of the bilabial
    ones)."""
    if amount <= 0 or motion.expression_set != "arkit52":
        return motion
    from .synthetic.priors import JAW_MAX_RAD
    lo, hi = SHARPEN
    s = ((shut.float() - lo) / (hi - lo)).clamp(0, 1)[:motion.num_frames] * min(1.0, amount)
    keep = 1 - s
    expr = motion.expression.clone()
    jo = ARKIT52.index("jawOpen")
    expr[:, jo] = expr[:, jo] * keep + s * expr[:, jo].clamp(max=SEAL_OPEN)
    idx = [ARKIT52.index(n) for n in _OPENERS]
    expr[:, idx] = expr[:, idx] * keep[:, None]
    r6 = motion.rot6d.clone()
    if "jaw" in motion.joints:
        j = motion.joints.index("jaw")
        aa = matrix_to_axis_angle(rot6d_to_matrix(r6[:, j]))
        ang = aa.norm(dim=-1)
        new = ang * keep + s * ang.clamp(max=SEAL_OPEN * JAW_MAX_RAD)
        r6[:, j] = matrix_to_rot6d(axis_angle_to_matrix(aa * (new / ang.clamp_min(1e-8))[:, None]))
    return Motion(motion.fps, motion.expression_set, expr, r6, list(motion.joints))
