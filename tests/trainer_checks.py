"""Checks the training tests share: the trainer core's checkpoint layout, no partial output."""
from __future__ import annotations

import json
from pathlib import Path

from safetensors import safe_open

from vlogger_core.training.trainer import FORMAT, STATE


def check_checkpoint(folder: Path, step: int) -> None:
    """OUT/last/trainer.safetensors in the one layout: model., optimizer. and rng. tensors, the step."""
    with safe_open(str(Path(folder) / STATE), "pt") as f:
        keys, meta = list(f.keys()), f.metadata()
    assert meta["format"] == FORMAT and int(meta["step"]) == step, meta
    assert {k.split(".")[0] for k in keys} == {"model", "optimizer", "rng"}, sorted(keys)[:5]
    assert any(k.endswith(".exp_avg") for k in keys) and {"rng.batches", "rng.torch"} <= set(keys)
    assert json.loads(meta["scheduler"])["last_epoch"] == step


def no_partials(root: Path) -> None:
    left = [p for p in Path(root).rglob("*") if ".partial" in p.name]
    assert not left, left
