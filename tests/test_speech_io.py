"""Speech loading and cleanup: formats (packed and planar samples), trimming, loudness,
resampling (any rate pair, bounded), bad samples, and ComfyUI's AUDIO adapter's refusals."""
import subprocess
import sys
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
import torchaudio.functional as AF

from vlogger_core import media
from vlogger_core.audio import speech_io
from vlogger_core.audio.comfy_audio import from_audio, to_audio


def _tone(sr=44100, seconds=1.0, lead=0.5, tail=0.7, amp=0.05, channels=2):
    t = torch.arange(int(sr * seconds)) / sr
    tone = amp * torch.sin(2 * torch.pi * 300 * t)
    wave = torch.cat([torch.zeros(int(sr * lead)), tone, torch.zeros(int(sr * tail))])
    return wave.repeat(channels, 1), sr


def _write(path, wave, sr, codec):
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=sr)
        s.layout = "mono"
        frame = av.AudioFrame.from_ndarray(wave[None].numpy().astype(np.float32), format="flt", layout="mono")
        frame.sample_rate = sr
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode():
            c.mux(p)


@pytest.mark.parametrize("ext,codec", [("wav", "pcm_f32le"), ("flac", "flac"), ("mp3", "libmp3lame")])
def test_reads_formats_with_right_duration(tmp_path, ext, codec):
    wave, sr = _tone(sr=22050, channels=1)
    path = tmp_path / f"x.{ext}"
    _write(path, wave[0], sr, codec)
    got, got_sr = media.read_audio(path)
    assert got_sr == sr
    assert abs(got.shape[-1] / sr - wave.shape[-1] / sr) < 0.05


def test_prepare_trims_normalises_resamples():
    wave, sr = _tone()
    out = speech_io.prepare_speech(wave, sr, 16000)
    assert out.shape[0] == 2
    seconds = out.shape[-1] / 16000
    assert 1.0 <= seconds <= 1.0 + 2 * 0.08 + 0.05      # the tone plus the kept margins
    rms_db = 20 * np.log10(float(speech_io.to_mono(out)[1600:-1600].pow(2).mean().sqrt()))
    assert abs(rms_db - (-20.0)) < 1.0
    mono = speech_io.to_mono(out)
    assert mono.dim() == 1 and mono.shape[0] == out.shape[-1]


def test_bad_audio_is_rejected():
    wave, sr = _tone()
    bad = wave.clone()
    bad[0, 100] = float("nan")
    with pytest.raises(speech_io.SpeechError, match="NaN"):
        speech_io.prepare_speech(bad, sr)
    short = wave[:, int(0.5 * sr):int(0.6 * sr)]
    with pytest.raises(speech_io.SpeechError, match="0.2 s"):
        speech_io.prepare_speech(short, sr, trim=False)


def test_silence_stays_silent():
    silent = torch.zeros(1, 16000)
    out = speech_io.prepare_speech(silent, 16000)
    assert out.abs().max() == 0


def _stereo(sr, seconds=0.5):
    """Two different channels (440 Hz left, 220 Hz right, different levels)."""
    t = np.arange(int(sr * seconds)) / sr
    return np.stack([0.5 * np.sin(2 * np.pi * 440 * t), -0.25 * np.sin(2 * np.pi * 220 * t)]).astype(np.float32)


def test_packed_s16_wav_is_read_sample_for_sample(tmp_path):
    """s16 WAV stores its channels interleaved (packed): each channel comes back as written."""
    sr, wave = 22050, _stereo(22050)
    pcm = np.round(wave * 32767).astype(np.int16)
    path = tmp_path / "packed.wav"
    with av.open(str(path), "w") as c:
        s = c.add_stream("pcm_s16le", rate=sr, layout="stereo")
        frame = av.AudioFrame.from_ndarray(pcm.T.reshape(1, -1).copy(), format="s16", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = sr, 0, Fraction(1, sr)
        for p in list(s.encode(frame)) + list(s.encode()):
            c.mux(p)
    with av.open(str(path)) as c:
        assert c.streams.audio[0].format.name == "s16" and not c.streams.audio[0].format.is_planar
    got, got_sr = media.read_audio(path)
    assert got_sr == sr and got.shape == (2, wave.shape[1])
    assert np.abs(got.numpy() - pcm / 32768.0).max() < 1e-6
    mono, _ = media.read_audio(path, mono=True)
    assert np.abs(mono.numpy() - pcm.mean(0) / 32768.0).max() < 1e-6


def test_mp4_aac_soundtrack_is_read_with_its_samples(tmp_path):
    """The MP4 writer's AAC track decodes back to the tone that went in (aligned, same level)."""
    sr = 16000
    tone = 0.5 * np.sin(2 * np.pi * 300 * np.arange(2 * sr) / sr).astype(np.float32)
    path = tmp_path / "v.mp4"
    with media.StreamingMP4Writer(path, 24, 32, 32, tone, sr) as w:
        w.write(np.zeros((48, 32, 32, 3), np.uint8))
    got, rate = media.read_audio(path, mono=True)
    assert rate == sr and abs(len(got) - len(tone)) < 0.05 * sr
    n = min(len(got), len(tone)) - 2048
    assert np.corrcoef(got.numpy()[1024:n], tone[1024:n])[0, 1] > 0.99       # no shift, no garbling
    assert abs(float(got[1024:n].pow(2).mean().sqrt()) - 0.5 / np.sqrt(2)) < 0.02
    frames, fps, audio, audio_rate = media.read_video(path)
    assert frames.shape == (48, 32, 32, 3) and fps == 24 and audio_rate == sr
    assert np.array_equal(audio, got.numpy())


@pytest.mark.parametrize("rate,target", [(22050, 16000), (44100, 16000), (48000, 16000), (16000, 48000)])
def test_resample_matches_torchaudio_at_ordinary_rates(rate, target):
    g = np.random.default_rng(0)
    t = np.arange(rate * 2) / rate
    x = torch.from_numpy((0.4 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 2500 * t)
                          + g.normal(0, 0.02, len(t))).astype(np.float32))
    got, ref = media.resample(x, rate, target), AF.resample(x, rate, target)
    assert got.shape == ref.shape and got.dtype == torch.float32
    assert float((got - ref)[100:-100].pow(2).mean().sqrt()) < 0.02 * float(ref.pow(2).mean().sqrt())
    two = media.resample(torch.stack([x, -x]), rate, target)                   # [C, n]: per channel
    assert two.shape == (2, ref.shape[0]) and torch.equal(two[0], got) and torch.equal(two[1], -got)


def test_coprime_rate_resamples_fast_with_bounded_memory():
    """44101 -> 16000 Hz (coprime): torchaudio's kernel for this pair takes gigabytes; the
    libswresample path streams 10 minutes in well under the time and memory budgets below."""
    code = ("import resource, time, torch\n"
            "from vlogger_core.media import resample\n"
            "x = torch.randn(44101 * 600) * 0.1\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "t0 = time.time(); y = resample(x, 44101, 16000); dt = time.time() - t0\n"
            "grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024\n"
            "print(y.shape[0], dt, grew, float(y.std()))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    n, seconds, grew_mb, std = out.stdout.split()
    assert int(n) == -(-44101 * 600 * 16000 // 44101)
    assert float(seconds) < 20 and float(grew_mb) < 300, out.stdout
    assert 0.05 < float(std) < 0.1          # the noise's level, low-passed to 8 kHz of 22 kHz


def test_read_audio_resamples_as_it_decodes(tmp_path):
    sr, wave = 44100, _stereo(44100)
    media.write_wav(tmp_path / "s.wav", wave, sr)
    got, rate = media.read_audio(tmp_path / "s.wav", 16000, mono=True)
    ref = media.resample(torch.from_numpy(wave).mean(0), sr, 16000)
    assert rate == 16000 and abs(len(got) - len(ref)) <= 2
    n = min(len(got), len(ref)) - 50
    assert float((got[:n] - ref[:n]).abs().max()) < 2e-3         # same engine, PCM16 on disk


@pytest.mark.parametrize("audio,says", [
    (None, "not a ComfyUI AUDIO value"),
    ({"waveform": torch.zeros(1, 1, 100)}, "not a ComfyUI AUDIO value"),
    ({"waveform": "noise", "sample_rate": 16000}, "not a ComfyUI AUDIO value"),
    ({"waveform": torch.zeros(1, 1, 0), "sample_rate": 16000}, "empty"),
    ({"waveform": torch.zeros(0, 1, 100), "sample_rate": 16000}, "empty"),
    ({"waveform": torch.full((1, 2, 100), float("nan")), "sample_rate": 16000}, "NaN"),
    ({"waveform": torch.tensor([[[0.0, float("inf")]]]), "sample_rate": 16000}, "infinite"),
    ({"waveform": torch.zeros(1, 1, 100), "sample_rate": 0}, "sample rate of 0 Hz"),
    ({"waveform": torch.zeros(1, 1, 100), "sample_rate": 44100.5}, "sample rate of 44100.5 Hz"),
    ({"waveform": torch.zeros(1, 1, 100), "sample_rate": None}, "not a ComfyUI AUDIO value"),
    ({"waveform": torch.zeros(1, 1, 1, 100), "sample_rate": 16000}, r"not \[batch, channels, samples\]"),
])
def test_audio_adapter_refuses_bad_values_naming_audio(audio, says):
    with pytest.raises(speech_io.SpeechError, match=says) as e:
        from_audio(audio)
    assert e.value.arg == "audio" and e.value.fix


def test_audio_adapter_round_trip():
    wave = torch.from_numpy(_stereo(16000))
    audio = to_audio(wave, 16000)
    assert audio["waveform"].shape == (1, 2, 8000) and audio["sample_rate"] == 16000
    got, rate = from_audio(audio, mono=False)
    assert rate == 16000 and torch.equal(got, wave)
    mono, _ = from_audio(audio)
    assert torch.allclose(mono, wave.mean(0))
    assert from_audio({"waveform": wave[0].double(), "sample_rate": 16000})[0].dtype == torch.float32
    batch = {"waveform": torch.stack([wave, torch.full_like(wave, float("nan"))]), "sample_rate": 16000}
    assert torch.allclose(from_audio(batch)[0], wave.mean(0))      # the first item of a batch
