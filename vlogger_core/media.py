"""Media I/O, all through PyAV (FFmpeg): decode the audio and video of any file FFmpeg opens,
resample audio, encode MP4 (H.264 + AAC) window by window and WAV.

Audio comes out as float32 [C, n] in [-1, 1] whatever the file stores (packed or planar, any
sample format and channel layout): every frame goes through libswresample, which also changes
the rate in the same pass, in bounded time and memory for any pair of rates (torchaudio's
kernel for coprime rates such as 44101 -> 16000 Hz takes gigabytes). Video frames come out as
uint8 [N, H, W, 3] at a constant rate. Files are written whole or not at all (files.py).
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from .errors import VloggerError
from .files import atomic_write, commit_partial, partial_path
from .memory import available_gb

CHUNK = 1 << 16             # samples per frame handed to libswresample and the WAV encoder
AUDIO_RATE = 48000          # the MP4's audio rate when the speech's own is not one AAC supports
AAC_RATES = {96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000}
LAYOUTS = {1: "mono", 2: "stereo"}
READABLE = "use a file that plays in a media player"


class MediaError(VloggerError):
    """A media file that cannot be read or written as asked (arg: the argument at fault)."""


def _open_input(path) -> av.container.InputContainer:
    if not Path(path).is_file():
        raise MediaError(f"{Path(path).name}: no such file", "path", "check the file's name and folder")
    return av.open(str(path))


def _decode_error(path, e: Exception) -> MediaError:
    return MediaError(f"cannot decode {Path(path).name}: {e}", "path", READABLE)


# ----------------------------------------------------------------------------- audio
def _audio_frame(a: np.ndarray, rate: int, pts: int) -> av.AudioFrame:
    """float [C, n] -> a planar float frame starting at sample `pts`."""
    f = av.AudioFrame.from_ndarray(np.ascontiguousarray(a, np.float32), format="fltp",
                                   layout=LAYOUTS[a.shape[0]])
    f.sample_rate, f.pts, f.time_base = rate, pts, Fraction(1, rate)
    return f


def _swr(frames: Iterable[av.AudioFrame], rate: int | None) -> np.ndarray | None:
    """Frames of any sample format and layout -> float32 [C, n] at `rate` (None: theirs), in one
    streamed libswresample pass, flushed at the end. None when there are no samples."""
    rs = av.AudioResampler(format="fltp", rate=rate)
    out = [o.to_ndarray() for f in frames for o in rs.resample(f)]
    out += [o.to_ndarray() for o in rs.resample(None)]
    return np.concatenate(out, axis=1) if out else None


def resample(wave, rate: int, target: int) -> torch.Tensor:
    """Float audio [..., n] at `rate` -> [..., ceil(n * target / rate)] at `target`. Each channel
    is streamed through libswresample in chunks, so time and memory stay bounded for any rates."""
    wave = torch.as_tensor(wave, dtype=torch.float32)
    rate, target = int(rate), int(target)
    if rate == target:
        return wave
    rows = wave.detach().cpu().reshape(-1, wave.shape[-1]).numpy()
    n_out = -(-rows.shape[1] * target // rate)
    out = np.zeros((len(rows), n_out), np.float32)
    for row, dst in zip(rows, out):
        frames = (_audio_frame(row[None, s:s + CHUNK], rate, s) for s in range(0, len(row), CHUNK))
        got = _swr(frames, target)
        if got is not None:   # libswresample keeps back the last sample or two: zeros there
            got = got[0, :n_out]
            dst[:len(got)] = got
    return torch.from_numpy(out).reshape(*wave.shape[:-1], n_out).to(wave.device)


def read_audio(path, rate: int | None = None, mono: bool = False, missing_ok: bool = False
               ) -> tuple[torch.Tensor, int] | None:
    """The first audio stream of an audio or video file -> (float32 [C, n], or [n] channel mean
    with `mono`; its rate), resampled to `rate` as it is decoded when given. A file without an
    audio stream gives None with `missing_ok`, else a MediaError."""
    name = Path(path).name
    try:
        with _open_input(path) as c:
            if not c.streams.audio:
                if missing_ok:
                    return None
                raise MediaError(f"{name} has no audio stream", "path",
                                 "use a file with sound (a recording, or a video with its soundtrack)")
            stream = c.streams.audio[0]
            wave = _swr(c.decode(stream), rate)
            rate = rate or stream.codec_context.sample_rate
    except MediaError:
        raise
    except Exception as e:  # PyAV raises many types for bad files
        raise _decode_error(path, e) from None
    if wave is None:
        raise MediaError(f"{name} contains no audio samples", "path", READABLE)
    wave = torch.from_numpy(wave)
    return (wave.mean(0) if mono else wave), int(rate)



def audio_seconds(path) -> float | None:
    """The first audio stream's duration from the file's header, without decoding (None when
    the header does not say or the file cannot be opened: read_audio then reports it)."""
    try:
        with _open_input(path) as c:
            if not c.streams.audio:
                return None
            a = c.streams.audio[0]
            if a.duration is not None and a.time_base is not None:
                return float(a.duration * a.time_base)
            return float(c.duration) / 1e6 if c.duration else None
    except Exception:
        return None

def write_wav(path, wave, rate: int) -> Path:
    """Float audio [n] or [C, n] (C = 1 or 2) -> a 16-bit PCM WAV file, whole or not at all."""
    a = torch.as_tensor(wave, dtype=torch.float32).detach().cpu()
    a = a.reshape(1, -1) if a.dim() == 1 else a.reshape(-1, a.shape[-1])
    if a.shape[0] not in LAYOUTS:
        raise MediaError(f"a WAV is written from mono or stereo audio, not {a.shape[0]} channels", "wave",
                         "mix the audio down to mono first")
    a = a.clamp(-1, 1).numpy()
    with atomic_write(path) as tmp, av.open(str(tmp), "w", format="wav") as c:
        s = c.add_stream("pcm_s16le", rate=int(rate), layout=LAYOUTS[a.shape[0]])
        for start in range(0, a.shape[1], CHUNK):
            for p in s.encode(_audio_frame(a[:, start:start + CHUNK], int(rate), start)):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return Path(path)


# ----------------------------------------------------------------------------- video
def to_uint8(frames) -> np.ndarray:
    """Frames as uint8 numpy: uint8 as they are, float 0..1 (numpy or torch) rounded."""
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    frames = np.asarray(frames)
    return frames if frames.dtype == np.uint8 else (np.clip(frames, 0, 1) * 255 + 0.5).astype(np.uint8)


def center_square(frames: np.ndarray, size: int) -> np.ndarray:
    """[T,H,W,3] -> the centre square of each frame, resized to size x size."""
    import cv2

    H, W = frames.shape[1:3]
    s = min(H, W)
    y0, x0 = (H - s) // 2, (W - s) // 2
    if s == size:
        return np.ascontiguousarray(frames[:, y0:y0 + s, x0:x0 + s])
    return np.stack([cv2.resize(np.ascontiguousarray(f[y0:y0 + s, x0:x0 + s]), (size, size),
                                interpolation=cv2.INTER_AREA) for f in frames])


def constant_rate(frames, times: np.ndarray, fps: float) -> tuple[np.ndarray, dict]:
    """Frames at constant `fps`: for each output time the source frame shown at that time.
    Variable frame rate (timestamp steps varying by more than 10%) is detected and reported."""
    t = times - times[0]
    d = np.diff(t)
    step = float(np.mean(d)) if len(d) else 1.0 / fps
    vfr = len(d) > 2 and float(np.std(d)) > 0.1 * step
    src_fps = 1.0 / step if step > 0 else fps      # the average rate
    notes = {"source_fps": round(src_fps, 3), "variable_frame_rate": bool(vfr)}
    n_out = max(1, int(round((t[-1] + step) * fps)))
    idx = np.clip(np.searchsorted(t, np.arange(n_out) / fps + 1e-6, side="right") - 1, 0, len(frames) - 1)
    if vfr or abs(src_fps - fps) > 0.01:
        notes["resampled_to_fps"] = fps
    return np.stack([frames[i] for i in idx]), notes


def check_memory(name: str, seconds: float, fps: float, size: int) -> None:
    """Refuse a video whose decoded frames (size x size RGB at fps, held twice: as decoded and
    at constant rate) would not fit in the memory that is free, before decoding any of it."""
    need = 2 * seconds * fps * size * size * 3 / 1e9
    have = available_gb(torch.device("cpu"))
    if need > 0.8 * have:
        minutes = max(1, int(seconds / 60 * 0.8 * have / need))
        raise MediaError(f"{name} lasts {seconds / 60:.1f} min: its frames at {size} px need about "
                         f"{need:.1f} GB, {have:.1f} GB is free", "path",
                         f"cut it into shorter videos (e.g. {minutes} min each) and use them one by one")


def _video_header(c, name: str, fallback_rate: float):
    """(the first video stream, its average rate (fallback_rate when it declares none), its
    seconds from the header) of an open container."""
    if not c.streams.video:
        raise MediaError(f"{name} has no video stream", "path", "use a video file")
    vs = c.streams.video[0]
    rate = float(vs.average_rate or fallback_rate)
    seconds = float(c.duration) / 1e6 if c.duration else (vs.frames / rate if vs.frames else 0.0)
    return vs, rate, seconds


def read_frames(path, fps: float | None = None, size: int | None = None) -> tuple[np.ndarray, float, dict]:
    """The first video stream -> (frames [N,H,W,3] uint8 at constant `fps` (None: the stream's
    average rate), that fps, constant_rate's notes). With `size` each frame is cut to its centre
    square and resized as it is decoded, so long HD footage is never held at full size; footage
    whose frames would not fit in free memory is refused before decoding (check_memory)."""
    name = Path(path).name
    try:
        with _open_input(path) as c:
            vs, rate, seconds = _video_header(c, name, fps or 25.0)   # none declared: the timestamps decide
            fps = float(fps or rate)
            check_memory(name, seconds, max(rate, fps), size or max(vs.width, vs.height))
            times, frames = [], []
            for f in c.decode(vs):
                times.append(float(f.time) if f.time is not None else len(times) / rate)
                a = f.to_ndarray(format="rgb24")
                frames.append(center_square(a[None], size)[0] if size else a)
    except MediaError:
        raise
    except Exception as e:
        raise _decode_error(path, e) from None
    if not frames:
        raise MediaError(f"{name} has no frames", "path", READABLE)
    frames, notes = constant_rate(frames, np.asarray(times), fps)
    return frames, fps, notes


def shrink(frame: np.ndarray, long_side: int | None) -> np.ndarray:
    """uint8 [H,W,3] resized (area) so its long side is at most `long_side` (None: as it is)."""
    import cv2

    h, w = frame.shape[:2]
    if not long_side or max(h, w) <= long_side:
        return frame
    s = long_side / max(h, w)
    return cv2.resize(np.ascontiguousarray(frame), (max(1, round(w * s)), max(1, round(h * s))),
                      interpolation=cv2.INTER_AREA)


def video_info(path) -> tuple[float, float, int, int]:
    """(average fps, seconds, width, height) of the first video stream, without decoding it."""
    name = Path(path).name
    try:
        with _open_input(path) as c:
            vs, rate, seconds = _video_header(c, name, 25.0)
            return rate, seconds, int(vs.width), int(vs.height)
    except MediaError:
        raise
    except Exception as e:
        raise _decode_error(path, e) from None


def iter_frames(path, fps: float | None = None, chunk: int = 240, long_side: int | None = None):
    """The first video stream streamed as chunks of up to `chunk` frames (uint8 [n,H,W,3]) at
    constant `fps` (None: the stream's average rate; each output time shows the source frame on
    screen then), each frame shrunk so its long side is at most `long_side` as it is decoded:
    memory stays flat however long the video is."""
    name = Path(path).name
    rate = video_info(path)[0]
    fps = float(fps or rate)
    out, k, prev, t0, t = [], 0, None, None, 0.0
    try:
        with _open_input(path) as c:
            for f in c.decode(c.streams.video[0]):
                t = float(f.time) if f.time is not None else (k / rate)
                t0 = t if t0 is None else t0
                while prev is not None and k / fps + 1e-6 < t - t0:     # times the previous frame shows
                    out.append(prev)
                    k += 1
                    if len(out) == chunk:
                        yield np.stack(out)
                        out = []
                prev = shrink(f.to_ndarray(format="rgb24"), long_side)
    except MediaError:
        raise
    except Exception as e:
        raise _decode_error(path, e) from None
    if prev is None:
        raise MediaError(f"{name} has no frames", "path", READABLE)
    end = max(1, int(round((t - t0 + 1.0 / rate) * fps)))     # the last frame shows for one source step
    while k < end:
        out.append(prev)
        k += 1
        if len(out) == chunk:
            yield np.stack(out)
            out = []
    if out:
        yield np.stack(out)


def read_video(path, audio_rate: int | None = None
               ) -> tuple[np.ndarray, float, np.ndarray | None, int | None]:
    """A video file -> (frames [N,H,W,3] uint8 at its average rate, that fps, its mono float32
    audio [n] at `audio_rate` (None: the file's) or None when silent, the audio's rate)."""
    frames, fps, _ = read_frames(path)
    audio = read_audio(path, audio_rate, mono=True, missing_ok=True)
    if audio is None:
        return frames, fps, None, None
    return frames, fps, audio[0].numpy(), audio[1]


class StreamingMP4Writer:
    """with StreamingMP4Writer(path, fps, w, h, audio, rate) as w: w.write(frames) ...

    Frames go to H.264 window by window and the speech to AAC alongside, up to the time of the
    last written frame, so the muxer interleaves the streams and memory stays flat. The file
    is written under a partial name and renamed when complete: an error or a cancel leaves
    nothing. frames: [n, H, W, 3] uint8, or float 0..1 (numpy or torch, ComfyUI's IMAGE
    layout). audio: [n] or [C, n] (mixed to mono) float at `sample_rate`, or None for a silent
    video; it is cut to the video's length, and shorter audio is padded with silence.
    """

    def __init__(self, path: str | os.PathLike, fps: float, width: int, height: int,
                 audio: torch.Tensor | np.ndarray | None = None, sample_rate: int | None = None,
                 crf: int = 20, preset: str = "veryfast"):
        if width % 2 or height % 2:
            raise MediaError(f"H.264 needs an even width and height, got {width}x{height}", "width",
                             "pad or crop the frames to even sizes")
        if not (0 < fps <= 240):
            raise MediaError(f"fps must be in (0, 240], got {fps}", "fps", "use 24, 25 or 30")
        self.path, self.tmp = Path(path), partial_path(path)
        self.fps, self.width, self.height = fps, width, height
        self.frames_written = 0
        self.audio = None
        if audio is not None:
            a = torch.as_tensor(audio, dtype=torch.float32)
            a = a.reshape(-1, a.shape[-1])
            if a.shape[0] > 1:                      # mono speech is used as given: no copy of it
                a = a.mean(0, keepdim=True)
            self.rate = int(sample_rate)
            if self.rate not in AAC_RATES:  # keep the speech's own rate when AAC allows it
                a, self.rate = resample(a, self.rate, AUDIO_RATE), AUDIO_RATE
            self.audio = a.numpy()     # ~40 MB for 10 minutes; chunks are cut (and clamped) as encoded
            self.audio_pos = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(self.tmp), mode="w", format="mp4")
        try:
            self.vstream = self.container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            self.vstream.width, self.vstream.height = width, height
            self.vstream.pix_fmt = "yuv420p"
            self.vstream.options = {"crf": str(crf), "preset": preset}
            if self.audio is not None:
                self.astream = self.container.add_stream("aac", rate=self.rate)
                self.astream.layout = "mono"
        except BaseException:
            self.abort()
            raise

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _frames_uint8(self, frames) -> np.ndarray:
        frames = to_uint8(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.shape[1:] != (self.height, self.width, 3):
            raise MediaError(f"frames are {frames.shape[1:]}, the video is {(self.height, self.width, 3)}",
                             "frames", "give every window the size the writer was opened with")
        return frames

    def write(self, frames) -> None:
        for f in self._frames_uint8(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            for packet in self.vstream.encode(vf):
                self.container.mux(packet)
            self.frames_written += 1
        self._write_audio_until(self.frames_written / self.fps)

    def _write_audio_until(self, seconds: float, pad: bool = False) -> None:
        """Encode the speech up to `seconds` (AAC frames of 1024 samples); with `pad`, silence
        after the speech's end."""
        if self.audio is None:
            return
        end = int(round(seconds * self.rate))
        if not pad:
            end = min(self.audio.shape[1], end)
        while self.audio_pos < end:
            stop = min(self.audio_pos + 1024, end)
            chunk = np.zeros((1, stop - self.audio_pos), np.float32)
            seg = self.audio[:, self.audio_pos:stop]
            np.clip(seg, -1, 1, out=chunk[:, :seg.shape[1]])
            for packet in self.astream.encode(_audio_frame(chunk, self.rate, self.audio_pos)):
                self.container.mux(packet)
            self.audio_pos = stop

    def close(self) -> Path:
        """Flush both encoders and move the finished file into place."""
        if self.frames_written == 0:
            self.abort()
            raise MediaError("no frames were written", "frames", "write at least one frame")
        try:
            for packet in self.vstream.encode():
                self.container.mux(packet)
            if self.audio is not None:
                self._write_audio_until(self.frames_written / self.fps, pad=True)
                for packet in self.astream.encode():
                    self.container.mux(packet)
            self.container.close()
        except BaseException:
            self.abort()
            raise
        return commit_partial(self.tmp, self.path)

    def abort(self) -> None:
        """Drop the partial file (interrupt or error): nothing appears under the final name."""
        try:
            self.container.close()
        except Exception:
            pass
        self.tmp.unlink(missing_ok=True)

