"""ComfyUI's AUDIO value, {"waveform": [B, C, n] float tensor, "sample_rate": int}: read and made
here only. The core knows the layout and imports nothing of ComfyUI; every node and core call
that takes an AUDIO goes through from_audio, so a bad one is refused the same way everywhere."""
from __future__ import annotations

import torch

from .speech_io import SpeechError, sanitize

CONNECT = "connect an AUDIO output (Load Audio, VLOGGER Load Speech or VLOGGER Text to Speech)"
MIN_RATE, MAX_RATE = 1000, 768000


def from_audio(audio, mono: bool = True) -> tuple[torch.Tensor, int]:
    """AUDIO -> (its first batch item as float32 [n] (channel mean) with `mono`, else [C, n];
    the sample rate). Not an AUDIO, an unusable rate, no samples or NaN/inf samples raise a
    SpeechError naming the argument `audio`."""
    if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
        raise SpeechError("it is not a ComfyUI AUDIO value (no waveform and sample_rate)", "audio", CONNECT)
    try:
        wave = torch.as_tensor(audio["waveform"]).detach().cpu().float()
        rate = float(audio["sample_rate"])
    except (TypeError, ValueError, RuntimeError) as e:
        raise SpeechError(f"it is not a ComfyUI AUDIO value ({e})", "audio", CONNECT) from None
    if not (rate.is_integer() and MIN_RATE <= rate <= MAX_RATE):
        raise SpeechError(f"its sample rate of {rate:g} Hz is not an audio rate", "audio",
                          f"connect audio with its real rate ({MIN_RATE}-{MAX_RATE} Hz, e.g. 16000 or 48000)")
    if wave.dim() not in (1, 2, 3):
        raise SpeechError(f"its waveform has shape {tuple(wave.shape)}, not [batch, channels, samples]",
                          "audio", CONNECT)
    if wave.dim() == 3 and len(wave):
        wave = wave[0]
    wave = sanitize(wave, "audio").reshape(-1, wave.shape[-1])
    return (wave.mean(0) if mono else wave), int(rate)


def to_audio(wave: torch.Tensor, sample_rate: int) -> dict:
    """Float [n] or [C, n] -> ComfyUI's AUDIO {"waveform": [1, C, n], "sample_rate"}."""
    wave = torch.as_tensor(wave, dtype=torch.float32)
    wave = wave.reshape(-1, wave.shape[-1])
    return {"waveform": wave[None].contiguous(), "sample_rate": int(sample_rate)}
