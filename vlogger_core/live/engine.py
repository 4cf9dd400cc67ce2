"""The live engine: audio chunks in, (timestamp, frame) out as soon as each frame's audio is in.

    engine = LiveEngine(motion_model, TalkingVideoRenderer(body, fit, 256, 256))
    for chunk in chunks:                      # any size: 10 ms .. seconds of mono 16 kHz audio
        for f in engine.push(chunk):          # LiveFrame(index, time, image uint8 [H,W,3], audio)
            show(f.time, f.image)

Motion comes from MotionStream (the batch sampler's motion, window by window, see
motion_stream.py); frames from the default renderer (TalkingVideoRenderer.render). A frame is out
when its motion is final: `lookahead` seconds of audio after the end of its own span (0.171 s at
24 fps). `silence(seconds)` continues the stream with silence: the motion model and the body
layer keep the face alive (breathing, blinks, small head moves), it is not a held frame.
`barge_in()` forgets the audio that no frame has read yet and the stream goes on from there with
whatever comes next (silence, when the speaker stopped): the model continues from its own
context, so the face settles into idle motion without a jump. The frame's `audio` is its own span
of the stream (what a player plays with it, silence included), so sound and picture share one
timeline.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..media import to_uint8
from ..motion.model import MotionDiffusion
from ..motion.params import Motion
from ..render.talking_video import TalkingVideoRenderer
from .motion_stream import SR, LiveSettings, MotionStream, lookahead_seconds


@dataclass
class LiveFrame:
    index: int               # frame number from the stream's start
    time: float              # seconds: the start of its audio span on the stream's timeline
    image: np.ndarray | None  # [H, W, 3] uint8; None: not rendered (dropped to catch up, see LiveSession)
    audio: np.ndarray        # float32 mono 16 kHz samples of its span


class LiveEngine:
    def __init__(self, model: MotionDiffusion, renderer: TalkingVideoRenderer,
                 settings: LiveSettings | None = None, device=None):
        self.stream = MotionStream(model, settings, device)
        self.renderer = renderer
        self.fps = self.stream.fps
        self.lookahead = lookahead_seconds(self.fps, model.config.fps, model.config.frames_per_token,
                                           self.stream.settings.sample.pose_smoothing)
        self.last_motion: Motion | None = None

    @property
    def seconds(self) -> float:
        """The stream's length so far (audio and silence pushed)."""
        return self.stream.seconds

    @property
    def frames_out(self) -> int:
        return self.stream.n_out

    def push(self, wave16k, render=None) -> list[LiveFrame]:
        """Mono 16 kHz float samples (-1..1) -> the frames they complete (maybe none).
        render(index) -> bool (default: all): which of them to render (the others carry their
        audio and image None)."""
        first = self.stream.n_out
        return self._frames(first, self.stream.push(wave16k), render)

    def silence(self, seconds: float) -> list[LiveFrame]:
        """Continue the stream with `seconds` of silence (idle motion)."""
        return self.push(np.zeros(max(0, int(round(seconds * SR))), np.float32))

    def barge_in(self) -> None:
        """The speaker stopped: drop the pushed audio that no frame has read yet."""
        self.stream.drop_after(0)

    def flush(self) -> list[LiveFrame]:
        """The stream has ended: its remaining frames (round(duration x fps) frames in all)."""
        first = self.stream.n_out
        return self._frames(first, self.stream.flush())

    def _frames(self, first: int, motion: Motion | None, render=None) -> list[LiveFrame]:
        if motion is None or motion.num_frames == 0:
            return []
        self.last_motion = motion
        keep = [i for i in range(motion.num_frames) if render is None or render(first + i)]
        images = [None] * motion.num_frames
        if keep:
            sub = Motion(motion.fps, motion.expression_set, motion.expression[keep], motion.rot6d[keep],
                         list(motion.joints))
            for i, im in zip(keep, to_uint8(self.renderer.render(sub, 0, sub.num_frames))):
                images[i] = im
        out = []
        st = self.stream
        for i in range(motion.num_frames):
            j = first + i
            a, b = int(round(j * SR / self.fps)), int(round((j + 1) * SR / self.fps))
            audio = st.wave[a - st.wave_base: b - st.wave_base].copy()
            out.append(LiveFrame(j, j / self.fps, images[i], audio))
        return out


def to_float_pcm(data: bytes) -> np.ndarray:
    """PCM16 little-endian bytes -> float32 -1..1."""
    return np.frombuffer(data, "<i2").astype(np.float32) / 32768.0

