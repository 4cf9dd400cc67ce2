"""Speech in: read any file PyAV decodes, clean it (silence trim, loudness), resample.

torchaudio 2.11's load/save need torchcodec, so files are read with PyAV (as ComfyUI does) and
torchaudio is used only for transforms. Waveforms are float32 [C, T] in [-1, 1].
"""
from __future__ import annotations

import av
import numpy as np
import torch
import torchaudio.functional as AF

from ..errors import VloggerError

MODEL_SAMPLE_RATE = 16000   # the motion model's rate (the paper's 16 kHz)
MIN_SECONDS = 0.2


class SpeechError(VloggerError):
    """Audio that cannot be used (undecodable, too short, NaN/inf)."""


def read_audio(path: str) -> tuple[torch.Tensor, int]:
    """Decode an audio (or video) file -> ([C, T] float32, sample rate)."""
    try:
        with av.open(str(path)) as c:
            if not c.streams.audio:
                raise SpeechError(f"{path} has no audio stream")
            stream = c.streams.audio[0]
            chunks, rate = [], stream.codec_context.sample_rate
            for frame in c.decode(stream):
                a = frame.to_ndarray()
                channels = len(frame.layout.channels)
                if frame.format.is_planar:
                    a = a.reshape(channels, -1)
                else:
                    a = a.reshape(-1, channels).T
                if a.dtype.kind == "i":
                    a = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
                chunks.append(a.astype(np.float32))
    except SpeechError:
        raise
    except Exception as e:  # PyAV raises many types for bad files
        raise SpeechError(f"cannot decode {path}: {e}") from e
    if not chunks:
        raise SpeechError(f"{path} contains no audio samples")
    return torch.from_numpy(np.concatenate(chunks, axis=1)), int(rate)


def sanitize(wave: torch.Tensor) -> torch.Tensor:
    if not torch.isfinite(wave).all():
        raise SpeechError("the audio contains NaN or infinite samples")
    return wave.float()


def to_mono(wave: torch.Tensor) -> torch.Tensor:
    """[C, T] or [B, C, T] or [T] -> [T] (channel mean)."""
    if wave.dim() == 3:
        wave = wave[0]
    return wave.mean(0) if wave.dim() == 2 else wave


def resample(wave: torch.Tensor, sample_rate: int, target: int = MODEL_SAMPLE_RATE) -> torch.Tensor:
    if int(sample_rate) == int(target):
        return wave
    return AF.resample(wave, int(sample_rate), int(target))


def trim_silence(wave: torch.Tensor, sample_rate: int, threshold_db: float = -40.0,
                 pad_ms: float = 80.0) -> torch.Tensor:
    """Cut leading/trailing audio quieter than threshold_db below the loudest 20 ms window,
    keeping pad_ms of margin. Works on [C, T] or [T]."""
    mono = to_mono(wave)
    win = max(1, int(0.02 * sample_rate))
    n = mono.shape[-1] // win
    if n == 0:
        return wave
    rms = mono[: n * win].reshape(n, win).pow(2).mean(1).sqrt()
    level = 20 * torch.log10(rms.clamp_min(1e-9) / rms.max().clamp_min(1e-9))
    loud = torch.nonzero(level > threshold_db).flatten()
    if len(loud) == 0:
        return wave
    pad = int(pad_ms / 1000 * sample_rate)
    start = max(0, int(loud[0]) * win - pad)
    stop = min(mono.shape[-1], (int(loud[-1]) + 1) * win + pad)
    return wave[..., start:stop]


def loudness_normalize(wave: torch.Tensor, sample_rate: int, target_dbfs: float = -20.0,
                       peak_limit: float = 0.98) -> torch.Tensor:
    """Scale so the RMS of the voiced part (20 ms windows above -40 dB of the loudest) sits at
    target_dbfs, without letting the peak exceed peak_limit. Plain RMS rather than K-weighted
    LUFS: for a single voice the two differ by a near-constant offset."""
    mono = to_mono(wave)
    win = max(1, int(0.02 * sample_rate))
    n = mono.shape[-1] // win
    if n == 0:
        return wave
    rms = mono[: n * win].reshape(n, win).pow(2).mean(1).sqrt()
    voiced = rms[rms > rms.max() * 0.01]
    if len(voiced) == 0 or voiced.max() < 1e-6:
        return wave  # silence stays silence
    current = voiced.pow(2).mean().sqrt()
    gain = 10 ** (target_dbfs / 20) / current
    peak = wave.abs().max()
    gain = min(float(gain), peak_limit / float(peak.clamp_min(1e-9)))
    return wave * gain


def audio_dict(wave: torch.Tensor, sample_rate: int) -> dict:
    """-> ComfyUI's AUDIO {"waveform": [1, C, T], "sample_rate"}."""
    if wave.dim() == 1:
        wave = wave[None]
    return {"waveform": wave[None].contiguous().float(), "sample_rate": int(sample_rate)}


def from_audio_dict(audio: dict) -> tuple[torch.Tensor, int]:
    """ComfyUI AUDIO -> ([C, T] of the first batch item, sample rate)."""
    wave = torch.as_tensor(audio["waveform"])
    if wave.dim() == 3:
        wave = wave[0]
    elif wave.dim() == 1:
        wave = wave[None]
    return wave.float(), int(audio["sample_rate"])


def prepare_speech(wave: torch.Tensor, sample_rate: int, target_rate: int = MODEL_SAMPLE_RATE,
                   trim: bool = True, threshold_db: float = -40.0, normalize: bool = True
                   ) -> torch.Tensor:
    """The cleanup LoadSpeech applies: sanitize, trim, normalise, resample. Returns [C, T]."""
    wave = sanitize(wave)
    if trim:
        wave = trim_silence(wave, sample_rate, threshold_db)
    if normalize:
        wave = loudness_normalize(wave, sample_rate)
    wave = resample(wave, sample_rate, target_rate)
    if wave.shape[-1] < MIN_SECONDS * target_rate:
        raise SpeechError(f"the speech is {wave.shape[-1] / target_rate:.2f} s long after trimming; "
                          f"at least {MIN_SECONDS} s is needed")
    return wave
