"""VLOGGER stage 2: the temporal image-to-image diffusion model (frozen base + control branch).

    noisy frames x_t [B*N, C, h, w] ──► frozen base UNet (+ trainable temporal convs in its down blocks)
                                         ▲ zero-initialised residuals at every skip and the mid block
    control input [B*N, K, H, W] ──► ControlNet-style trainable copy of the base encoder
                                         (+ temporal convs in its down blocks)

Control input channel order (K = 3 + N_c + 3 + 3), all at the PIXEL size of the frames:
    [0:3]            dense map C_d        (template vertex positions as colours, 0..1, 0 off-body)
    [3:3+N_c]        semantic one-hot C_m (N_c body-part classes, 0/1)
    [3+N_c:6+N_c]    warped reference C_w (0..1, 0 where nothing was warped)
    [6+N_c:9+N_c]    the reference image  (RGB 0..1, the same image repeated for every frame)
The first 3 + N_c + 3 are exactly `Controls.to_channels()` from render/controls.py.

Text conditioning: the paper conditions on controls + reference only. The base UNet still needs
`encoder_hidden_states`, so the model owns a small learned context (`context_tokens` x
cross_attention_dim), zeros at creation and trained with the control branch; no text encoder.

Bases: "pixel128" (configs/pixel128_unet.json, samples are RGB in -1..1) or "sd15" (a Stable
Diffusion 1.x UNet + VAE from the user's single-file checkpoint, samples are VAE latents; see
sd_checkpoint.py). No weights are shipped: sampling is meaningful only with trained parts.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
from torch import nn

from ..body.parts import PART_NAMES
from ..errors import VloggerError
from .temporal import add_temporal_layers, set_num_frames

CONFIGS = Path(__file__).resolve().parent / "configs"
# N_c: the body's part classes without background (body.parts.PART_NAMES, what
# render.controls.Controls.to_channels() one-hot encodes). Trained folders store their own value.
DEFAULT_NUM_PARTS = len(PART_NAMES) - 1
SPEC_FIX = "use a model folder written by the training nodes (its config.json describes the model)"


def read_config(name_or_dict) -> dict:
    """A shipped config by name (configs/<name>.json) or a dict; keys starting with '_' dropped."""
    if isinstance(name_or_dict, dict):
        cfg = dict(name_or_dict)
    else:
        cfg = json.loads((CONFIGS / f"{name_or_dict}.json").read_text())
    return {k: v for k, v in cfg.items() if not k.startswith("_")}


def control_channels(num_parts: int) -> int:
    """Channels of Controls.to_channels(): dense (3) + semantic one-hot (N_c) + warped ref (3)."""
    return 3 + int(num_parts) + 3


@dataclass
class VideoSpec:
    """What the trained parts were built for; saved as JSON beside their weights."""

    base: str = "pixel128"               # "pixel128" | "sd15" (names of shipped configs)
    unet_config: dict | str = "pixel128_unet"
    vae_config: dict | str | None = None  # latent bases only
    scheduler_config: dict | str = "pixel_scheduler"
    num_parts: int = DEFAULT_NUM_PARTS   # N_c (15 for the shipped part list)
    num_frames: int = 8                  # N, the clip length the temporal layers were trained on
    image_size: int = 128                # pixel side of frames, controls and reference (square)
    latent_scale: int = 1                # pixel px per sample px: 1 (pixel base) or 8 (SD VAE)
    cond_embedding_channels: tuple[int, ...] = (64,)  # hint encoder; 2**(len-1) == latent_scale
    context_tokens: int = 1
    temporal_kernel: int = 3
    temporal_in: tuple[str, ...] = ("base", "control")
    lora: dict | None = None             # peft LoraConfig kwargs for the frozen base (personalization)
    extra: dict = field(default_factory=dict)

    @property
    def cond_channels(self) -> int:
        return control_channels(self.num_parts) + 3

    @property
    def sample_size(self) -> int:
        return self.image_size // self.latent_scale

    def to_json(self) -> dict:
        d = asdict(self)
        d["cond_embedding_channels"] = list(self.cond_embedding_channels)
        d["temporal_in"] = list(self.temporal_in)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "VideoSpec":
        d = dict(d)
        d["cond_embedding_channels"] = tuple(d.get("cond_embedding_channels", (64,)))
        d["temporal_in"] = tuple(d.get("temporal_in", ("base", "control")))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    def validate(self) -> None:
        scale = 2 ** (len(self.cond_embedding_channels) - 1)
        bad = sorted(set(self.temporal_in) - {"base", "control"})
        for wrong, problem in (
                (self.num_parts < 1, f"num_parts (N_c) must be >= 1, got {self.num_parts}"),
                (self.num_frames < 1, f"num_frames must be >= 1, got {self.num_frames}"),
                (scale != self.latent_scale, "cond_embedding_channels must downsample by latent_scale "
                                             f"(2**(len-1) = {scale} vs {self.latent_scale})"),
                (self.image_size % self.latent_scale,
                 f"image_size {self.image_size} is not a multiple of latent_scale {self.latent_scale}"),
                (bad, f"temporal_in may hold 'base' and/or 'control', not {bad}")):
            if wrong:
                raise VloggerError(f"the model spec is inconsistent: {problem}", "spec", SPEC_FIX)


def pixel128_spec(**overrides) -> VideoSpec:
    return VideoSpec(**overrides)


class VideoDiffusionModel(nn.Module):
    """Frozen base UNet + trainable control branch, temporal convs and context."""

    def __init__(self, spec: VideoSpec, base: UNet2DConditionModel, vae: AutoencoderKL | None = None):
        super().__init__()
        spec.validate()
        self.spec = spec
        cfg = base.config
        if spec.latent_scale > 1 and vae is None:
            raise VloggerError("a latent-space base needs its VAE", "vae", "pass the VAE of the SD 1.x checkpoint")
        if cfg.sample_size and spec.sample_size % (2 ** (len(cfg.block_out_channels) - 1)):
            raise VloggerError(f"sample size {spec.sample_size} must be divisible by "
                               f"{2 ** (len(cfg.block_out_channels) - 1)} for this UNet", "spec", SPEC_FIX)
        base.requires_grad_(False)
        base.eval()
        # The control branch is a copy of the base encoder (weights copied), built BEFORE the base
        # gets its temporal layers so it starts from the exact pretrained blocks.
        self.control = ControlNetModel.from_unet(
            base, conditioning_embedding_out_channels=tuple(spec.cond_embedding_channels),
            conditioning_channels=spec.cond_channels, load_weights_from_unet=True)
        self.base = base
        self.vae = vae
        if vae is not None:
            vae.requires_grad_(False)
            vae.eval()
        self.context = nn.Parameter(torch.zeros(1, spec.context_tokens, cfg.cross_attention_dim))
        self.temporal = nn.ModuleList()
        if "base" in spec.temporal_in:
            self.temporal.extend(add_temporal_layers(self.base, spec.temporal_kernel))
        if "control" in spec.temporal_in:
            self.temporal.extend(add_temporal_layers(self.control, spec.temporal_kernel))
        if spec.lora:
            # LoRA B starts at zero (peft's default), so adding it changes nothing until trained.
            from peft import LoraConfig, inject_adapter_in_model
            inject_adapter_in_model(LoraConfig(**spec.lora), self.base)

    # --- what training touches and what a trained-parts file holds ---------------------------
    def trained_state_dict(self) -> dict[str, torch.Tensor]:
        sd = {f"control.{k}": v for k, v in self.control.state_dict().items() if ".temporal." not in k}
        sd.update({f"temporal.{k}": v for k, v in self.temporal.state_dict().items()})
        sd["context"] = self.context.detach()
        sd.update({f"base_lora.{k}": v for k, v in self.base.state_dict().items() if ".lora_" in k})
        return sd

    def trainable_parameters(self):
        return [p for n, p in self.named_parameters()
                if not n.startswith(("base.", "vae.")) or ".temporal." in n or ".lora_" in n]

    # --- forward ----------------------------------------------------------------------------
    def check_inputs(self, sample: torch.Tensor, cond: torch.Tensor, num_frames: int) -> None:
        s = self.spec
        if cond.shape[1] != s.cond_channels:
            raise ValueError(f"control input has {cond.shape[1]} channels, the model takes {s.cond_channels} "
                             f"(dense 3 + semantic {s.num_parts} + warped 3 + reference 3)")
        if tuple(cond.shape[-2:]) != (s.image_size, s.image_size):
            raise ValueError(f"controls are {tuple(cond.shape[-2:])}, the model takes {s.image_size}x{s.image_size}")
        if sample.shape[0] != cond.shape[0] or sample.shape[0] % num_frames:
            raise ValueError(f"batch of {sample.shape[0]} samples / {cond.shape[0]} controls is not B*N "
                             f"with N={num_frames}")

    def forward(self, sample: torch.Tensor, timestep, cond: torch.Tensor, num_frames: int,
                use_control: bool = True, conditioning_scale: float = 1.0) -> torch.Tensor:
        """Noise prediction for frames [B*N, C, h, w] at `timestep` given control input [B*N, K, H, W]."""
        self.check_inputs(sample, cond, num_frames)
        set_num_frames(self, num_frames)
        ctx = self.context.to(sample.dtype).expand(sample.shape[0], -1, -1)
        down = mid = None
        if use_control:
            down, mid = self.control(sample, timestep, encoder_hidden_states=ctx, controlnet_cond=cond,
                                     conditioning_scale=conditioning_scale, return_dict=False)
        return self.base(sample, timestep, encoder_hidden_states=ctx, down_block_additional_residuals=down,
                         mid_block_additional_residual=mid, return_dict=False)[0]

    # --- sample space <-> pixels ----------------------------------------------------------------
    @property
    def sample_channels(self) -> int:
        return self.base.config.in_channels

    def to_pixels(self, x: torch.Tensor, chunk: int = 4) -> torch.Tensor:
        """Model samples -> RGB 0..1 [F, 3, H, W] (decodes latents in chunks to bound memory)."""
        if self.vae is None:
            return ((x.clamp(-1, 1) + 1) / 2).float()
        sf = self.vae.config.scaling_factor
        outs = [self.vae.decode(x[i:i + chunk] / sf).sample for i in range(0, x.shape[0], chunk)]
        return ((torch.cat(outs).clamp(-1, 1) + 1) / 2).float()

    def from_pixels(self, rgb: torch.Tensor, chunk: int = 4) -> torch.Tensor:
        """RGB 0..1 -> model samples (latent mean for a VAE base)."""
        x = rgb * 2 - 1
        if self.vae is None:
            return x
        sf = self.vae.config.scaling_factor
        return torch.cat([self.vae.encode(x[i:i + chunk]).latent_dist.mean * sf
                          for i in range(0, x.shape[0], chunk)])


def build_base_unet(config) -> UNet2DConditionModel:
    return UNet2DConditionModel.from_config(read_config(config))


def build_vae(config) -> AutoencoderKL:
    return AutoencoderKL.from_config(read_config(config))


def build_video_model(spec: VideoSpec, base: UNet2DConditionModel | None = None,
                      vae: AutoencoderKL | None = None) -> VideoDiffusionModel:
    """A video model with a freshly initialised control branch/temporal layers; the base is built
    from spec.unet_config (random weights) when not given (tests, or before loading weights)."""
    if base is None:
        base = build_base_unet(spec.unet_config)
    if vae is None and spec.vae_config is not None:
        vae = build_vae(spec.vae_config)
    return VideoDiffusionModel(spec, base, vae)
