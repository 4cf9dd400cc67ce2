"""Temporal 1D convolutions over the frame axis, interleaved in a UNet's down blocks (VLOGGER stage 2).

The paper puts "a 1D convolution over time in each downsampling block, after the block's first layer
and before its second GroupNorm activation". Here every ResnetBlock2D of every down block is wrapped
so that the hidden state after conv1 (+ time embedding) passes through a residual temporal conv
before norm2. The conv is zero-initialised, so a freshly wrapped model computes exactly what it did
before (for any frame count), and frames only start to talk to each other once it is trained.

Frames travel as [B*N, C, H, W] (diffusers' 2D UNet layout); the wrappers need N, which the caller
sets with `set_num_frames(module, n)` before each forward (the UNet forward has no slot for it).
"""
from __future__ import annotations

import re

import torch
from diffusers.models.resnet import ResnetBlock2D
from torch import nn


class TemporalConv(nn.Module):
    """x + conv1d_over_frames(x), kernel k, zero padding at the clip ends, zero-initialised.

    Computed as ONE 1x1 conv with k*C outputs followed by a shift-and-add over frames: the same
    maths as nn.Conv1d over N, but measured ~2x faster on the CPU than Conv1d/Conv3d, which matter
    for the step-time budget (benchmarks/video_step.py)."""

    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"temporal kernel_size must be odd, got {kernel_size}")
        self.channels, self.kernel_size = channels, kernel_size
        self.proj = nn.Conv2d(channels, channels * kernel_size, 1, bias=False)
        self.bias = nn.Parameter(torch.zeros(channels))  # added once, as in Conv1d
        nn.init.zeros_(self.proj.weight)
        self.num_frames = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.num_frames
        bn, c, h, w = x.shape
        if bn % n:
            raise ValueError(f"temporal layer got {bn} frames in the batch, not a multiple of num_frames={n}")
        k, half = self.kernel_size, self.kernel_size // 2
        y = self.proj(x).view(bn // n, n, k, c, h, w)
        out = y[:, :, half].clone()
        for j in range(k):  # tap j looks at frame (i + j - half)
            s = j - half
            if s == 0 or abs(s) >= n:
                continue
            if s < 0:
                out[:, -s:] += y[:, : n + s, j]
            else:
                out[:, : n - s] += y[:, s:, j]
        return x + out.view(bn, c, h, w) + self.bias[:, None, None]


class TemporalResnetBlock(nn.Module):
    """A diffusers ResnetBlock2D with a TemporalConv between (conv1 + time embedding) and norm2.

    Only the 'default' time-embedding norm without up/down-sampling inside the resnet is supported,
    which is what UNet2DConditionModel's down blocks use."""

    def __init__(self, block: ResnetBlock2D, kernel_size: int = 3):
        super().__init__()
        if block.time_embedding_norm != "default" or block.upsample is not None or block.downsample is not None:
            raise ValueError("temporal wrapping supports plain ResnetBlock2D (default time-embedding norm)")
        self.block = block
        self.temporal = TemporalConv(block.conv1.out_channels, kernel_size)

    def forward(self, input_tensor: torch.Tensor, temb: torch.Tensor | None = None, *args, **kwargs):
        b = self.block
        h = b.nonlinearity(b.norm1(input_tensor))
        h = b.conv1(h)
        if b.time_emb_proj is not None and temb is not None:
            t = temb if b.skip_time_act else b.nonlinearity(temb)
            h = h + b.time_emb_proj(t)[:, :, None, None]
        h = self.temporal(h)  # after the first layer, before the second GroupNorm
        h = b.conv2(b.dropout(b.nonlinearity(b.norm2(h))))
        skip = b.conv_shortcut(input_tensor) if b.conv_shortcut is not None else input_tensor
        return (skip + h) / b.output_scale_factor


def add_temporal_layers(unet: nn.Module, kernel_size: int = 3) -> list[TemporalConv]:
    """Wrap every resnet of every down block of a diffusers UNet / ControlNet in place.
    Returns the new temporal convs in a stable order (down block, resnet)."""
    layers = []
    for block in unet.down_blocks:
        for j, resnet in enumerate(block.resnets):
            if isinstance(resnet, TemporalResnetBlock):
                raise ValueError("this UNet already has temporal layers")
            wrapped = TemporalResnetBlock(resnet, kernel_size)
            block.resnets[j] = wrapped
            layers.append(wrapped.temporal)
    return layers


def set_num_frames(module: nn.Module, num_frames: int) -> None:
    for m in module.modules():
        if isinstance(m, TemporalConv):
            m.num_frames = int(num_frames)


_WRAPPED = re.compile(r"(resnets\.\d+)\.block\.")


def unwrapped_state_dict(unet: nn.Module) -> dict[str, torch.Tensor]:
    """The UNet's own weights under diffusers' original key names (no temporal or LoRA parts), so
    a base saved after wrapping loads into a plain UNet2DConditionModel."""
    out = {}
    for key, value in unet.state_dict().items():
        if ".temporal." in key or ".lora_" in key:
            continue
        out[_WRAPPED.sub(r"\1.", key).replace(".base_layer.", ".")] = value
    return out
