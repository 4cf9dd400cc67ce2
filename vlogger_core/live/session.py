"""A live session on a wall clock: audio arrives when it arrives, frames keep coming.

The engine is driven by audio; a conversation is not: nobody speaks most of the time, a network
stalls, an assistant's TTS arrives in bursts faster than real time. `LiveSession.step(now)`:
- feeds the queued audio to the engine, at most LEAD_S ahead of the wall clock (a burst is
  paced, so `reset` can still drop what has not been spoken);
- when the stream falls more than MAX_GAP_S behind the wall clock (nobody speaks, or the
  network stalls), continues it with silence up to that point: idle motion, never a frozen
  frame; audio that comes later goes on the stream after that silence;
- returns the frames made, each with its stream time and its own audio; when the machine is too
  busy to render every frame in time (a frame more than MAX_LATE_S behind the clock), only every
  KEEP_EVERY-th is rendered until it catches up: the picture's rate drops, the sound and the
  timeline never fall behind.
Thread-safe: `feed` / `reset` may be called from another thread than `step`.
"""
from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

from .engine import LiveEngine, LiveFrame
from .motion_stream import SR

LEAD_S = 0.3          # how far ahead of the wall clock queued audio is fed
MAX_GAP_S = 0.12      # how far the stream may fall behind the wall clock before silence fills it
MAX_QUEUE_S = 600.0   # queued audio beyond this is refused (a client sending far faster than real time)
MAX_LATE_S = 0.35     # a frame later than this past its audio (a machine too busy): rendered only
KEEP_EVERY = 3        # if its index is a multiple of this; the others carry their audio alone


class QueueFull(Exception):
    pass


class LiveSession:
    def __init__(self, engine: LiveEngine, clock=time.monotonic, lead_s: float = LEAD_S,
                 max_gap_s: float = MAX_GAP_S):
        self.engine, self.clock = engine, clock
        self.lead_s, self.max_gap_s = lead_s, max_gap_s
        self.queue: deque[np.ndarray] = deque()
        self.queued = 0
        self.lock = threading.Lock()
        self.t0: float | None = None
        self.speech_samples = 0        # audio fed from the queue (not silence)
        self.silence_samples = 0
        self._barge = False
        self.dropped = 0

    def start(self, now: float | None = None) -> None:
        """Put the stream's time 0 at `now` (default: the first step)."""
        self.t0 = self.clock() if now is None else now

    def feed(self, wave16k: np.ndarray) -> None:
        w = np.asarray(wave16k, np.float32).reshape(-1)
        with self.lock:
            if self.queued + len(w) > MAX_QUEUE_S * SR:
                raise QueueFull(f"more than {MAX_QUEUE_S:.0f} s of audio queued")
            self.queue.append(w)
            self.queued += len(w)

    def reset(self) -> None:
        """Barge-in: drop the queued audio and what the engine has not read; idle from here."""
        with self.lock:
            self.queue.clear()
            self.queued = 0
            self._barge = True            # done by step(), on the thread that runs the engine

    @property
    def stream_seconds(self) -> float:
        return self.engine.seconds

    def step(self, now: float | None = None) -> list[LiveFrame]:
        now = self.clock() if now is None else now
        if self.t0 is None:
            self.t0 = now
        wall = now - self.t0
        frames: list[LiveFrame] = []
        with self.lock:
            if self._barge:
                self.engine.barge_in()
                self._barge = False
            room = int((wall + self.lead_s - self.engine.seconds) * SR)
            parts = []
            while self.queue and room > 0:
                w = self.queue[0]
                if len(w) <= room:
                    parts.append(self.queue.popleft())
                    room -= len(w)
                else:
                    parts.append(w[:room])
                    self.queue[0] = w[room:]
                    room = 0
            took = sum(len(p) for p in parts)
            self.queued -= took
        fps = self.engine.fps

        def render(index: int) -> bool:
            late = self.clock() - self.t0 - (index + 1) / fps - self.engine.lookahead
            ok = late <= MAX_LATE_S or index % KEEP_EVERY == 0
            self.dropped += not ok
            return ok
        if parts:
            self.speech_samples += took
            frames += self.engine.push(np.concatenate(parts), render)
        gap = wall - self.max_gap_s - self.engine.seconds
        if gap > 0:
            n = int(gap * SR)
            self.silence_samples += n
            frames += self.engine.push(np.zeros(n, np.float32), render)
        return frames
