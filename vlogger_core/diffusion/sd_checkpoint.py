"""Stable Diffusion 1.x UNet + VAE from a single-file checkpoint, fully offline.

A user's ComfyUI checkpoint (models/checkpoints/*.safetensors) holds the original (LDM) key layout.
We read only the UNet ("model.diffusion_model.*") and VAE ("first_stage_model.*") tensors, classify
the file with diffusers' own `infer_diffusers_model_type`, and convert with diffusers' own
`convert_ldm_unet_checkpoint` / `convert_ldm_vae_checkpoint` against the configs shipped in
configs/ — the same converters `from_single_file` uses, but with no hub lookup at any point.

`unet_to_ldm` / `vae_to_ldm` go the other way (diffusers -> LDM keys); they exist so tests can make
a tiny SD-format checkpoint, and they are checked by a round trip through diffusers' converter.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders.single_file_utils import (
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
    infer_diffusers_model_type,
)
from safetensors import SafetensorError, safe_open

from ..errors import VloggerError
from .model import read_config
from .weights import mismatches

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CHECKPOINT_FIX = "choose a full single-file SD 1.x checkpoint (.safetensors, e.g. v1-5) from models/checkpoints"
_NAMES = {"v2": "Stable Diffusion 2.x", "xl_base": "SDXL", "xl_refiner": "SDXL refiner",
          "playground-v2-5": "Playground v2.5", "inpainting": "an SD 1.x inpainting model (9 input channels)",
          "upscale": "the SD x4 upscaler", "controlnet": "a ControlNet", "sd3": "SD3", "sd35_large": "SD3.5",
          "sd35_medium": "SD3.5", "flux-dev": "FLUX", "flux-schnell": "FLUX"}


class _Shape:
    def __init__(self, shape):
        self.shape = torch.Size(shape)


def read_sd_checkpoint(checkpoint: str | Path) -> tuple[dict, dict]:
    """(unet+vae tensors in LDM layout, {key: shape} of everything) from a .safetensors file."""
    path = Path(checkpoint)
    if path.suffix.lower() != ".safetensors":
        raise VloggerError(f"'{path.name}' is not a .safetensors file; pickled checkpoints (.ckpt/.pt) are "
                           "never loaded", "checkpoint", "convert it to .safetensors first")
    tensors, shapes = {}, {}
    try:
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():
                shapes[key] = f.get_slice(key).get_shape()
                if key.startswith((UNET_PREFIX, VAE_PREFIX)):
                    tensors[key] = f.get_tensor(key)
    except (OSError, SafetensorError) as e:
        raise VloggerError(f"cannot read '{path.name}' ({e})", "checkpoint", CHECKPOINT_FIX) from None
    return tensors, shapes


def check_sd1(shapes: dict, unet_config: dict) -> None:
    """Raise a clear VloggerError unless the file looks like an SD 1.x checkpoint for this config."""
    if not any(k.startswith(UNET_PREFIX) for k in shapes):
        raise VloggerError("this file holds no Stable Diffusion UNet (no 'model.diffusion_model.*' keys): it is not "
                           "a single-file SD 1.x checkpoint (LoRAs, VAEs, diffusers folders and other "
                           "architectures are not accepted)", "checkpoint", CHECKPOINT_FIX)
    kind = infer_diffusers_model_type({k: _Shape(s) for k, s in shapes.items()})
    if kind != "v1":
        raise VloggerError(f"this checkpoint looks like {_NAMES.get(kind, kind)}, not Stable Diffusion 1.x; "
                           "the latent video base needs an SD 1.x-family checkpoint", "checkpoint", CHECKPOINT_FIX)
    if not any(k.startswith(VAE_PREFIX) for k in shapes):
        raise VloggerError("this checkpoint has no VAE ('first_stage_model.*')", "checkpoint", CHECKPOINT_FIX)
    key = UNET_PREFIX + "input_blocks.0.0.weight"
    if key in shapes and list(shapes[key])[1] != unet_config["in_channels"]:
        raise VloggerError(f"the UNet takes {list(shapes[key])[1]} input channels, SD 1.x takes "
                           f"{unet_config['in_channels']}", "checkpoint", CHECKPOINT_FIX)


def _load_checked(model: torch.nn.Module, sd: dict, what: str) -> None:
    problems = mismatches(model.state_dict(), sd)
    if problems:
        raise VloggerError("\n".join([f"{what}: the checkpoint does not match the SD 1.x architecture", *problems]),
                           "checkpoint", CHECKPOINT_FIX)
    model.load_state_dict(sd)


def load_sd1_checkpoint(checkpoint: str | Path, unet_config="sd15_unet", vae_config="sd15_vae",
                        dtype: torch.dtype = torch.float32) -> tuple[UNet2DConditionModel, AutoencoderKL]:
    """UNet + VAE of an SD 1.x single-file checkpoint, built from the shipped configs (offline)."""
    ucfg, vcfg = read_config(unet_config), read_config(vae_config)
    tensors, shapes = read_sd_checkpoint(checkpoint)
    check_sd1(shapes, ucfg)
    tensors = {k: v.to(dtype) for k, v in tensors.items()}
    unet = UNet2DConditionModel.from_config(ucfg)
    _load_checked(unet, convert_ldm_unet_checkpoint(tensors, ucfg), "UNet")
    vae = AutoencoderKL.from_config(vcfg)
    _load_checked(vae, convert_ldm_vae_checkpoint(tensors, vcfg), "VAE")
    if dtype != torch.float32:
        unet, vae = unet.to(dtype), vae.to(dtype)
    return unet, vae


# --- diffusers -> LDM layout (for making test checkpoints) ---------------------------------------
_RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
           ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]
_UNET_FIXED = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
               "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}


def unet_to_ldm(sd: dict, config: dict) -> dict:
    """diffusers UNet2DConditionModel keys -> 'model.diffusion_model.*' LDM keys."""
    per = config["layers_per_block"] + 1
    out = {}
    for key, v in sd.items():
        new = None
        for a, b in _UNET_FIXED.items():
            if key.startswith(a + "."):
                new = b + key[len(a):]
        if m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
            b, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
            new = f"input_blocks.{b * per + j + 1}.{0 if kind == 'resnets' else 1}.{rest}"
        elif m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
            new = f"input_blocks.{(int(m[1]) + 1) * per}.0.op.{m[2]}"
        elif m := re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key):
            new = f"middle_block.{int(m[2]) * 2 if m[1] == 'resnets' else 1}.{m[3]}"
        elif m := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
            b, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
            new = f"output_blocks.{b * per + j}.{0 if kind == 'resnets' else 1}.{rest}"
        elif m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
            b = int(m[1])
            has_attn = any(k.startswith(f"up_blocks.{b}.attentions.") for k in sd)
            new = f"output_blocks.{b * per + per - 1}.{2 if has_attn else 1}.conv.{m[2]}"
        if new is None:
            raise ValueError(f"no LDM name for UNet key {key}")
        if ".resnets." in key:
            for a, b in _RESNET:
                new = re.sub(rf"\.{a}\.", f".{b}.", new)
        out[UNET_PREFIX + new] = v
    return out


def vae_to_ldm(sd: dict, config: dict) -> dict:
    """diffusers AutoencoderKL keys -> 'first_stage_model.*' LDM keys (attention as 1x1 convs)."""
    n_up = len(config["up_block_types"])
    attn = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
    out = {}
    for key, v in sd.items():
        new = key.replace("conv_norm_out", "norm_out")
        if m := re.match(r"(encoder|decoder)\.(down|up)_blocks\.(\d+)\.(resnets|downsamplers|upsamplers)\.(\d+)\.(.*)", key):
            part, d, i, kind, j, rest = m.groups()
            i = int(i) if d == "down" else n_up - 1 - int(i)
            if kind == "resnets":
                new = f"{part}.{d}.{i}.block.{j}.{rest.replace('conv_shortcut', 'nin_shortcut')}"
            else:
                new = f"{part}.{d}.{i}.{'downsample' if d == 'down' else 'upsample'}.{rest}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.*)", key):
            new = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(.*)", key):
            new = f"{m[1]}.mid.attn_1.{attn[m[2]]}.{m[3]}"
            if v.ndim == 2:
                v = v[:, :, None, None]
        out[VAE_PREFIX + new] = v
    return out
