"""The driving videos for ComfyUI's pose / audio video models, frame batch by frame batch:
pose (pose_drawing), face (face_crops of the default renderer's frames), depth / normal /
semantic (depth). Each works on any frame range of a motion (a window), `chunk` frames at a
time, with progress and cancel; memory is the output plus one chunk.

One TalkingVideoRenderer per (body, fit, size) is kept (renderer_for), so the pose, face and
depth nodes of one workflow prepare the reference once.
"""
from __future__ import annotations

import weakref

import numpy as np

from ..callbacks import Interrupt, Progress, check, report
from ..errors import VloggerError
from ..motion.params import Motion
from ..render.controls import check_body_inputs
from ..render.talking_video import TalkingVideoRenderer
from .depth import body_maps, depth_range
from .face_crops import FACE_SIZE, face_crops
from .keypoints import rig_for
from .pose_drawing import PoseStyle, draw_pose_video

CHUNK = 16
MAX_BYTES = 8e9              # refuse outputs larger than this: use windows (windows.py) instead
BYTES_PER_PIXEL = 12         # float32 RGB
_RENDERERS: list = []        # [(weakref body, weakref fit, width, height, renderer)], newest last
_KEEP = 2


def renderer_for(body, fit, width: int, height: int, device="cpu") -> TalkingVideoRenderer:
    for entry in _RENDERERS:
        b, f, w, h, r = entry
        if b() is body and f() is fit and (w, h) == (width, height):
            return r
    check_body_inputs(body, fit)
    r = TalkingVideoRenderer(body, fit, width, height, device)
    _RENDERERS.append((weakref.ref(body), weakref.ref(fit), width, height, r))
    del _RENDERERS[:-_KEEP]
    return r


def frame_range(motion: Motion, start: int, count: int) -> tuple[int, int]:
    """(start, stop) of `count` frames from `start` (count 0: to the motion's end)."""
    n = motion.num_frames
    if not 0 <= start < n:
        raise VloggerError(f"frame {start} is past the motion's {n} frames", "start", f"start below {n}")
    return start, (n if count <= 0 else min(n, start + count))


def check_size(frames: int, width: int, height: int, videos: int = 1) -> None:
    need = frames * width * height * BYTES_PER_PIXEL * videos
    if need > MAX_BYTES:
        raise VloggerError(f"{frames} frames at {width}x{height} would need about {need / 1e9:.0f} GB "
                           "as one IMAGE batch", "count",
                           "make the video window by window (VLOGGER Wan Window: one slice per "
                           "Extend / continue_motion window) or at a smaller size")


def _chunks(renderer: TalkingVideoRenderer, start: int, stop: int, progress: Progress, interrupt: Interrupt):
    """Frame ranges of at most CHUNK frames, and of no more than the renderer's fitting_window."""
    size = min(CHUNK, renderer.fitting_window)
    for s in range(start, stop, size):
        check(interrupt)
        e = min(stop, s + size)
        yield s, e
        report(progress, e - start, stop - start)


def pose_video(renderer: TalkingVideoRenderer, motion: Motion, style: PoseStyle, start: int = 0,
               stop: int | None = None, progress: Progress = None, interrupt: Interrupt = None) -> np.ndarray:
    """[n,H,W,3] float32 pose images of frames start..stop."""
    style.check()
    stop = motion.num_frames if stop is None else stop
    check_size(stop - start, renderer.width, renderer.height)
    rig = rig_for(renderer.body)
    out = np.empty((stop - start, renderer.height, renderer.width, 3), np.float32)
    for s, e in _chunks(renderer, start, stop, progress, interrupt):
        out[s - start:e - start] = draw_pose_video(rig.keypoints(renderer, motion, s, e), style)
    return out


def face_video(renderer: TalkingVideoRenderer, motion: Motion, start: int = 0, stop: int | None = None,
               size: int = FACE_SIZE, progress: Progress = None, interrupt: Interrupt = None,
               keep_frames: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """(face crops [n,size,size,3], the renderer's frames [n,H,W,3] or None) of frames start..stop."""
    stop = motion.num_frames if stop is None else stop
    check_size(stop - start, renderer.width, renderer.height, 1 + keep_frames)
    rig = rig_for(renderer.body)
    faces = np.empty((stop - start, size, size, 3), np.float32)
    frames = (np.empty((stop - start, renderer.height, renderer.width, 3), np.float32)
              if keep_frames else None)
    for s, e in _chunks(renderer, start, stop, progress, interrupt):
        f = renderer.render(motion, s, e)
        faces[s - start:e - start] = face_crops(f, rig.keypoints(renderer, motion, s, e).face, size)
        if frames is not None:
            frames[s - start:e - start] = f
    return faces, frames


def map_videos(renderer: TalkingVideoRenderer, motion: Motion, start: int = 0, stop: int | None = None,
               progress: Progress = None, interrupt: Interrupt = None) -> dict[str, np.ndarray]:
    """{"depth", "normal", "semantic": [n,H,W,3], "mask": [n,H,W]} of frames start..stop."""
    stop = motion.num_frames if stop is None else stop
    check_size(stop - start, renderer.width, renderer.height, 3)
    near_far = depth_range(renderer)
    shape = (stop - start, renderer.height, renderer.width)
    out = {k: np.empty(shape + (3,), np.float32) for k in ("depth", "normal", "semantic")}
    out["mask"] = np.empty(shape, np.float32)
    for s, e in _chunks(renderer, start, stop, progress, interrupt):
        body_maps(renderer, motion, s, e, near_far, {k: v[s - start:e - start] for k, v in out.items()})
    return out
