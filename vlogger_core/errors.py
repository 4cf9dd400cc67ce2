"""Errors the core raises for inputs it cannot use. Each says what is wrong, which argument of
the core call is at fault (`arg`) and how to fix it (`fix`), so a node can name its own input
(nodes/common.py: node_error) without reading the message."""
from __future__ import annotations


class VloggerError(ValueError):
    """A bad argument of a core call. `arg` names the core function's argument (or a field of its
    settings), `fix` says what to do; both may be None when no single argument is to blame."""

    def __init__(self, message: str, arg: str | None = None, fix: str | None = None):
        super().__init__(message)
        self.message, self.arg, self.fix = message, arg, fix
