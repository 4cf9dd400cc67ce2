"""Stream frames into an MP4 (H.264 + AAC speech) with PyAV, window by window, with flat memory.

The file is written under a temporary name beside the target and renamed into place only when
it is complete, so an interrupted or failed run never leaves a half-written file under the final
name. Audio is encoded alongside the video, up to the time of the last written frame, so the
muxer interleaves the streams and nothing accumulates.
"""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

AUDIO_RATE = 48000  # used when the speech's own rate is not one AAC supports
AAC_RATES = {96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000}


class StreamingMP4Writer:
    """with StreamingMP4Writer(path, fps, w, h, audio, sr) as w: w.write(frames) ...

    frames: [n, H, W, 3] uint8 numpy, or float 0..1 (numpy or torch, ComfyUI's IMAGE layout).
    audio: mono or [C, T] float waveform at `sample_rate` (or None for a silent video).
    """

    def __init__(self, path: str | os.PathLike, fps: float, width: int, height: int,
                 audio: torch.Tensor | np.ndarray | None = None, sample_rate: int | None = None,
                 crf: int = 20, preset: str = "veryfast"):
        if width % 2 or height % 2:
            raise ValueError(f"H.264 needs an even width and height, got {width}x{height}")
        if not (0 < fps <= 240):
            raise ValueError(f"fps must be in (0, 240], got {fps}")
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.fps, self.width, self.height = fps, width, height
        self.frames_written = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(self.tmp), mode="w", format="mp4")
        rate = Fraction(fps).limit_denominator(1001)
        self.vstream = self.container.add_stream("libx264", rate=rate)
        self.vstream.width, self.vstream.height = width, height
        self.vstream.pix_fmt = "yuv420p"
        self.vstream.options = {"crf": str(crf), "preset": preset}
        self.audio = None
        if audio is not None:
            a = torch.as_tensor(audio, dtype=torch.float32)
            a = a.reshape(1, -1) if a.dim() == 1 else a.reshape(-1, a.shape[-1])[:1]
            self.rate = int(sample_rate)
            if self.rate not in AAC_RATES:  # keep the speech's own rate when AAC allows it:
                import torchaudio.functional as AF  # no 3x copy of a 10-minute track
                a = AF.resample(a, self.rate, AUDIO_RATE)
                self.rate = AUDIO_RATE
            # no copy of the track: a 10-minute speech is ~40 MB; chunks are clipped as encoded
            self.audio = a.detach().cpu().numpy()
            self.astream = self.container.add_stream("aac", rate=self.rate)
            self.astream.layout = "mono"
            self.audio_pos = 0

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _frames_uint8(self, frames) -> np.ndarray:
        if isinstance(frames, torch.Tensor):
            frames = frames.detach().cpu()
            if frames.dtype != torch.uint8:
                frames = (frames.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
            frames = frames.numpy()
        elif frames.dtype != np.uint8:
            frames = (np.clip(frames, 0, 1) * 255 + 0.5).astype(np.uint8)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.shape[1:] != (self.height, self.width, 3):
            raise ValueError(f"frames are {frames.shape[1:]}, the video is "
                             f"{(self.height, self.width, 3)}")
        return frames

    def write(self, frames) -> None:
        for f in self._frames_uint8(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            for packet in self.vstream.encode(vf):
                self.container.mux(packet)
            self.frames_written += 1
        self._write_audio_until(self.frames_written / self.fps)

    def _write_audio_until(self, seconds: float | None) -> None:
        if self.audio is None:
            return
        end = self.audio.shape[1] if seconds is None else min(self.audio.shape[1],
                                                                 int(round(seconds * self.rate)))
        chunk = 1024  # AAC frame size
        while self.audio_pos < end:
            stop = min(self.audio_pos + chunk, end)
            af = av.AudioFrame.from_ndarray(
                np.clip(self.audio[:, self.audio_pos:stop], -1, 1).astype(np.float32),
                format="fltp", layout="mono")
            af.sample_rate = self.rate
            af.pts = self.audio_pos
            af.time_base = Fraction(1, self.rate)
            for packet in self.astream.encode(af):
                self.container.mux(packet)
            self.audio_pos = stop

    def close(self) -> Path:
        """Flush both encoders and move the finished file into place."""
        if self.frames_written == 0:
            self.abort()
            raise ValueError("no frames were written")
        for packet in self.vstream.encode():
            self.container.mux(packet)
        if self.audio is not None:
            self._write_audio_until(self.frames_written / self.fps)
            for packet in self.astream.encode():
                self.container.mux(packet)
        self.container.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the partial file (interrupt or error): nothing appears under the final name."""
        try:
            self.container.close()
        except Exception:
            pass
        self.tmp.unlink(missing_ok=True)


def read_video(path: str | os.PathLike) -> tuple[np.ndarray, float, np.ndarray | None, int | None]:
    """Decode an MP4 -> (frames [N,H,W,3] uint8, fps, mono audio or None, audio rate)."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        fps = float(vs.average_rate)
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(vs)]
    audio, rate = None, None
    with av.open(str(path)) as c:
        if c.streams.audio:
            chunks = []
            for f in c.decode(c.streams.audio[0]):
                rate = f.sample_rate
                chunks.append(f.to_ndarray().reshape(len(f.layout.channels), -1).mean(0))
            audio = np.concatenate(chunks) if chunks else None
    return np.stack(frames), fps, audio, rate
