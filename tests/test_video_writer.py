"""The streaming MP4 writer: playable H.264 + AAC, right duration, atomic on abort; every other
file write is whole-or-nothing too (WAV, dataset clips)."""
import numpy as np
import pytest
import torch

from vlogger_core.media import StreamingMP4Writer, read_audio, read_video, write_wav
from vlogger_core.motion.params import Motion
from vlogger_core.training.dataset_format import write_clip


def _clip(n, h=64, w=96, seed=0):
    g = np.random.default_rng(seed)
    base = g.random((1, h, w, 3)).astype(np.float32)
    ramp = np.linspace(0, 1, n, dtype=np.float32)[:, None, None, None]
    return np.clip(base * 0.5 + ramp * 0.5, 0, 1)


def test_writes_video_with_audio_of_matching_duration(tmp_path):
    sr, seconds, fps = 16000, 2.0, 24
    audio = torch.sin(torch.arange(int(sr * seconds)) / sr * 2 * torch.pi * 220) * 0.5
    out = tmp_path / "a.mp4"
    with StreamingMP4Writer(out, fps, 96, 64, audio, sr) as w:
        frames = _clip(48)
        w.write(frames[:20])
        w.write(torch.from_numpy(frames[20:]))
    video, got_fps, got_audio, rate = read_video(out)
    assert video.shape == (48, 64, 96, 3) and got_fps == fps
    assert abs(len(got_audio) / rate - seconds) < 0.05
    # the audio is the tone we wrote: its energy is where the speech was
    assert np.sqrt(np.mean(got_audio ** 2)) > 0.2
    # frames are the ramp we wrote (lossy codec: compare means)
    assert video[-1].mean() > video[0].mean() + 40


def test_abort_leaves_no_file(tmp_path):
    out = tmp_path / "b.mp4"
    with pytest.raises(RuntimeError):
        with StreamingMP4Writer(out, 24, 96, 64) as w:
            w.write(_clip(5))
            raise RuntimeError("interrupted")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_rejects_bad_geometry_and_fps(tmp_path):
    with pytest.raises(ValueError, match="even"):
        StreamingMP4Writer(tmp_path / "c.mp4", 24, 95, 64)
    with pytest.raises(ValueError, match="fps"):
        StreamingMP4Writer(tmp_path / "c.mp4", 0, 96, 64)
    with StreamingMP4Writer(tmp_path / "d.mp4", 24, 96, 64) as w:
        with pytest.raises(ValueError, match="frames are"):
            w.write(_clip(2, h=32))
        w.write(_clip(2))


def test_audio_is_cut_or_padded_to_the_video_and_any_rate_is_muxed(tmp_path):
    """Longer speech is cut at the last frame, shorter is padded with silence; a rate AAC does
    not take (44101 Hz) is resampled to 48 kHz."""
    for seconds, rate in ((5.0, 16000), (0.5, 16000), (1.0, 44101)):
        out = tmp_path / f"{seconds}_{rate}.mp4"
        tone = 0.5 * np.sin(2 * np.pi * 300 * np.arange(int(seconds * rate)) / rate).astype(np.float32)
        with StreamingMP4Writer(out, 24, 96, 64, tone, rate) as w:
            w.write(_clip(48))
        _, _, audio, got_rate = read_video(out)
        assert got_rate == (48000 if rate == 44101 else rate)
        assert abs(len(audio) / got_rate - 2.0) < 0.1, (seconds, rate, len(audio) / got_rate)
        s = [int(t * got_rate) for t in (0.1, min(seconds, 2.0) - 0.1, seconds + 0.1, 1.9)]
        assert np.abs(audio[s[0]:s[1]]).mean() > 0.2                          # the tone
        if seconds < 2.0:
            assert np.abs(audio[s[2]:s[3]]).mean() < 0.01                     # padded silence


def test_interrupted_writes_leave_nothing(tmp_path):
    """A dataset clip failing after half its files leaves neither the clip nor its partial
    folder; a WAV that cannot be written is refused before anything is created."""
    with pytest.raises(ValueError):
        write_wav(tmp_path / "a.wav", np.zeros((3, 100), np.float32), 16000)    # 3 channels
    write_wav(tmp_path / "b.wav", np.linspace(-1, 1, 1600, dtype=np.float32), 16000)
    assert read_audio(tmp_path / "b.wav", mono=True)[0].shape == (1600,)
    rng = np.random.default_rng(0)
    with pytest.raises(AttributeError):
        write_clip(tmp_path / "ds", "clip_0000", frames=rng.integers(0, 255, (4, 8, 8, 3), dtype=np.uint8),
                   wave=np.zeros(2000, np.float32), motion=Motion.neutral(4, 24.0), fit={"x": np.zeros(1)},
                   controls=None, reference_index=0)     # fails after audio, motion, fit, frames
    assert list((tmp_path / "ds" / "clips").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.wav", "ds"]
