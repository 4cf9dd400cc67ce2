"""Video-model training (two stages) and LoRA personalization on a vlogger-dataset-v1 folder, with
a TINY model (32x32, N=4, random base): these check the machinery and that the loss goes down,
never output quality. The dataset is rendered by the project's own renderer (frames) and control
maps (astronaut.png, the example's known motion), written with dataset_format.write_clip."""
from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from make_tiny_video_model import randomize_trained_parts, tiny_pixel_spec
from trainer_checks import check_checkpoint, no_partials

from vlogger_core.diffusion.lora import (
    LoraError,
    apply_lora,
    has_lora,
    lora_state,
    read_lora,
    save_lora,
    set_strength,
)
from vlogger_core.diffusion.model import build_video_model
from vlogger_core.diffusion.weights import load_model, save_model
from vlogger_core.training.lora import LoraTrainConfig, train_lora
from vlogger_core.training.lora import main as lora_main
from vlogger_core.training.trainer import TrainingError
from vlogger_core.training.video import (
    VideoTrainConfig,
    drop_condition,
    estimate_memory_gb,
    load_clips,
    main,
    make_batch,
    stage_parameters,
    train,
    window_start,
)

REPO = Path(__file__).resolve().parent.parent
QUIET = dict(log=lambda *a: None)


def write_tiny_dataset(root: Path, size: int = 32, clip_frames: int = 24, clips: int = 2) -> Path:
    """Frames from TalkingVideoRenderer + controls from render_motion, in the dataset layout
    (reference frame first in one clip, last in the other)."""
    from PIL import Image

    from vlogger_core.body.model import load_body
    from vlogger_core.body.reference import fit_reference
    from vlogger_core.motion.params import Motion
    from vlogger_core.render.controls import render_motion
    from vlogger_core.render.talking_video import TalkingVideoRenderer
    from vlogger_core.training.dataset_format import write_clip, write_dataset_json

    body = load_body()
    photo = torch.from_numpy(np.array(Image.open(REPO / "examples" / "astronaut.png").convert("RGB"))).float() / 255
    fit = fit_reference(photo, body, "auto")
    motion = Motion.load_npz(str(REPO / "examples" / "talking_astronaut_motion.npz"))
    renderer = TalkingVideoRenderer(body, fit, size, size)
    names = []
    for k in range(clips):
        a, b = k * clip_frames, (k + 1) * clip_frames
        frames = renderer.render(motion, a, b)
        controls = render_motion(body, fit, motion, size, size, a, b)
        names.append(f"clip_{k:04d}")
        write_clip(root, names[-1], frames=frames, wave=None, motion=motion.slice(a, b),
                   fit={"betas": fit.betas.numpy()},
                   controls=controls, reference_index=0 if k == 0 else clip_frames - 1)
    write_dataset_json(root, SimpleNamespace(fps=24.0, frame_size=size), body, ["astronaut.png (rendered)"],
                       {"clips": [{"name": n} for n in names], "kept": clips, "dropped": []})
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return str(write_tiny_dataset(tmp_path_factory.mktemp("ds32")))


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    torch.manual_seed(0)
    return save_model(build_video_model(tiny_pixel_spec()), tmp_path_factory.mktemp("m") / "tiny", tiny_random=True)


@pytest.fixture(scope="module")
def stage1(dataset, fresh, tmp_path_factory):
    out = tmp_path_factory.mktemp("s1")
    train(VideoTrainConfig(data=dataset, out=str(out), stage=1, steps=60, batch_size=8, lr=3e-3, warmup=5,
                           log_every=20, ckpt_every=100, init=str(fresh)), **QUIET)
    return out


def _rows(folder):
    return [json.loads(l) for l in (Path(folder) / "loss_log.jsonl").read_text().splitlines()]


def _changed(a, b) -> set[str]:
    pb = dict(b.named_parameters())
    return {n for n, p in a.named_parameters() if not torch.equal(p, pb[n])}


def _temporal(n: str) -> bool:
    return ".temporal." in n or n.startswith("temporal.")


def test_stage1_trains_only_the_control_branch_and_reduces_the_loss(stage1, fresh):
    rows = _rows(stage1)
    changed = _changed(load_model(stage1 / "model"), load_model(fresh))
    assert changed and all(n.startswith(("control.", "context")) for n in changed), sorted(changed)[:5]
    assert not any(_temporal(n) for n in changed)
    print(f"\nstage 1 (60 steps, batch 8): mean loss of steps 1-20 {rows[0]['loss']:.4f} -> 41-60 "
          f"{rows[-1]['loss']:.4f}; {rows[-1]['s_per_step']} s/step")
    assert rows[-1]["loss"] < 0.85 * rows[0]["loss"], [r["loss"] for r in rows]
    assert (stage1 / "loss_plot.png").stat().st_size > 5000


def test_stage2_trains_temporal_layers_and_keeps_the_base_bit_exact(stage1, dataset, tmp_path):
    train(VideoTrainConfig(data=dataset, out=str(tmp_path / "s2"), stage=2, steps=6, batch_size=2, lr=1e-3,
                           warmup=1, log_every=3, init=str(stage1 / "model")), **QUIET)
    m1, m2 = load_model(stage1 / "model"), load_model(tmp_path / "s2" / "model")
    changed = _changed(m2, m1)
    assert any(_temporal(n) for n in changed) and any(n.startswith("control.") and not _temporal(n) for n in changed)
    assert not [n for n in changed if n.startswith(("base.", "vae.")) and not _temporal(n)]
    base1, base2 = m1.base.state_dict(), m2.base.state_dict()
    assert all(torch.equal(base1[k], base2[k]) for k in base1 if ".temporal." not in k)
    assert len(_rows(tmp_path / "s2")) == 2


def test_resume_continues_the_same_loss_trajectory(dataset, fresh, tmp_path):
    cfg = dict(data=dataset, stage=1, steps=8, batch_size=2, lr=1e-3, warmup=2, log_every=1, ckpt_every=4,
               init=str(fresh))
    train(VideoTrainConfig(out=str(tmp_path / "whole"), **cfg), **QUIET)
    done = []

    def crash_after_6():
        if len(done) == 6:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):   # a crash two steps after the checkpoint at step 4
        train(VideoTrainConfig(out=str(tmp_path / "cut"), **cfg), progress=lambda d, t: done.append(d),
              interrupt=crash_after_6, **QUIET)
    with pytest.raises(TrainingError, match="already holds a run") as e:
        train(VideoTrainConfig(out=str(tmp_path / "cut"), **cfg), **QUIET)
    assert e.value.arg == "resume" and "pass --resume" in e.value.fix
    check_checkpoint(tmp_path / "cut" / "last", step=4)
    assert load_model(tmp_path / "cut" / "last" / "model").spec == load_model(fresh).spec   # loads in the loader
    logs = []
    train(VideoTrainConfig(out=str(tmp_path / "cut"), resume=True, **cfg), log=logs.append)
    assert any("resuming at step 4" in m for m in logs)
    whole, cut = _rows(tmp_path / "whole"), _rows(tmp_path / "cut")
    assert [r["step"] for r in cut] == list(range(1, 9))
    np.testing.assert_allclose([r["loss"] for r in cut], [r["loss"] for r in whole], rtol=1e-5)
    a, b = load_model(tmp_path / "whole" / "model"), load_model(tmp_path / "cut" / "model")
    assert all(torch.allclose(p, dict(b.named_parameters())[n], atol=1e-6) for n, p in a.named_parameters())
    with pytest.raises(TrainingError, match="stage-1 run"):
        train(VideoTrainConfig(out=str(tmp_path / "cut"), resume=True, **{**cfg, "stage": 2}), **QUIET)


class Stop(Exception):
    pass


def _stop_after(steps: int):
    """progress and interrupt callbacks: the interrupt raises Stop once `steps` steps are done."""
    done = []

    def interrupt():
        if len(done) == steps:
            raise Stop
    return (lambda d, t: done.append(d)), interrupt


def test_an_interrupt_stops_video_and_lora_training_leaving_no_partial_output(dataset, fresh, tmp_path):
    progress, interrupt = _stop_after(3)
    with pytest.raises(Stop):
        train(VideoTrainConfig(data=dataset, out=str(tmp_path / "video"), steps=10, batch_size=2, log_every=1,
                               ckpt_every=2, init=str(fresh)), progress=progress, interrupt=interrupt, **QUIET)
    no_partials(tmp_path)
    assert not (tmp_path / "video" / "model").exists()                  # no result
    assert [r["step"] for r in _rows(tmp_path / "video")] == [1, 2, 3]   # whole rows only
    check_checkpoint(tmp_path / "video" / "last", step=2)               # the complete checkpoint stays
    model = load_model(fresh)
    x, c = torch.randn(4, 3, 32, 32), torch.rand(4, model.spec.cond_channels, 32, 32)
    with torch.no_grad():
        y0 = model(x, 500, c, 4)
    progress, interrupt = _stop_after(2)
    with pytest.raises(Stop):
        train_lora(model, LoraTrainConfig(data=dataset, out=str(tmp_path / "lora"), steps=10, rank=2),
                   progress=progress, interrupt=interrupt, **QUIET)
    no_partials(tmp_path)
    assert not (tmp_path / "lora" / "lora").exists() and not (tmp_path / "lora" / "last").exists()
    assert not has_lora(model) and not any(".lora_" in n for n, _ in model.named_parameters())
    with torch.no_grad():
        assert torch.equal(model.eval()(x, 500, c, 4), y0)             # the model is left as it came


def test_condition_dropout_gives_the_samplers_null():
    gen = torch.Generator().manual_seed(0)
    cond = torch.rand(200 * 4, 6, 8, 8) + 0.1
    assert torch.equal(drop_condition(cond, 4, 1.0, gen), torch.zeros_like(cond))   # video_sampling's null
    assert torch.equal(drop_condition(cond, 4, 0.0, gen), cond)
    out = drop_condition(cond, 4, 0.5, gen).view(200, 4, -1)
    zero = (out == 0).all(-1)
    assert torch.equal(zero.all(1), zero.any(1))            # a clip's N frames are dropped together
    kept = ~zero.any(1)
    assert torch.equal(out[kept], cond.view(200, 4, -1)[kept])
    assert 70 < int(zero.all(1).sum()) < 130


def test_batches_windows_and_memory_refusal(dataset, fresh):
    model = load_model(fresh)
    clips = load_clips(dataset, model.spec)
    frames, cond, n = make_batch(clips, model, 2, 2, torch.Generator().manual_seed(0))
    assert n == 4 and frames.shape == (8, 3, 32, 32) and cond.shape == (8, model.spec.cond_channels, 32, 32)
    assert cond[:, 3:18].sum(1).max() <= 1                    # semantic one-hot (background = none)
    gen = torch.Generator().manual_seed(0)
    assert max(window_start(24, 4, 23, gen) for _ in range(50)) <= 10    # far from a last-frame reference
    assert min(window_start(24, 4, 0, gen) for _ in range(50)) >= 10     # ... and from a first-frame one
    with pytest.raises(TrainingError, match=r"batch_size 4096 \(stage 1: 1 frame\(s\) of 32x32 per sample\) "
                                            r"needs about") as e:
        train(VideoTrainConfig(data=dataset, out="/tmp/never", stage=1, steps=1, batch_size=4096,
                               init=str(fresh), max_memory_gb=1.0), **QUIET)
    assert e.value.arg == "batch_size" and re.fullmatch(r"lower batch_size to \d+ or less", e.value.fix), e.value.fix
    assert not Path("/tmp/never").exists()
    fixed, per = estimate_memory_gb(model, stage_parameters(model, 2), 2)
    print(f"\ntiny model, stage 2: {fixed * 1e3:.0f} MB fixed + {per * 1e3:.1f} MB per clip of 4 frames")
    assert per > 0
    with pytest.raises(TrainingError, match="32x32 but the model takes 64x64") as e:
        load_clips(dataset, tiny_pixel_spec(size=64))
    assert e.value.arg == "data" and e.value.fix == "prepare it with frame_size 64"


def test_lora_strength_targets_and_mismatch(dataset, tmp_path):
    torch.manual_seed(1)
    m = build_video_model(tiny_pixel_spec())
    randomize_trained_parts(m, std=0.05)
    folder = save_model(m, tmp_path / "trained", tiny_random=True)
    model = load_model(folder)
    model.source_folder = "trained"
    before = {n: p.clone() for n, p in model.named_parameters()}
    run = train_lora(model, LoraTrainConfig(data=dataset, out=str(tmp_path / "run"), steps=15, lr=2e-3, rank=4),
                     **QUIET)
    losses = [r["loss"] for r in _rows(tmp_path / "run")]
    assert len(losses) == 15 and all(np.isfinite(losses))
    assert run == tmp_path / "run" / "lora" and read_lora(run)[0]["last_loss"] == losses[-1]
    check_checkpoint(tmp_path / "run" / "last", step=15)
    moved = {n for n, p in model.named_parameters() if n in before and not torch.equal(p, before[n])}
    assert not moved                                            # only the (new) LoRA weights train
    names = list(lora_state(model))
    assert any(".temporal.proj.lora_B" in n for n in names) and any("controlnet_down_blocks" in n for n in names)
    assert any(n.startswith("base.") for n in names)            # the base's temporal convs
    assert not any(n.startswith("base.") and "to_q" in n for n in names)   # not its attention by default
    save_lora(model, tmp_path / "lora", {"steps": 15})
    info, _ = read_lora(tmp_path / "lora")
    assert info["model_folder"] == "trained" and info["rank"] == 4 and info["targets"]
    x, c = torch.randn(4, 3, 32, 32), torch.rand(4, model.spec.cond_channels, 32, 32)
    with torch.no_grad():
        y0 = load_model(folder)(x, 500, c, 4)
        lo = apply_lora(load_model(folder), tmp_path / "lora", 0.0)
        assert torch.equal(lo(x, 500, c, 4), y0)                     # strength 0 == no LoRA, exactly
        set_strength(lo, 1.0)
        y1 = lo(x, 500, c, 4)
        set_strength(lo, 0.5)
        yh = lo(x, 500, c, 4)
    assert (y1 - y0).abs().max() > 1e-5
    ratio = float((yh - y0).norm() / (y1 - y0).norm())     # the network is not linear in it: about half
    assert 0.3 < ratio < 0.7, ratio
    with pytest.raises(LoraError, match="already has") as e:
        apply_lora(lo, tmp_path / "lora")
    assert e.value.arg == "model"
    other = save_model(build_video_model(tiny_pixel_spec(num_frames=2)), tmp_path / "other", tiny_random=True)
    with pytest.raises(LoraError, match=r"another model \(trained\): num_frames 4 \(LoRA\) vs 2 \(model\)"):
        apply_lora(load_model(other), tmp_path / "lora")
    warned = []                                # same architecture, other weights: applied, with a warning
    apply_lora(load_model(save_model(build_video_model(tiny_pixel_spec()), tmp_path / "o2")), tmp_path / "lora",
               log=warned.append)
    assert warned and "other weights" in warned[0]
    lora_json = tmp_path / "lora" / "lora.json"   # a LoRA whose layers do not match
    lora_json.write_text(lora_json.read_text().replace('"include_base": false', '"include_base": true'))
    with pytest.raises(LoraError, match="layers the model has but the LoRA lacks"):
        apply_lora(load_model(folder), tmp_path / "lora")


def test_clis(dataset, fresh, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "--cond-dropout" in text and "--resume" in text and "--mixed-precision" in text
    main(["--data", dataset, "--out", str(tmp_path / "cli"), "--stage", "1", "--config", "tiny_video",
          "--steps", "3", "--batch-size", "2", "--log-every", "1"])
    assert load_model(tmp_path / "cli" / "model").spec.image_size == 32
    assert len(_rows(tmp_path / "cli")) == 3
    with pytest.raises(SystemExit):       # a clear message, not a traceback
        main(["--data", dataset, "--out", str(tmp_path / "cli"), "--config", "tiny_video", "--steps", "4"])
    assert "pass --resume" in capsys.readouterr().err
    lora_main(["--model", str(fresh), "--data", dataset, "--out", str(tmp_path / "lora"), "--steps", "2",
               "--rank", "2"])
    assert read_lora(tmp_path / "lora" / "lora")[0]["model_folder"] == fresh.name
    assert str(tmp_path / "lora" / "lora") in capsys.readouterr().out
    with pytest.raises(SystemExit):       # a typed error names the flag and the fix
        lora_main(["--model", str(fresh), "--data", dataset, "--out", str(tmp_path / "lora2"), "--batch-size", "0"])
    assert "error: --batch-size: batch_size must be >= 1" in capsys.readouterr().err


def _cli(args: list[str], procs: int = 1, module: str = "vlogger_core.training.video") -> None:
    """A trainer's CLI in its own python (one process, or `procs` CPU processes under
    torchrun: the gloo backend, as several GPUs would use NCCL)."""
    import subprocess
    import sys

    launch = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs)] if procs > 1 else []
    r = subprocess.run([sys.executable, *launch, "-m", module, *args], cwd=REPO,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]


def test_several_processes_and_mixed_precision(dataset, fresh, tmp_path):
    """Two processes draw different batches and average their gradients: the logged loss is the
    mean over both and the weights differ from a one-process run; bf16 autocast trains too."""
    common = ["--data", dataset, "--init", str(fresh), "--stage", "1", "--steps", "3", "--batch-size", "2",
              "--log-every", "1", "--lr", "1e-3", "--warmup", "0", "--cpu"]
    _cli([*common, "--out", str(tmp_path / "one")])
    _cli([*common, "--out", str(tmp_path / "two")], procs=2)
    one, two = _rows(tmp_path / "one"), _rows(tmp_path / "two")
    assert len(one) == len(two) == 3
    assert all(abs(a["loss"] - b["loss"]) > 1e-6 for a, b in zip(one, two)), (one, two)
    m1, m2 = load_model(tmp_path / "one" / "model"), load_model(tmp_path / "two" / "model")
    changed = _changed(m1, m2)
    assert changed and all(n.startswith(("control.", "context")) for n in changed), sorted(changed)[:5]
    _cli([*common, "--out", str(tmp_path / "bf16"), "--mixed-precision", "bf16", "--stage", "2"])
    rows = _rows(tmp_path / "bf16")
    assert len(rows) == 3 and all(np.isfinite(r["loss"]) for r in rows)


def test_lora_training_on_accelerate_in_bf16_with_two_processes(dataset, fresh, tmp_path):
    """LoRA training runs on the trainer core too: two CPU processes under torchrun, bf16 autocast;
    the logged loss is the mean over both, and the LoRA it writes loads onto the model."""
    _cli(["--model", str(fresh), "--data", dataset, "--out", str(tmp_path / "two"), "--steps", "3", "--rank", "2",
          "--mixed-precision", "bf16", "--cpu"], procs=2, module="vlogger_core.training.lora")
    rows = _rows(tmp_path / "two")
    assert [r["step"] for r in rows] == [1, 2, 3] and all(np.isfinite(r["loss"]) for r in rows), rows
    info = read_lora(tmp_path / "two" / "lora")[0]
    assert info["steps"] == 3 and info["last_loss"] == rows[-1]["loss"]
    model = apply_lora(load_model(fresh), tmp_path / "two" / "lora")
    assert any(float(v.abs().max()) > 0 for k, v in lora_state(model).items() if ".lora_B." in k)   # it trained
