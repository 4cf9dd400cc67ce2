"""Per-video-frame audio features for the motion model (the paper's standard log-mel spectrogram).

Layout (documented because saved models depend on it):
- 16 kHz mono in; torchaudio MelSpectrogram with a 25 ms window (n_fft 400), 10 ms hop, 80 mels,
  log(mel + 1e-6). Mel frame k is centred at k * 10 ms (center=True).
- Video frame i at `fps` owns the audio span [i/fps, (i+1)/fps): frames = round(duration * fps).
- Per frame: the log-mel spectrum sampled (linear interpolation along time) at SUB_STEPS evenly
  spaced instants inside that span, stacked -> SUB_STEPS * 80 values, so every fps (24, 25, 30, 60)
  gives the same feature size; plus 1 value of log energy (RMS of the span's samples).
  Only the frame's own span (plus at most half a mel window, 12.5 ms) enters its feature, so the
  model's causal mask makes frame i depend on audio up to the end of frame i and no further.
"""
from __future__ import annotations

import math

import torch
import torchaudio

from ..media import resample
from .comfy_audio import from_audio
from .speech_io import MODEL_SAMPLE_RATE, SpeechError

N_MELS = 80
HOP = 160          # 10 ms at 16 kHz
N_FFT = 400        # 25 ms
SUB_STEPS = 2
FEATURE_DIM = SUB_STEPS * N_MELS + 1
MIN_SECONDS = 0.2
LOG_EPS = 1e-6

_MEL: dict = {}


def _mel(device) -> torchaudio.transforms.MelSpectrogram:
    key = str(device)
    if key not in _MEL:
        _MEL[key] = torchaudio.transforms.MelSpectrogram(
            sample_rate=MODEL_SAMPLE_RATE, n_fft=N_FFT, win_length=N_FFT, hop_length=HOP,
            n_mels=N_MELS, f_min=20.0, f_max=7600.0, power=2.0, center=True).to(device)
    return _MEL[key]


def prepare_audio(audio) -> torch.Tensor:
    """ComfyUI AUDIO -> mono float32 [T] at 16 kHz (a bad value: comfy_audio's SpeechError)."""
    wave, rate = from_audio(audio)
    return resample(wave, rate, MODEL_SAMPLE_RATE).contiguous()


def num_frames(num_samples: int, fps: float, sample_rate: int = MODEL_SAMPLE_RATE) -> int:
    return int(round(num_samples / sample_rate * fps))


# Long audio is analysed in blocks of this many mel frames (60 s): the STFT's frames and spectrum
# of a whole 10-minute file are ~300 MB at once, a block's ~30 MB, and the result is the same.
MEL_BLOCK = 6000
# frame_energy's float64 running sums over at most this many samples at a time (2 MB each).
ENERGY_BLOCK = 1 << 18


def _mel_frames(device) -> torchaudio.transforms.MelSpectrogram:
    """_mel without its own padding: for blocks cut from the reflect-padded wave."""
    key = ("frames", str(device))
    if key not in _MEL:
        _MEL[key] = torchaudio.transforms.MelSpectrogram(
            sample_rate=MODEL_SAMPLE_RATE, n_fft=N_FFT, win_length=N_FFT, hop_length=HOP,
            n_mels=N_MELS, f_min=20.0, f_max=7600.0, power=2.0, center=False).to(device)
    return _MEL[key]


def _padded_slice(wave: torch.Tensor, a: int, b: int) -> torch.Tensor:
    """Samples a..b of `wave` reflect-padded by N_FFT // 2 on both sides (what center=True pads),
    without padding the whole wave."""
    pad, T = N_FFT // 2, wave.shape[0]
    parts = []
    if a < pad:
        parts.append(wave[1:pad + 1].flip(0)[a:min(b, pad)])
    lo, hi = max(a - pad, 0), min(b - pad, T)
    if hi > lo:
        parts.append(wave[lo:hi])
    if b > pad + T:
        parts.append(wave[T - pad - 1:T - 1].flip(0)[max(a - pad - T, 0):b - pad - T])
    return torch.cat(parts) if len(parts) > 1 else parts[0]


def log_mel(wave16k: torch.Tensor) -> torch.Tensor:
    """[T] -> [K, 80] log-mel frames at 100 Hz (K = T // HOP + 1), block by block for long audio."""
    wave = wave16k.float()
    K = wave.shape[0] // HOP + 1
    if K <= MEL_BLOCK or wave.shape[0] <= N_FFT // 2:
        return torch.log(_mel(wave.device)(wave) + LOG_EPS).T.contiguous()
    out = torch.empty(K, N_MELS, device=wave.device)
    mel = _mel_frames(wave.device)
    for j in range(0, K, MEL_BLOCK):
        k = min(j + MEL_BLOCK, K)
        seg = _padded_slice(wave, j * HOP, (k - 1) * HOP + N_FFT)
        out[j:k] = torch.log(mel(seg) + LOG_EPS).T
    return out


def frame_energy(wave16k: torch.Tensor, fps: float, n: int) -> torch.Tensor:
    """[n] log RMS of each video frame's own audio span (float64 sums, block by block)."""
    sr = MODEL_SAMPLE_RATE
    edges = torch.round(torch.arange(n + 1, dtype=torch.float64) * sr / fps).long()
    edges = edges.clamp(0, wave16k.shape[0])
    sums = torch.empty(n, dtype=torch.float64)
    step = max(1, int(ENERGY_BLOCK * fps / sr))
    for i in range(0, n, step):
        e = edges[i:min(i + step, n) + 1]
        seg = wave16k[int(e[0]):int(e[-1])].double()
        csum = torch.cat([seg.new_zeros(1), torch.cumsum(seg * seg, 0)])
        sums[i:i + len(e) - 1] = csum[e[1:] - e[0]] - csum[e[:-1] - e[0]]
    count = (edges[1:] - edges[:-1]).clamp_min(1).double()
    rms = (sums / count).clamp_min(0).sqrt()
    return torch.log(rms + 1e-4).float()


def energy_envelope(wave16k: torch.Tensor, fps: float, n: int | None = None) -> torch.Tensor:
    """Linear RMS per video frame (for plots and the lip-sync metric)."""
    n = num_frames(wave16k.shape[0], fps) if n is None else n
    return frame_energy(wave16k, fps, n).exp() - 1e-4


def audio_features(wave16k: torch.Tensor, fps: float, n: int | None = None) -> torch.Tensor:
    """Mono 16 kHz [T] -> [N, FEATURE_DIM], N = round(duration * fps) unless given."""
    if wave16k.dim() != 1:
        raise ValueError(f"expected mono [T] audio, got shape {tuple(wave16k.shape)}")
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if wave16k.shape[0] < MIN_SECONDS * MODEL_SAMPLE_RATE:
        raise SpeechError(f"the audio is {wave16k.shape[0] / MODEL_SAMPLE_RATE:.3f} s long; "
                          f"at least {MIN_SECONDS} s is needed")
    n = num_frames(wave16k.shape[0], fps) if n is None else n
    mel = log_mel(wave16k)                                   # [K, 80]
    k = mel.shape[0]
    out = torch.empty(n, FEATURE_DIM, device=mel.device)
    # Sample instants inside each frame span, in mel-frame units (mel frame j centred at j*HOP);
    # in blocks of frames so long audio never holds several [n, S, 80] temporaries at once.
    offs = (torch.arange(SUB_STEPS, dtype=torch.float64) + 0.5) / SUB_STEPS
    for a in range(0, n, MEL_BLOCK):
        b = min(a + MEL_BLOCK, n)
        t = (torch.arange(a, b, dtype=torch.float64)[:, None] + offs[None]) / fps      # seconds [b-a, S]
        pos = (t * MODEL_SAMPLE_RATE / HOP).clamp(0, k - 1)
        lo = pos.floor().long().clamp(0, k - 1)
        hi = (lo + 1).clamp(max=k - 1)
        w = (pos - lo.double()).float()[..., None]
        out[a:b, :-1] = (mel[lo] * (1 - w) + mel[hi] * w).reshape(b - a, -1)   # [b-a, S*80]
    out[:, -1] = frame_energy(wave16k, fps, n).to(out.device)
    return out
