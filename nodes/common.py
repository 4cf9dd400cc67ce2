"""Helpers every VLOGGER node uses: artist-facing errors, device, progress and interrupt."""
from __future__ import annotations

import comfy.model_management as mm
import comfy.utils


class VloggerInputError(ValueError):
    """A bad input, reported to the artist as: [node] input 'x': what is wrong. Fix: what to do."""


def input_error(node_id: str, input_name: str, problem: str, fix: str) -> VloggerInputError:
    return VloggerInputError(f"[{node_id}] input '{input_name}': {problem}. Fix: {fix}")


def device():
    """The device ComfyUI wants models on (CPU here, a GPU for users who have one)."""
    return mm.get_torch_device()


def offload_device():
    return mm.unet_offload_device()


def progress_callback(total: int):
    """A core-style progress(done, total) callback that drives ComfyUI's progress bar."""
    bar = comfy.utils.ProgressBar(total)

    def progress(done: int, total_now: int) -> None:
        bar.update_absolute(done, total_now)

    return progress


def interrupt_check() -> None:
    """Raises ComfyUI's InterruptProcessingException when the artist pressed Cancel."""
    mm.throw_exception_if_processing_interrupted()
