"""Progress and interrupt callbacks the core accepts, so ComfyUI (or a CLI) can drive it."""
from __future__ import annotations

from typing import Callable, Optional

Progress = Optional[Callable[[int, int], None]]   # progress(done, total)
Interrupt = Optional[Callable[[], None]]          # raises to abort a long loop


def report(progress: Progress, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


def check(interrupt: Interrupt) -> None:
    if interrupt is not None:
        interrupt()
