"""Whole-or-nothing writes: a file or folder is written under a partial name beside its target
and moved into place only when complete, so an error or a cancel never leaves half a file."""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def partial_path(final: str | os.PathLike) -> Path:
    """Where `final` is written until it is complete (same folder, so the rename is atomic; the
    suffix is kept so tools that look at it, e.g. PyAV choosing a container, still work)."""
    p = Path(final)
    return p.with_name(f".{p.stem}.partial{p.suffix}")


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink()


def commit_partial(tmp: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Move a completed partial file or folder onto `final` (replacing what was there)."""
    tmp, final = Path(tmp), Path(final)
    if final.is_dir() and not final.is_symlink():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


@contextmanager
def atomic_write(final: str | os.PathLike) -> Iterator[Path]:
    """with atomic_write(path) as tmp: write to tmp (a file, or a folder you create); on success
    tmp replaces `path`, on any exception (or interrupt) tmp is removed and `path` is untouched."""
    tmp = partial_path(final)
    _remove(tmp)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    commit_partial(tmp, final)
