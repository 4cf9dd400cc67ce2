"""Frame rate and window lengths of the Wan video models, and each window's slice of the speech.

Wan 2.x generates 16 fps video in windows of 4n + 1 frames (its VAE packs 4 frames per latent
after the first). ComfyUI chains windows two ways, and each needs its own slice:
- WanSoundImageToVideo + ...Extend: window k's audio embedding starts at frame
  k * 4 * ((length - 1) // 4 + 1) (ComfyUI's wan_sound_to_video moves frame_offset by the
  latent frames times 4), but `control_video` is never offset: window k needs the pose frames
  from that same start (`s2v` below);
- WanAnimateToVideo: window k >= 1 re-uses the last `overlap` frames of the previous one
  (continue_motion) and starts at k * (length - overlap) (`animate`);
- `plain`: back to back, k * length.
The speech is resampled to 16 kHz (wav2vec2's rate: ComfyUI's AudioEncoderEncode then has no
resampling left to do) with media.resample (streamed, bounded for any rate) and cut or padded
with silence to exactly the frames' duration.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import VloggerError
from ..media import resample
from ..motion.params import Motion
from ..motion.resample import resample_motion

WAN_FPS = 16.0
AUDIO_RATE = 16000
MODES = ("s2v", "animate", "plain")
DEFAULT_LENGTH = 77             # ComfyUI's default for WanAnimateToVideo / WanSoundImageToVideo
DEFAULT_OVERLAP = 5             # WanAnimateToVideo's continue_motion_max_frames default


def check_length(length: int, arg: str = "length") -> int:
    if length < 1 or (length - 1) % 4:
        raise VloggerError(f"{length} frames is not a Wan window length (4n + 1: 5, 9, ..., 77, 81)",
                           arg, f"use {max(1, (length - 1) // 4 * 4 + 1)} or {((length - 1) // 4 + 1) * 4 + 1}")
    return length


def padded_length(frames: int) -> int:
    """The smallest 4n + 1 >= frames."""
    return 1 + 4 * max(0, -(-(frames - 1) // 4))


def window_start(index: int, length: int, mode: str = "s2v", overlap: int = DEFAULT_OVERLAP) -> int:
    """First motion frame of window `index` (0-based) when windows are chained as `mode`."""
    check_length(length)
    if mode not in MODES:
        raise VloggerError(f"unknown window mode {mode!r}", "mode", f"use one of {MODES}")
    if index < 0:
        raise VloggerError(f"window {index} does not exist", "index", "count windows from 0")
    if mode == "s2v":
        return index * 4 * ((length - 1) // 4 + 1)
    if mode == "animate":
        if not 0 <= overlap < length:
            raise VloggerError(f"an overlap of {overlap} frames does not fit a {length}-frame window",
                               "overlap", f"use 0..{length - 1} (WanAnimateToVideo's continue_motion_max_frames)")
        return index * (length - overlap)
    return index * length


def window_count(frames: int, length: int, mode: str = "s2v", overlap: int = DEFAULT_OVERLAP) -> int:
    """How many windows it takes to cover `frames` frames."""
    n = 1
    while window_start(n, length, mode, overlap) < frames:
        n += 1
    return n


@dataclass(frozen=True)
class Window:
    index: int
    start: int          # first frame (in the target fps)
    length: int         # frames in the window (4n + 1)
    fps: float

    @property
    def stop(self) -> int:
        return self.start + self.length

    def sample_range(self, rate: int) -> tuple[int, int]:
        """The window's audio samples at `rate`: frame f covers [f / fps, (f + 1) / fps)."""
        return round(self.start * rate / self.fps), round(self.stop * rate / self.fps)


def plan(frames: int, length: int = DEFAULT_LENGTH, mode: str = "s2v", overlap: int = DEFAULT_OVERLAP,
         fps: float = WAN_FPS) -> list[Window]:
    """Every window covering `frames` frames."""
    return [Window(k, window_start(k, length, mode, overlap), length, fps)
            for k in range(window_count(frames, length, mode, overlap))]


def motion_at(motion: Motion, fps: float = WAN_FPS) -> Motion:
    """The motion at the target frame rate (unchanged when it already is)."""
    return resample_motion(motion, fps) if abs(motion.fps - fps) > 1e-6 else motion


def frame_indices(window: Window, num_frames: int) -> list[int]:
    """Motion frames of the window; past the motion's end the last frame is held (the speech is
    silent there), so every window has its full 4n + 1 frames."""
    if num_frames < 1:
        raise VloggerError("the motion has no frames", "motion", "generate a motion from speech first")
    return [min(f, num_frames - 1) for f in range(window.start, window.stop)]


def audio_slice(wave: torch.Tensor, rate: int, start_frame: int, frames: int, fps: float = WAN_FPS,
                target_rate: int = AUDIO_RATE) -> torch.Tensor:
    """Mono wave [n] at `rate` -> [frames / fps * target_rate] at `target_rate`, the stretch of
    frames start_frame .. start_frame + frames (silence past the speech's end). Only the slice
    (plus a few samples) is resampled, so a window of a long speech costs a window's work."""
    a = int(start_frame * rate / fps)
    b = int(-(-(start_frame + frames) * rate // fps))
    part = wave[a:min(b, len(wave))]
    out_n = round(frames * target_rate / fps)
    res = resample(part, rate, target_rate) if len(part) else torch.zeros(0)
    out = torch.zeros(out_n, dtype=torch.float32)
    k = min(out_n, len(res))
    out[:k] = res[:k]
    return out


def motion_frames(motion: Motion, indices: list[int]) -> Motion:
    """The motion's frames at `indices` (repeats allowed) as a motion of their own."""
    idx = torch.as_tensor(indices, dtype=torch.long)
    return Motion(motion.fps, motion.expression_set, motion.expression[idx], motion.rot6d[idx],
                  list(motion.joints))


def window_motion(motion: Motion, window: Window) -> Motion:
    """The window's frames of a motion at the window's fps (last frame held past the end)."""
    m = motion_at(motion, window.fps)
    return motion_frames(m, frame_indices(window, m.num_frames))


def whole_motion(motion: Motion, fps: float = WAN_FPS) -> Motion:
    """The whole motion at `fps`, padded (last frame held) to 4n + 1 frames."""
    m = motion_at(motion, fps)
    return window_motion(m, Window(0, 0, padded_length(m.num_frames), fps))
