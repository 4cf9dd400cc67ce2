"""Speech cleanup: silence trim, loudness, resampling to the model's rate.

Files are read with vlogger_core/media.py (PyAV) and ComfyUI's AUDIO values with comfy_audio.py.
Waveforms are float32 [C, T] in [-1, 1].
"""
from __future__ import annotations

import torch

from ..errors import VloggerError
from ..media import resample

MODEL_SAMPLE_RATE = 16000   # the motion model's rate (the paper's 16 kHz)
MIN_SECONDS = 0.2
# The output rates offered for speech: the usual recording and codec rates (any input rate is
# accepted and resampled by libswresample in bounded time and memory).
SAMPLE_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)


class SpeechError(VloggerError):
    """Audio that cannot be used (empty, too short, NaN/inf, not an AUDIO value)."""


def check_output_rate(target_rate) -> None:
    """A SpeechError blaming 'target_rate' unless it is one of SAMPLE_RATES."""
    if isinstance(target_rate, bool) or target_rate not in SAMPLE_RATES:
        raise SpeechError(f"{target_rate} Hz is not an output rate offered", "target_rate",
                          "use one of " + ", ".join(map(str, SAMPLE_RATES)) + " Hz (16000 for the motion model)")


def sanitize(wave: torch.Tensor, arg: str = "wave") -> torch.Tensor:
    """The waveform as float, or a SpeechError blaming `arg` when it is empty or not finite."""
    if wave.numel() == 0:
        raise SpeechError("the audio is empty (no samples)", arg, "connect speech that has sound")
    if not torch.isfinite(wave).all():
        raise SpeechError("the audio contains NaN or infinite samples", arg,
                          "re-export the audio file or clean it in an audio editor")
    return wave.float()


def to_mono(wave: torch.Tensor) -> torch.Tensor:
    """[C, T] or [B, C, T] or [T] -> [T] (channel mean)."""
    if wave.dim() == 3:
        wave = wave[0]
    return wave.mean(0) if wave.dim() == 2 else wave


def _window_rms(wave: torch.Tensor, sample_rate: int) -> tuple[torch.Tensor, int]:
    """(RMS of each whole 20 ms window of the channel mean, the window in samples)."""
    mono = to_mono(wave)
    win = max(1, int(0.02 * sample_rate))
    n = mono.shape[-1] // win
    return mono[: n * win].reshape(n, win).pow(2).mean(1).sqrt(), win


def trim_silence(wave: torch.Tensor, sample_rate: int, threshold_db: float = -40.0,
                 pad_ms: float = 80.0) -> torch.Tensor:
    """Cut leading/trailing audio quieter than threshold_db below the loudest 20 ms window,
    keeping pad_ms of margin. Works on [C, T] or [T]."""
    rms, win = _window_rms(wave, sample_rate)
    if len(rms) == 0:
        return wave
    level = 20 * torch.log10(rms.clamp_min(1e-9) / rms.max().clamp_min(1e-9))
    loud = torch.nonzero(level > threshold_db).flatten()
    if len(loud) == 0:
        return wave
    pad = int(pad_ms / 1000 * sample_rate)
    start = max(0, int(loud[0]) * win - pad)
    stop = min(wave.shape[-1], (int(loud[-1]) + 1) * win + pad)
    return wave[..., start:stop]


def loudness_normalize(wave: torch.Tensor, sample_rate: int, target_dbfs: float = -20.0,
                       peak_limit: float = 0.98) -> torch.Tensor:
    """Scale so the RMS of the voiced part (20 ms windows above -40 dB of the loudest) sits at
    target_dbfs, without letting the peak exceed peak_limit. Plain RMS rather than K-weighted
    LUFS: for a single voice the two differ by a near-constant offset."""
    rms, _ = _window_rms(wave, sample_rate)
    if len(rms) == 0:
        return wave
    voiced = rms[rms > rms.max() * 0.01]
    if len(voiced) == 0 or voiced.max() < 1e-6:
        return wave  # silence stays silence
    current = voiced.pow(2).mean().sqrt()
    gain = 10 ** (target_dbfs / 20) / current
    peak = wave.abs().max()
    gain = min(float(gain), peak_limit / float(peak.clamp_min(1e-9)))
    return wave * gain


def prepare_speech(wave: torch.Tensor, sample_rate: int, target_rate: int = MODEL_SAMPLE_RATE,
                   trim: bool = True, threshold_db: float = -40.0, normalize: bool = True
                   ) -> torch.Tensor:
    """The cleanup LoadSpeech applies: sanitize, trim, normalise, resample. Returns [C, T]."""
    check_output_rate(target_rate)
    wave = sanitize(wave)
    if trim:
        wave = trim_silence(wave, sample_rate, threshold_db)
    if normalize:
        wave = loudness_normalize(wave, sample_rate)
    wave = resample(wave, sample_rate, target_rate)
    if wave.shape[-1] < MIN_SECONDS * target_rate:
        raise SpeechError(f"the speech is {wave.shape[-1] / target_rate:.2f} s long after trimming; "
                          f"at least {MIN_SECONDS} s is needed", "wave",
                          f"use a recording of at least {MIN_SECONDS} s of speech (or trim less silence)")
    return wave
