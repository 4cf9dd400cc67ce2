"""Helpers every VLOGGER node uses: artist-facing errors, device, progress and interrupt."""
from __future__ import annotations

import comfy.model_management as mm
import comfy.utils

from vlogger_core.errors import VloggerError


class VloggerInputError(ValueError):
    """A bad input, reported to the artist as: [node] input 'x': what is wrong. Fix: what to do."""


def input_error(node_id: str, input_name: str, problem: str, fix: str) -> VloggerInputError:
    return VloggerInputError(f"[{node_id}] input '{input_name}': {problem}. Fix: {fix}")


def node_error(node_id: str, error: VloggerError, inputs: dict[str, str] | None = None,
               default: str = "", fix: str = "") -> VloggerInputError:
    """A core VloggerError as the artist's message: the core argument it blames (error.arg) is
    mapped to this node's input name through `inputs` (same name when not listed; `default` when
    the core blames no argument), with the core's fix (else `fix`). Raise it `from None`."""
    arg = error.arg or ""
    name = (inputs or {}).get(arg, arg) or default or "inputs"
    return input_error(node_id, name, error.message, error.fix or fix or "check this input")


def device():
    """The device ComfyUI wants models on (CPU here, a GPU for users who have one)."""
    return mm.get_torch_device()


def offload_device():
    return mm.unet_offload_device()


def progress_callback(total: int = 1):
    """A core-style progress(done, total) callback for ComfyUI's progress bar (the core's totals win)."""
    bar = comfy.utils.ProgressBar(total)

    def progress(done: int, total_now: int) -> None:
        bar.update_absolute(done, total_now)

    return progress


def interrupt_check() -> None:
    """Raises ComfyUI's InterruptProcessingException when the artist pressed Cancel."""
    mm.throw_exception_if_processing_interrupted()
