"""Video-model training (two stages) and LoRA personalization on a prepared dataset, with a TINY
model (32x32, N=4, random base): these check the machinery and that the loss goes down, never
output quality."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from make_tiny_video_model import tiny_pixel_spec
from vlogger_core.body_model import load_body
from vlogger_core.dataset_prep import PrepSettings, prepare_dataset
from vlogger_core.personalization import LoraError, apply_lora, save_lora, set_strength, train_lora
from vlogger_core.video_diffusion import build_video_model
from vlogger_core.video_training import (TrainingError, VideoTrainConfig, make_batch, stage_parameters,
                                         train, window_start)
from vlogger_core.video_weights import load_model, save_model

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds32")
    prepare_dataset([REPO / "examples" / "talking_astronaut.mp4"], out, load_body(),
                    PrepSettings(clip_frames=48, frame_size=32), log=lambda *a: None)
    return str(out)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    torch.manual_seed(0)
    return save_model(build_video_model(tiny_pixel_spec()), tmp_path_factory.mktemp("m") / "tiny", tiny_random=True)


def _losses(folder):
    return [json.loads(l)["loss"] for l in (Path(folder) / "loss_log.jsonl").read_text().splitlines()]


def test_two_stages_train_the_right_parts_and_reduce_the_loss(dataset, fresh, tmp_path):
    base = load_model(fresh)
    before = {n: p.clone() for n, p in base.named_parameters()}
    s1 = train(VideoTrainConfig(data=dataset, out=str(tmp_path / "s1"), stage=1, steps=60, batch_size=8, lr=1e-3,
                                warmup=5, log_every=10, init=str(fresh)), log=lambda *a: None)
    l1 = _losses(tmp_path / "s1")
    m1 = load_model(s1)
    changed = {n for n, p in m1.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith(("control.", "context")) for n in changed), sorted(changed)[:5]
    assert not any(".temporal." in n or n.startswith("temporal.") for n in changed)
    s2 = train(VideoTrainConfig(data=dataset, out=str(tmp_path / "s2"), stage=2, steps=20, batch_size=2, lr=1e-3,
                                warmup=2, log_every=5, init=str(s1)), log=lambda *a: None)
    m2 = load_model(s2)
    changed2 = {n for n, p in m2.named_parameters() if not torch.equal(p, dict(m1.named_parameters())[n])}
    assert any(".temporal." in n or n.startswith("temporal.") for n in changed2)
    assert not any(n.startswith(("base.", "vae.")) and ".temporal." not in n for n in changed2)   # base frozen
    print(f"stage 1 loss {l1[0]:.4f} -> {l1[-1]:.4f}; stage 2 {_losses(tmp_path / 's2')}")
    assert l1[-1] < 0.85 * l1[0], l1                 # measured: 1.150 -> 0.922 (60 steps); 1.128 -> 0.597 (200)
    assert (tmp_path / "s1" / "loss_plot.png").exists()


def test_resume_continues_from_the_checkpoint(dataset, fresh, tmp_path):
    cfg = dict(data=dataset, out=str(tmp_path / "r"), stage=1, batch_size=4, lr=1e-3, warmup=2, log_every=5,
               ckpt_every=5, init=str(fresh))
    train(VideoTrainConfig(steps=10, **cfg), log=lambda *a: None)
    logs = []
    train(VideoTrainConfig(steps=15, **cfg), log=logs.append)
    assert any("resuming stage 1 at step 10" in m for m in logs)
    assert [json.loads(l)["step"] for l in (tmp_path / "r" / "loss_log.jsonl").read_text().splitlines()] == [5, 10, 15]


def test_batches_and_refusals(dataset, fresh):
    model = load_model(fresh)
    frames, cond, n = make_batch(__import__("vlogger_core.video_training", fromlist=["load_clips"]).load_clips(dataset, model.spec),
                                 model, 2, 2, torch.Generator().manual_seed(0))
    assert n == 4 and frames.shape == (8, 3, 32, 32) and cond.shape[1] == model.spec.cond_channels
    assert window_start(48, 4, 47, torch.Generator().manual_seed(0)) < 22      # far from a late reference
    with pytest.raises(TrainingError, match="batch_size 4096"):
        train(VideoTrainConfig(data=dataset, out="/tmp/never", stage=1, steps=1, batch_size=4096,
                               init=str(fresh), max_memory_gb=1.0), log=lambda *a: None)


def test_lora_strength_and_mismatch(dataset, tmp_path):
    from make_tiny_video_model import randomize_trained_parts
    torch.manual_seed(1)
    m = build_video_model(tiny_pixel_spec())
    randomize_trained_parts(m, std=0.05)
    folder = save_model(m, tmp_path / "trained", tiny_random=True)
    model = load_model(folder)
    losses = train_lora(model, dataset, steps=30, lr=2e-3, rank=4, log=lambda *a: None)
    assert len(losses) == 30
    save_lora(model, tmp_path / "lora")
    x, c = torch.randn(4, 3, 32, 32), torch.rand(4, model.spec.cond_channels, 32, 32)
    base = load_model(folder)
    with torch.no_grad():
        y0 = base(x, 500, c, 4)
        lo = apply_lora(load_model(folder), tmp_path / "lora", 0.0)
        assert torch.equal(lo(x, 500, c, 4), y0)                     # strength 0 == no LoRA
        set_strength(lo, 1.0)
        assert (lo(x, 500, c, 4) - y0).abs().max() > 1e-4            # the LoRA was trained
    other = save_model(build_video_model(tiny_pixel_spec(num_frames=2)), tmp_path / "other", tiny_random=True)
    with pytest.raises(LoraError, match="num_frames 4 .LoRA. vs 2"):
        apply_lora(load_model(other), tmp_path / "lora")


def test_cli_from_a_shipped_spec(dataset, tmp_path, capsys):
    from vlogger_core.video_training import main
    main(["--data", dataset, "--out", str(tmp_path / "cli"), "--stage", "1", "--config", "tiny_video",
          "--steps", "3", "--batch-size", "2", "--log-every", "1"])
    assert (tmp_path / "cli" / "model" / "config.json").exists()
    assert len(_losses(tmp_path / "cli")) == 3
