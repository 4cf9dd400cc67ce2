"""Speech loading and cleanup: formats, trimming, loudness, resampling, bad samples."""
import av
import numpy as np
import pytest
import torch

from vlogger_core.audio import speech_io


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
    got, got_sr = speech_io.read_audio(path)
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
