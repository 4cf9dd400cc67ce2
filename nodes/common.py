"""Helpers every VLOGGER node uses: artist-facing errors, device, progress and interrupt."""
from __future__ import annotations

import comfy.model_management as mm
import comfy.utils
from comfy_api.latest import io

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


# ----------------------------------------------------------------------------- input checks
# Every VLOGGER node derives from VloggerNode: its inputs are checked against the node's own
# schema (combo choices, finite numbers within min/max, strings and file names) when the prompt
# is queued (validate_inputs: HTTP 400, nothing runs) and again when the node runs (values that
# arrive through links). ComfyUI skips its own min/max checks for a node whose validate_inputs
# takes **kwargs and never checks V3 combos, so these checks are the only ones.
TEXT_MAX_CHARS = 20_000      # a multiline text (about 20 minutes of speech)
STRING_MAX_CHARS = 1_000     # any other string
NAME_PART_MAX_CHARS = 120    # one folder or file name of a name/prefix input (room for counters)
CHOICES_LISTED = 30          # a combo's message lists at most this many choices


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


def is_name_input(input_id: str) -> bool:
    """String inputs that name a file or folder (checked as relative paths): *_prefix, *_name."""
    return input_id.endswith("prefix") or input_id.endswith("_name") or input_id == "name"


def check_name(node_id: str, input_id: str, value: str) -> None:
    """A relative file/folder name inside ComfyUI's folders: no '..', not absolute, no control
    characters, each part short enough for any file system."""
    fix = "use a plain name such as 'vlogger/talking' (sub-folders allowed; no '..', no leading '/')"
    if "\x00" in value or any(ord(c) < 32 for c in value):
        raise input_error(node_id, input_id, "contains control characters", fix)
    parts = value.replace("\\", "/").split("/")
    if value.startswith(("/", "\\")) or (len(value) > 1 and value[1] == ":"):
        raise input_error(node_id, input_id, f"{_shown(value)} is an absolute path", fix)
    if ".." in parts:
        raise input_error(node_id, input_id, f"{_shown(value)} leads outside ComfyUI's folder", fix)
    long = [p for p in parts if len(p.encode()) > NAME_PART_MAX_CHARS]
    if long:
        raise input_error(node_id, input_id, f"a name part is {len(long[0].encode())} bytes long "
                          f"(at most {NAME_PART_MAX_CHARS})", "use a shorter name")


def _check_upload(node_id: str, input_id: str, value) -> None:
    """An upload combo's value: a file in ComfyUI's input folder (optionally 'name [input]')."""
    import os

    import folder_paths

    fix = "upload the file with the node's button or pick one from the list"
    if not isinstance(value, str) or not value.strip():
        raise input_error(node_id, input_id, f"{_shown(value)} is not a file name", fix)
    check_name(node_id, input_id, value.rsplit(" [", 1)[0] if value.endswith("]") else value)
    path = folder_paths.get_annotated_filepath(value)
    roots = [os.path.realpath(folder_paths.get_directory_by_type(t) or "") for t in ("input", "output", "temp")]
    real = os.path.realpath(path)
    if not any(real.startswith(r + os.sep) for r in roots if r):
        raise input_error(node_id, input_id, f"{_shown(value)} is outside ComfyUI's input folder", fix)
    if not os.path.isfile(real):
        raise input_error(node_id, input_id, f"file {_shown(value)} is not in the input folder", fix)


def check_value(node_id: str, spec, value) -> None:
    """One input value against its schema entry (a comfy_api io *.Input); raises input_error."""
    name = spec.id
    if isinstance(spec, io.Combo.Input):
        if getattr(spec, "upload", None) is not None:
            return _check_upload(node_id, name, value)
        options = list(spec.options or [])
        ok = (isinstance(value, (str, int)) and not isinstance(value, bool)
              and any(type(value) is type(o) and value == o for o in options))
        if not ok:
            shown = ", ".join(str(o) for o in options[:CHOICES_LISTED])
            more = f" ... ({len(options)} in all, see the node's list)" if len(options) > CHOICES_LISTED else ""
            raise input_error(node_id, name, f"{_shown(value)} is not one of its choices",
                              f"pick one of: {shown}{more}")
        return
    if isinstance(spec, io.Boolean.Input):
        if not isinstance(value, bool) and value not in (0, 1):
            raise input_error(node_id, name, f"{_shown(value)} is not true or false", "use true or false")
        return
    if isinstance(spec, (io.Int.Input, io.Float.Input)):
        import math

        whole = isinstance(spec, io.Int.Input)
        kind = "a whole number" if whole else "a number"
        lo, hi = spec.min, spec.max
        span = f"between {lo} and {hi}" if lo is not None and hi is not None else (
            f"at least {lo}" if lo is not None else (f"at most {hi}" if hi is not None else "finite"))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (whole and not float(value).is_integer()):
            raise input_error(node_id, name, f"{_shown(value)} is not {kind}", f"use {kind} {span}")
        if not math.isfinite(value):
            raise input_error(node_id, name, f"{value} is not a finite number", f"use {kind} {span}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise input_error(node_id, name, f"{_shown(value)} is out of range", f"use {kind} {span}")
        return
    if isinstance(spec, io.String.Input):
        if not isinstance(value, str):
            raise input_error(node_id, name, f"{_shown(value)} is not text", "type text")
        limit = TEXT_MAX_CHARS if spec.multiline else STRING_MAX_CHARS
        if len(value) > limit:
            raise input_error(node_id, name, f"is {len(value):,} characters long (at most {limit:,})",
                              "split the text over several runs" if spec.multiline else "use a shorter text")
        if not spec.force_input and not value.strip():
            raise input_error(node_id, name, "is empty", "type a value (the default is a good start)")
        if is_name_input(name):
            check_name(node_id, name, value)


def check_inputs(node_cls, values: dict, linked_unknown: bool = True) -> None:
    """Every widget input of `node_cls` present in `values`, checked against its schema.
    `linked_unknown`: a None value is a link not evaluated yet (validation time) and skipped."""
    schema = node_cls.define_schema()
    for spec in schema.inputs:
        if not isinstance(spec, (io.Combo.Input, io.Boolean.Input, io.Int.Input, io.Float.Input,
                                 io.String.Input)):
            continue
        if spec.id not in values:
            continue
        value = values[spec.id]
        if value is None:
            if linked_unknown or spec.optional:
                continue
            raise input_error(schema.node_id, spec.id, "has no value", "set it or connect it")
        check_value(schema.node_id, spec, value)


def _checked(execute):
    """execute() that first checks the values it was given (links included)."""
    import functools

    func = execute.__func__
    if getattr(func, "_vlogger_checked", False):
        return execute

    @functools.wraps(func)
    def run(cls, **kwargs):
        check_inputs(cls, kwargs, linked_unknown=False)
        return func(cls, **kwargs)

    run._vlogger_checked = True
    return classmethod(run)


class VloggerNode(io.ComfyNode):
    """Base of every VLOGGER node: the shared input checks at queue time and at run time.
    A node with checks of its own overrides validate_inputs and calls super() first."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("execute")
        if own is not None and _checked(own) is not own:   # (ComfyUI's locked clones: already)
            cls.execute = _checked(own)

    @classmethod
    def validate_inputs(cls, **kwargs):
        check_inputs(cls, kwargs)     # raises: ComfyUI answers HTTP 400 with the message
        return True


# ----------------------------------------------------------------------------- memory checks
STREAMING_FIX = ("use VLOGGER Talking Video (streaming MP4) instead (the talking_video_long workflow; "
                 "flat memory at any length)")


def batch_problem(frames: int, height: int, width: int, channels: int = 3, dev="cpu",
                  what: str = "one IMAGE batch") -> str | None:
    """What is wrong with a batch of `frames` frames of height x width x `channels` float32 values
    (an IMAGE batch: 3; several buffers a node holds at once: their channels summed) for the
    memory that is free (vlogger_core.memory.BATCH_SHARE of it), or None when it fits."""
    from vlogger_core.memory import batch_fits, fitting_frames, image_batch_bytes

    need = image_batch_bytes(frames, height, width, channels)
    ok, free = batch_fits(need, dev)
    if ok:
        return None
    return (f"{frames:,} frames at {width}x{height} as {what} would need about {need / 1e9:.1f} GB "
            f"({free:.1f} GB is free; at most {fitting_frames(frames, need, free):,} frames fit)")


def check_image_batch(node_id: str, input_name: str, frames: int, height: int, width: int,
                      fix: str = STREAMING_FIX, channels: int = 3, dev="cpu",
                      what: str = "one IMAGE batch") -> None:
    """Refuse, before allocating, an IMAGE batch (or the buffers of `channels` float32 values per
    pixel a node holds at once) that would not fit in free memory, naming the input that makes
    it that large."""
    problem = batch_problem(frames, height, width, channels, dev, what)
    if problem:
        raise input_error(node_id, input_name, problem, fix)


def frames_input(max_frames: int, source: str = "motion") -> str:
    """The input that sets a ranged batch's length: 'max_frames' when it is set, else the source."""
    return "max_frames" if max_frames else source


def ranged_count(frames: int, inputs: dict) -> int | None:
    """Frames a node with literal 'start_frame' / 'max_frames' inputs (0 = to the end) makes of
    `frames` frames; None when either is a link."""
    start, most = inputs.get("start_frame", 0), inputs.get("max_frames", 0)
    if not isinstance(start, int) or not isinstance(most, int):
        return None
    n = max(0, frames - start)
    return min(n, most) if most else n


def sized_shape(inputs: dict, frames: int, channels=3) -> tuple[int, int, int, int] | None:
    """batch_shape of a node with literal 'width' / 'height' / 'start_frame' / 'max_frames'
    inputs: (frames, height, width, channels); `channels` may be a function of (width, height).
    None when any of them is a link."""
    w, h, n = inputs.get("width"), inputs.get("height"), ranged_count(frames, inputs)
    if not isinstance(w, int) or not isinstance(h, int) or n is None:
        return None
    return n, h, w, (channels(w, h) if callable(channels) else channels)


DOWNSTREAM_FIX = STREAMING_FIX + ", or render a part (start_frame / max_frames)"


def _consumers(prompt: dict, node: str) -> list[str]:
    return [k for k, v in prompt.items() for x in (v.get("inputs") or {}).values()
            if isinstance(x, list) and len(x) == 2 and str(x[0]) == str(node)]


def check_downstream_batches(node_id: str, input_name: str, prompt: dict | None, unique_id,
                             seconds: float, fps: float | None = None) -> None:
    """Refuse at once speech or motion of `seconds` that a node further down this prompt (one
    whose class has batch_shape(inputs, frames[, size])) would hold as one batch too large for
    the free memory: before any of the long work upstream of it is done. The frame rate comes
    from the first literal 'fps' input on the way (25 when there is none). A batch node's
    (frames, height, width) is what the nodes it feeds directly get: their batch_shape is called
    with those frames and size=(height, width) (e.g. an upscaler of rendered frames); past any
    other node (one that may cut or resize the batch) the size is unknown again. The fix named is
    the batch node's BATCH_FIX (what to do instead with that node), else DOWNSTREAM_FIX."""
    import nodes as comfy_nodes

    if not prompt or unique_id is None:
        return
    seen, todo = set(), [(str(unique_id), fps, None)]
    while todo:
        node, rate, above = todo.pop()
        for k in _consumers(prompt, node):
            if k in seen:
                continue
            seen.add(k)
            inputs = prompt[k].get("inputs") or {}
            r = inputs.get("fps")
            here = float(r) if isinstance(r, (int, float)) and not isinstance(r, bool) and r > 0 else rate
            cls = comfy_nodes.NODE_CLASS_MAPPINGS.get(prompt[k].get("class_type"))
            shape = getattr(cls, "batch_shape", None)
            got = None
            if shape is not None:
                got = (shape(inputs, above[0], above[1:3]) if above else
                       shape(inputs, int(round(seconds * (here or 25.0)))))
                many = got and len(got) > 3 and got[3] != 3        # several buffers, not one IMAGE
                problem = got and batch_problem(*got, what="its batches" if many else "one IMAGE batch")
                if problem:
                    lasts = f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"
                    raise input_error(node_id, input_name, f"it lasts {lasts}; for "
                                      f"{prompt[k]['class_type']} (node {k}), {problem}",
                                      getattr(cls, "BATCH_FIX", None) or DOWNSTREAM_FIX)
            todo.append((k, here, tuple(got[:3]) if got else None))   # past other nodes: unknown
