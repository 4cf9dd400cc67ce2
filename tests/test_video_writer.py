"""The streaming MP4 writer: playable H.264 + AAC, right duration, atomic on abort."""
import numpy as np
import pytest
import torch

from vlogger_core.render.video_writer import StreamingMP4Writer, read_video


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
