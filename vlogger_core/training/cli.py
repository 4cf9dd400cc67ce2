"""The trainers' command lines: one flag per field of their config dataclass, and one way of
reporting a bad setting (its flag, message and fix, not a traceback)."""
from __future__ import annotations

import argparse
import os
from dataclasses import fields
from pathlib import Path
from typing import Callable

from .trainer import HELP


def parser(config: type, help: dict, prog: str, doc: str) -> argparse.ArgumentParser:
    """One flag per field of the `config` dataclass (--batch-size for batch_size), with its help."""
    ap = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in fields(config):
        flag, text = f"--{f.name.replace('_', '-')}", {**HELP, **help}[f.name]
        if f.name in ("data", "out"):
            ap.add_argument(flag, required=True, help=text)
        elif isinstance(f.default, bool):
            ap.add_argument(flag, dest=f.name, action="store_true", help=text)
        elif f.name == "mixed_precision":
            ap.add_argument(flag, dest=f.name, nargs="?", const="bf16", default="no", choices=["no", "fp16", "bf16"],
                            help=text + " (the flag alone = bf16)")
        else:
            ap.add_argument(flag, dest=f.name, type=type(f.default), default=f.default,
                            help=f"{text} (default {f.default!r})")
    return ap


def config_from(config: type, args: argparse.Namespace):
    """The `config` dataclass from parsed arguments (other arguments ignored)."""
    return config(**{f.name: getattr(args, f.name) for f in fields(config)})


def run_cli(ap: argparse.ArgumentParser, argv, train: Callable[[argparse.Namespace], Path]) -> None:
    """Parse, train, print the result's path (once with several processes); a bad setting exits
    with its message and fix, naming the flag, not a traceback."""
    args = ap.parse_args(argv)
    try:
        final = train(args)
    except ValueError as e:
        arg, fix = getattr(e, "arg", None), getattr(e, "fix", None)
        ap.exit(2, "error: " + (f"--{arg.replace('_', '-')}: " if arg else "") + str(e)
                + (f". Fix: {fix}" if fix else "") + "\n")
    if int(os.environ.get("RANK", "0")) == 0:
        print(final)
