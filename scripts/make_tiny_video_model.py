"""Make TINY RANDOM stage-2 model folders for tests (never results: the weights are noise).

    python scripts/make_tiny_video_model.py OUT_DIR [--sd-checkpoint PATH]

writes OUT_DIR/tiny-random-pixel (video model, pixel base, 32x32, N=4),
OUT_DIR/tiny-random-sr64 (SR 32 -> 64) and, with --sd-checkpoint, a tiny SD 1.x-format
single-file checkpoint at PATH plus OUT_DIR/tiny-random-sd (latent video model for it).
The temporal convs, context and control joins get small random values (not zeros) so the tests
exercise every path; a fresh model would have them at zero.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vlogger_core.diffusion.model import DEFAULT_NUM_PARTS, VideoSpec, build_video_model  # noqa: E402
from vlogger_core.diffusion.super_resolution import SRSpec, SuperResolutionModel  # noqa: E402

NOTE = "TINY RANDOM weights for tests only: output is noise, not a result."


def tiny_unet(in_ch=3, out_ch=3, size=32, cross=32, attention=True) -> dict:
    return dict(sample_size=size, in_channels=in_ch, out_channels=out_ch, layers_per_block=1,
                block_out_channels=[16, 32], norm_num_groups=8, cross_attention_dim=cross, attention_head_dim=8,
                down_block_types=["DownBlock2D", "CrossAttnDownBlock2D" if attention else "DownBlock2D"],
                up_block_types=["CrossAttnUpBlock2D" if attention else "UpBlock2D", "UpBlock2D"],
                **({} if attention else {"mid_block_type": None}))


def tiny_vae() -> dict:
    return dict(block_out_channels=[8, 8, 16, 16], down_block_types=["DownEncoderBlock2D"] * 4,
                up_block_types=["UpDecoderBlock2D"] * 4, latent_channels=4, layers_per_block=1,
                norm_num_groups=4, scaling_factor=0.18215)


def tiny_pixel_spec(num_parts: int = DEFAULT_NUM_PARTS, num_frames: int = 4, size: int = 32) -> VideoSpec:
    return VideoSpec(base="pixel128", unet_config=tiny_unet(size=size), num_parts=num_parts,
                     num_frames=num_frames, image_size=size, cond_embedding_channels=(8,))


def tiny_sd_spec(num_parts: int = DEFAULT_NUM_PARTS, num_frames: int = 4) -> VideoSpec:
    return VideoSpec(base="sd15", unet_config=tiny_unet(in_ch=4, out_ch=4, size=8), vae_config=tiny_vae(),
                     scheduler_config="sd15_scheduler", num_parts=num_parts, num_frames=num_frames,
                     image_size=64, latent_scale=8, cond_embedding_channels=(8, 8, 8, 16))


def tiny_sr_spec(in_size: int = 32, num_frames: int = 4) -> SRSpec:
    return SRSpec(unet_config=tiny_unet(in_ch=6, size=2 * in_size, cross=16, attention=False),
                  in_size=in_size, out_size=2 * in_size, num_frames=num_frames)


def randomize_trained_parts(model, std: float = 0.02, seed: int = 0) -> None:
    """Small random values in the zero-initialised parts, so they are not no-ops in tests."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.temporal.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
        model.context.copy_(torch.randn(model.context.shape, generator=g) * std)
        if hasattr(model, "control"):
            for name, p in model.control.named_parameters():
                if "controlnet_" in name or "conv_out" in name:
                    p.copy_(torch.randn(p.shape, generator=g) * std)


def write_tiny_sd_checkpoint(path: Path, spec: VideoSpec, seed: int = 0) -> Path:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file

    from vlogger_core.diffusion.sd_checkpoint import unet_to_ldm, vae_to_ldm
    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_config(spec.unet_config)
    vae = AutoencoderKL.from_config(spec.vae_config)
    sd = {**unet_to_ldm(unet.state_dict(), spec.unet_config), **vae_to_ldm(vae.state_dict(), spec.vae_config)}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    return path


def make_all(out: Path, sd_checkpoint: Path | None = None, num_parts: int = DEFAULT_NUM_PARTS) -> dict:
    from vlogger_core.diffusion.sd_checkpoint import load_sd1_checkpoint
    from vlogger_core.diffusion.weights import save_model
    torch.manual_seed(0)
    made = {}
    video = build_video_model(tiny_pixel_spec(num_parts))
    randomize_trained_parts(video)
    made["pixel"] = save_model(video, out / "tiny-random-pixel", tiny_random=True, note=NOTE)
    sr = SuperResolutionModel(tiny_sr_spec())
    randomize_trained_parts(sr)
    made["sr64"] = save_model(sr, out / "tiny-random-sr64", tiny_random=True, note=NOTE)
    if sd_checkpoint is not None:
        spec = tiny_sd_spec(num_parts)
        write_tiny_sd_checkpoint(sd_checkpoint, spec)
        base, vae = load_sd1_checkpoint(sd_checkpoint, spec.unet_config, spec.vae_config)
        latent = build_video_model(spec, base, vae)
        randomize_trained_parts(latent)
        made["sd"] = save_model(latent, out / "tiny-random-sd", tiny_random=True, note=NOTE)
        made["sd_checkpoint"] = sd_checkpoint
    return made


TINY_SD_CHECKPOINT = "tiny-random-sd1.safetensors"


def make_test_models(models_dir: Path) -> Path:
    """The tiny random folders in a ComfyUI models dir (models/vlogger/video + a tiny SD1-format
    checkpoint in models/checkpoints), as the tests and the shipped diffusion workflow expect.
    Idempotent."""
    video_dir = Path(models_dir) / "vlogger" / "video"
    if not (video_dir / "tiny-random-sd" / "config.json").exists():
        make_all(video_dir, sd_checkpoint=Path(models_dir) / "checkpoints" / TINY_SD_CHECKPOINT)
    write_tiny_upscaler(Path(models_dir) / "upscale_models" / TINY_UPSCALER)
    return video_dir


TINY_UPSCALER = "tiny-random-esrgan-x2.safetensors"


def write_tiny_upscaler(path: Path) -> Path:
    """A tiny random 2x ESRGAN (spandrel's architecture) for ComfyUI's own 'Upscale Image
    (using Model)' node, which can stand in for the SR cascade."""
    if path.exists():
        return path
    from safetensors.torch import save_file
    from spandrel.architectures.ESRGAN import ESRGAN
    torch.manual_seed(0)
    net = ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--sd-checkpoint", type=Path, default=None)
    ap.add_argument("--num-parts", type=int, default=DEFAULT_NUM_PARTS)
    a = ap.parse_args()
    for k, v in make_all(a.out, a.sd_checkpoint, a.num_parts).items():
        print(f"{k}: {v}")
