"""TINY RANDOM weights in the layouts ComfyUI's own loaders detect, for wiring tests of the shipped
GPU-bridge workflows on the CPU (never results: the weights are noise, so is the output).

    python scripts/make_tiny_comfy_models.py MODELS_DIR

writes, under the exact names workflows/api/sd15_openpose.json asks for:
  MODELS_DIR/checkpoints/v1-5-pruned-emaonly-fp16.safetensors  (SD 1.5, original LDM layout)
  MODELS_DIR/controlnet/control_v11p_sd15_openpose_fp16.safetensors  (SD 1.5 ControlNet, LDM layout)

ComfyUI (comfy/model_detection.py, supported_models.SD15) reads the UNet's layout from the
weights and matches only context_dim 768, model_channels 320, conv proj_in and no ADM / temporal
attention, so the UNet (and the ControlNet, its encoder) has 2 levels (320, 640), 1 res block and
depth-1 transformers. The VAE (comfy/sd.py VAE: ch 128, ch_mult 1,2,4,4) and the CLIP-L text
model (comfy/sd1_clip_config.json) have fixed configs: full size, random. About 330 M parameters,
fp16, seeded, written whole or not at all, and skipped when a complete file is already there.
"""
from __future__ import annotations

import argparse
import itertools
import json
import struct
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vlogger_core.diffusion.sd_checkpoint import UNET_PREFIX, unet_to_ldm, vae_to_ldm
from vlogger_core.files import atomic_write

SD15_CHECKPOINT = ("checkpoints", "v1-5-pruned-emaonly-fp16.safetensors")
SD15_CONTROLNET = ("controlnet", "control_v11p_sd15_openpose_fp16.safetensors")
VERSION = "1"
META = {"vlogger_tiny_random": VERSION,
        "note": "TINY RANDOM weights for wiring tests only: output is noise, not a result."}

# the smallest UNet ComfyUI still detects as SD 1.5 (model_channels 320, context_dim 768)
SD15_TINY_UNET = {"sample_size": 64, "in_channels": 4, "out_channels": 4, "layers_per_block": 1,
                  "block_out_channels": [320, 640], "cross_attention_dim": 768, "attention_head_dim": 8,
                  "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
                  "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "norm_num_groups": 32,
                  "transformer_layers_per_block": 1, "use_linear_projection": False}
# the SD VAE as ComfyUI builds it for any 'first_stage_model.*' KL autoencoder (fixed config)
SD_VAE = {"in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2,
          "block_out_channels": [128, 256, 512, 512], "down_block_types": ["DownEncoderBlock2D"] * 4,
          "up_block_types": ["UpDecoderBlock2D"] * 4, "norm_num_groups": 32}
# CLIP ViT-L/14 text model (comfy/sd1_clip_config.json): fixed
CLIP_L = {"vocab": 49408, "positions": 77, "width": 768, "layers": 12, "mlp": 3072}
HINT_CHANNELS = [3, 16, 16, 32, 32, 96, 96, 256]   # comfy/cldm/cldm.py input_hint_block, then model_channels


def random_like(shapes: dict[str, tuple], seed: int) -> dict[str, torch.Tensor]:
    """Seeded fp16 values for every shape: matrices and kernels N(0, 1/fan_in) (activations keep
    their scale through the layers), 1-D weights (norm gains) 1, biases 0."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in shapes.items():
        if len(shape) >= 2:
            fan_in = int(torch.Size(shape[1:]).numel())
            t = torch.randn(shape, generator=g).mul_(fan_in ** -0.5)
        else:
            t = torch.ones(shape) if name.endswith("weight") else torch.zeros(shape)
        out[name] = t.half()
    return out


def shapes_of(module_class, config: dict) -> dict[str, tuple]:
    """Parameter shapes of a diffusers model built on the meta device (no memory, no init)."""
    with torch.device("meta"):
        model = module_class.from_config(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def clip_l_shapes() -> dict[str, tuple]:
    c = CLIP_L
    w, p = c["width"], "cond_stage_model.transformer.text_model."
    shapes = {p + "embeddings.token_embedding.weight": (c["vocab"], w),
              p + "embeddings.position_embedding.weight": (c["positions"], w),
              p + "final_layer_norm.weight": (w,), p + "final_layer_norm.bias": (w,)}
    for i in range(c["layers"]):
        layer = f"{p}encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            shapes.update({f"{layer}self_attn.{proj}.weight": (w, w), f"{layer}self_attn.{proj}.bias": (w,)})
        for norm in ("layer_norm1", "layer_norm2"):
            shapes.update({f"{layer}{norm}.weight": (w,), f"{layer}{norm}.bias": (w,)})
        shapes.update({f"{layer}mlp.fc1.weight": (c["mlp"], w), f"{layer}mlp.fc1.bias": (c["mlp"],),
                       f"{layer}mlp.fc2.weight": (w, c["mlp"]), f"{layer}mlp.fc2.bias": (w,)})
    return shapes


def controlnet_shapes(unet_ldm: dict[str, tuple]) -> dict[str, tuple]:
    """An LDM ControlNet ('control_model.*', comfy/cldm/cldm.py) for this UNet: its encoder
    (time_embed, input_blocks, middle_block), one 1x1 zero conv per input block, the hint encoder
    and middle_block_out (random here, not zero, so the control path changes the result)."""
    enc = {"control_model." + k[len(UNET_PREFIX):]: s for k, s in unet_ldm.items()
           if k.startswith(tuple(UNET_PREFIX + b for b in ("time_embed.", "input_blocks.", "middle_block.")))}
    blocks = sorted({int(k.split(".")[2]) for k in enc if ".input_blocks." in k})
    for i in blocks:     # each block's output channels: conv_in, a res block's last conv, a downsampler
        b = f"{UNET_PREFIX}input_blocks.{i}.0."
        ch = next(unet_ldm[b + k][0] for k in ("weight", "out_layers.3.weight", "op.weight") if b + k in unet_ldm)
        enc.update({f"control_model.zero_convs.{i}.0.weight": (ch, ch, 1, 1), f"control_model.zero_convs.{i}.0.bias": (ch,)})
    model_channels = unet_ldm[UNET_PREFIX + "input_blocks.0.0.weight"][0]
    chans = HINT_CHANNELS + [model_channels]
    for j, (a, b) in enumerate(itertools.pairwise(chans)):
        enc.update({f"control_model.input_hint_block.{2 * j}.weight": (b, a, 3, 3),
                    f"control_model.input_hint_block.{2 * j}.bias": (b,)})
    mid = unet_ldm[UNET_PREFIX + "middle_block.2.out_layers.3.weight"][0]
    enc.update({"control_model.middle_block_out.0.weight": (mid, mid, 1, 1), "control_model.middle_block_out.0.bias": (mid,)})
    return enc


def is_complete(path: Path) -> bool:
    """A whole safetensors file of this generator's version (header intact, data to the end)."""
    try:
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
        end = max(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__")
        return (header.get("__metadata__", {}).get("vlogger_tiny_random") == VERSION
                and path.stat().st_size == 8 + n + end)
    except (OSError, ValueError, KeyError, struct.error):
        return False


def save(tensors: dict[str, torch.Tensor], path: Path) -> Path:
    from safetensors.torch import save_file
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as partial:
        save_file(tensors, str(partial), metadata=META)
    return path


def make_sd15_openpose_models(models_dir: Path, seed: int = 0) -> dict[str, Path]:
    """The tiny random SD 1.5 checkpoint and OpenPose ControlNet of workflows/api/sd15_openpose.json
    in a ComfyUI models dir; files already complete are kept."""
    models_dir = Path(models_dir)
    ckpt, cnet = models_dir.joinpath(*SD15_CHECKPOINT), models_dir.joinpath(*SD15_CONTROLNET)
    made = {"checkpoint": ckpt, "controlnet": cnet}
    if is_complete(ckpt) and is_complete(cnet):
        return made
    from diffusers import AutoencoderKL, UNet2DConditionModel
    unet = unet_to_ldm(shapes_of(UNet2DConditionModel, SD15_TINY_UNET), SD15_TINY_UNET)
    if not is_complete(ckpt):
        vae = random_like(shapes_of(AutoencoderKL, SD_VAE), seed + 1)
        tensors = {**random_like(unet, seed), **vae_to_ldm(vae, SD_VAE), **random_like(clip_l_shapes(), seed + 2)}
        save({k: v.contiguous() for k, v in tensors.items()}, ckpt)
    if not is_complete(cnet):
        save(random_like(controlnet_shapes(unet), seed + 3), cnet)
    return made


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models_dir", type=Path)
    for k, v in make_sd15_openpose_models(ap.parse_args().models_dir).items():
        print(f"{k}: {v} ({v.stat().st_size / 1e6:.0f} MB)")
