"""VLOGGER stage 1: the audio-to-motion diffusion network M (architecture, loss, save/load).

Faithful to the paper (see ../shared/paper/vlogger-spec.md, "Stage 1"):
- a transformer over the time axis with 4 multi-head self-attention layers and a CAUSAL mask
  (token k attends to tokens <= k only). For speed a token packs `frames_per_token` (2)
  consecutive frames, so a frame may see the audio of the other frame in its token (40 ms of
  look-ahead at 25 fps, about the anticipation of real coarticulation) and nothing later;
- sinusoidal positional encodings for the frame index and for the diffusion step, an embedding
  MLP for the audio features and one for the diffusion step;
- diffusion over x0 = per-frame [expression | 6D residual rotations] (Motion.as_vector()),
  normalised per channel with mean/std stored in the model; the network predicts x0 directly;
- loss L_diff + lambda_temp * L_temp with separate lambdas for expression and pose channels.
Extras needed for long audio and guidance (documented, not in the paper's text):
- a per-frame "known" flag: frames flagged 1 carry clean motion (context from the previous
  window), so sampling continues a motion in windows without seams;
- a learned null audio embedding, used for audio dropout in training and classifier-free guidance.
Noise schedules come from diffusers (DDPMScheduler in training, DDIM in sampling).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..audio.features import FEATURE_DIM
from ..errors import VloggerError
from .params import MOTION_JOINTS, expression_names

CONFIG_KEY = "vlogger_motion_config"
FORMAT = "vlogger-motion-diffusion-v1"
MODEL_FIX = "use a motion model written by scripts/train_motion.py (a .safetensors file)"


@dataclass
class MotionModelConfig:
    fps: float = 25.0
    expression_set: str = "arkit52"
    joints: list[str] = field(default_factory=lambda: list(MOTION_JOINTS))
    audio_dim: int = FEATURE_DIM
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    ff_mult: int = 2
    dropout: float = 0.1
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    frames_per_token: int = 2          # consecutive frames packed into one transformer token
    max_train_frames: int = 256        # longest training crop = default sampling window
    lambda_temp_expr: float = 0.05     # livelier face
    lambda_temp_pose: float = 0.5      # smoother head and hands

    @property
    def num_expr(self) -> int:
        return len(expression_names(self.expression_set))

    @property
    def motion_dim(self) -> int:
        return self.num_expr + 6 * len(self.joints)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, s: str) -> "MotionModelConfig":
        d = json.loads(s)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


def sinusoidal(pos: torch.Tensor, dim: int) -> torch.Tensor:
    """[...] positions (frame index or diffusion step) -> [..., dim] sin/cos encodings."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=pos.device, dtype=torch.float32) / half)
    a = pos.float()[..., None] * freqs
    return torch.cat([a.sin(), a.cos()], dim=-1)


_MASKS: dict = {}


def causal_mask(n: int, device) -> torch.Tensor:
    """Additive [n, n] mask: -inf above the diagonal (no attention to future tokens). Cached:
    sampling calls the network hundreds of times with the same window length."""
    key = (n, str(device))
    if key not in _MASKS:
        if len(_MASKS) > 64:
            _MASKS.clear()
        _MASKS[key] = torch.triu(torch.full((n, n), float("-inf"), device=device), diagonal=1)
    return _MASKS[key]


class MotionDiffusion(nn.Module):
    def __init__(self, config: MotionModelConfig):
        super().__init__()
        self.config = c = config
        d = c.d_model
        self.register_buffer("motion_mean", torch.zeros(c.motion_dim))
        self.register_buffer("motion_std", torch.ones(c.motion_dim))
        self.register_buffer("audio_mean", torch.zeros(c.audio_dim))
        self.register_buffer("audio_std", torch.ones(c.audio_dim))
        p = c.frames_per_token
        self.motion_in = nn.Linear(p * (c.motion_dim + 1), d)    # + the "known frame" flag
        self.audio_mlp = nn.Sequential(nn.Linear(p * c.audio_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.null_audio = nn.Parameter(torch.zeros(d))
        self.step_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        layer = nn.TransformerEncoderLayer(d, c.n_heads, c.ff_mult * d, c.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, c.n_layers, enable_nested_tensor=False)
        self.out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, p * c.motion_dim))

    # --- normalisation -------------------------------------------------------------------
    def normalize_motion(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.motion_mean) / self.motion_std

    def denormalize_motion(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.motion_std + self.motion_mean

    def normalize_audio(self, a: torch.Tensor) -> torch.Tensor:
        return (a - self.audio_mean) / self.audio_std

    def set_stats(self, motion_mean, motion_std, audio_mean, audio_std) -> None:
        self.motion_mean.copy_(motion_mean)
        self.motion_std.copy_(motion_std.clamp_min(1e-3))
        self.audio_mean.copy_(audio_mean)
        self.audio_std.copy_(audio_std.clamp_min(1e-3))

    # --- network -------------------------------------------------------------------------
    def forward(self, x_t: torch.Tensor, t: torch.Tensor, audio: torch.Tensor,
                known: torch.Tensor | None = None, audio_keep: torch.Tensor | None = None) -> torch.Tensor:
        """x_t [B,N,D] noisy normalised motion (clean where known=1); t [B] steps;
        audio [B,N,A] normalised features; known [B,N] 0/1; audio_keep [B] bool (False -> the
        null audio embedding, for CFG). Returns the predicted clean x0 [B,N,D] (normalised)."""
        b, n, _ = x_t.shape
        p = self.config.frames_per_token
        if known is None:
            known = x_t.new_zeros(b, n)
        pad = (-n) % p   # pad the END: a causal model's earlier tokens never see it
        if pad:
            x_t = torch.cat([x_t, x_t[:, -1:].expand(b, pad, -1)], 1)
            audio = torch.cat([audio, audio[:, -1:].expand(b, pad, -1)], 1)
            known = torch.cat([known, known.new_zeros(b, pad)], 1)
        m = (n + pad) // p
        tok = torch.cat([x_t, known[..., None].to(x_t.dtype)], dim=-1).reshape(b, m, -1)
        h = self.motion_in(tok)
        a = self.audio_mlp(audio.reshape(b, m, -1))
        if audio_keep is not None:
            a = torch.where(audio_keep[:, None, None], a, self.null_audio.expand_as(a))
        step = self.step_mlp(sinusoidal(t.to(x_t.device), self.config.d_model))[:, None]
        pos = sinusoidal(torch.arange(m, device=x_t.device), self.config.d_model)[None]
        h = h + a + step + pos
        mask = causal_mask(m, x_t.device)
        # The layers are called one by one: same maths as self.transformer(h, mask), without the
        # encoder wrapper's per-call checks (~10% of a sampling step for this small model).
        for layer in self.transformer.layers:
            h = layer(h, src_mask=mask, is_causal=True)
        return self.out(h).reshape(b, m * p, -1)[:, :n]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def motion_loss(x0_hat: torch.Tensor, x0: torch.Tensor, valid: torch.Tensor, num_expr: int,
                lambda_expr: float, lambda_pose: float) -> dict:
    """L_diff = masked MSE(x0_hat, x0); L_temp = mean squared frame-to-frame difference of the
    PREDICTION (as the paper writes it), split into expression and pose channels so each gets
    its own lambda. valid [B,N] masks padding (and known context frames for L_diff)."""
    v = valid.to(x0.dtype)
    se = ((x0_hat - x0) ** 2).mean(-1)
    l_diff = (se * v).sum() / v.sum().clamp_min(1)
    d = x0_hat[:, 1:] - x0_hat[:, :-1]
    pair = v[:, 1:] * v[:, :-1]
    denom = pair.sum().clamp_min(1)
    l_te = ((d[..., :num_expr] ** 2).mean(-1) * pair).sum() / denom
    l_tp = ((d[..., num_expr:] ** 2).mean(-1) * pair).sum() / denom
    total = l_diff + lambda_expr * l_te + lambda_pose * l_tp
    return {"loss": total, "l_diff": l_diff, "l_temp_expr": l_te, "l_temp_pose": l_tp}


def save_motion_model(model: MotionDiffusion, path: str, extra_meta: dict | None = None) -> None:
    """Weights + stats as safetensors; the config (and any training info) as JSON metadata."""
    meta = {CONFIG_KEY: model.config.to_json(), "format": FORMAT}
    for k, v in (extra_meta or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(sd, path, metadata=meta)


def read_metadata(path: str) -> dict:
    from safetensors import safe_open
    with safe_open(path, framework="pt") as f:
        return dict(f.metadata() or {})


def load_motion_model(path: str, device="cpu") -> MotionDiffusion:
    """The model of a file written by save_motion_model; a VloggerError (arg "path") otherwise."""
    try:
        meta = read_metadata(path)
        if meta.get("format") != FORMAT or CONFIG_KEY not in meta:
            raise VloggerError(f"{path} is not a VLOGGER motion model (no '{CONFIG_KEY}' metadata)", "path", MODEL_FIX)
        model = MotionDiffusion(MotionModelConfig.from_json(meta[CONFIG_KEY]))
        model.load_state_dict(load_file(path, device="cpu"))
    except VloggerError:
        raise
    except (OSError, SafetensorError, RuntimeError, TypeError, ValueError) as e:   # unreadable or mismatched
        raise VloggerError(f"cannot load {path} ({e})", "path", MODEL_FIX) from None
    model.training_info = {k: v for k, v in meta.items() if k not in (CONFIG_KEY, "format")}
    return model.to(device).eval()
