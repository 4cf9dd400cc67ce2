"""The training loop every trainer (motion, video, LoRA) runs; a trainer supplies only a Job (its
model, the trained parameters, a batch, a loss, how its result is saved).

On accelerate: several processes or GPUs (each draws its own batches, gradients are averaged,
logged losses are the mean over processes) and mixed precision; CPU here. Before the first step
the peak memory is estimated and settings that do not fit are refused, naming batch_size. AdamW
with a warmup schedule (diffusers), gradients clipped to norm 1.

Run folder (OUT), every write whole-or-nothing (files.atomic_write):
    OUT/<result>                  the result, as the trainer saves it (loads in its loader)
    OUT/last/<result>             the latest checkpoint's model, same format
    OUT/last/trainer.safetensors  what a resume needs, one key layout for every trainer:
        model.<name>              trained parameters and the model's buffers
        optimizer.<i>.<key>       AdamW state of the i-th trained parameter
        rng.batches, rng.torch (rng.cuda)   the random streams, one row per process
        metadata                  format, step, optimizer param groups, scheduler state, the
                                  per-step losses since the last log row, processes, config, info
    OUT/loss_log.jsonl            one row per log_every steps: the mean of each loss term, lr, s/step
    OUT/loss_plot.png
A resumed run continues the same loss trajectory (same batches, noise, dropout and optimizer
state as the uninterrupted run); rows logged after its checkpoint are dropped.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ..callbacks import Interrupt, Progress, check, report
from ..errors import VloggerError
from ..files import atomic_write
from ..memory import available_gb

FORMAT = "vlogger-trainer-v1"
STATE = "trainer.safetensors"
LOG = "loss_log.jsonl"
PLOT = "loss_plot.png"


class TrainingError(VloggerError):
    """Settings or data training cannot use (the argument or config field at fault, and the fix)."""


@dataclass
class RunSettings:
    """What every trainer's config has; each trainer subclasses it with its own fields and defaults."""
    data: str = ""
    out: str = ""
    steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-4
    warmup: int = 50
    lr_schedule: str = "cosine"
    weight_decay: float = 0.01
    seed: int = 0
    log_every: int = 10
    ckpt_every: int = 200
    mixed_precision: str = "no"
    cpu: bool = False
    resume: bool = False
    time_limit_min: float = 0.0
    max_memory_gb: float = 0.0


HELP = {
    "data": "the training data folder",
    "out": "run folder: last/ (checkpoint), the result, loss_log.jsonl, loss_plot.png",
    "steps": "total optimizer steps (a resumed run counts from its checkpoint)",
    "batch_size": "samples per step (per process)",
    "lr": "AdamW learning rate (reached after warmup)",
    "warmup": "linear warmup steps",
    "lr_schedule": "after warmup: cosine (decay to 0 at --steps), linear, or constant_with_warmup",
    "weight_decay": "AdamW weight decay",
    "seed": "seed of batch sampling, noise and timesteps",
    "log_every": "steps per loss_log.jsonl row (the row holds the mean loss over them)",
    "ckpt_every": "steps between checkpoints in OUT/last (0: only at the end)",
    "mixed_precision": "no | fp16 | bf16 (accelerate); fp16 needs a GPU",
    "cpu": "force the CPU even when a GPU is present",
    "resume": "continue from OUT/last (starts fresh when there is none)",
    "time_limit_min": "stop (with a checkpoint and the result) after this many minutes; 0 = none",
    "max_memory_gb": "memory budget the settings are checked against; 0 = what the device has free",
}


@dataclass
class Job:
    """What one trainer supplies to `fit`."""
    model: torch.nn.Module                        # the plain model (accelerate wraps it for the loop)
    params: list                                  # its trained parameters
    batch: Callable[[torch.Generator], object]   # one batch of this process
    loss: Callable[[torch.nn.Module, object, torch.Generator], dict]   # (wrapped model, batch) -> {"loss", terms}
    save: Callable[[torch.nn.Module, Path, int, list], None]           # (model, path, step, log rows)
    result: str                                   # the result's name in OUT (and OUT/last)
    per_sample_gb: float                          # activations kept for backward per batch sample
    sample: str                                   # what one batch sample is (memory message)
    info: dict = field(default_factory=dict)      # in every log row and the checkpoint (e.g. stage)
    title: str = "training loss"


# ----------------------------------------------------------------------------- set-up
def accelerator(cfg: RunSettings):
    """The run's Accelerator; torch's global seed set, so every process builds the same model."""
    from accelerate import Accelerator

    torch.manual_seed(cfg.seed)
    return Accelerator(mixed_precision=cfg.mixed_precision, cpu=cfg.cpu)


def voice(acc, log):
    """`log` on the main process, silence on the others (one voice with several processes)."""
    return log if acc.is_main_process else (lambda *a: None)


def resume_point(cfg: RunSettings) -> dict | None:
    """The checkpoint a run continues ({"step", "info", ...} of OUT/last), None for a fresh run;
    a folder holding a run is refused unless cfg.resume."""
    path = Path(cfg.out) / "last" / STATE
    if not path.is_file():
        return None
    if not cfg.resume:
        raise TrainingError(f"{cfg.out} already holds a run (checkpoint {path.parent})", "resume",
                            "pass --resume (resume=True) to continue it, or choose another --out")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    return {"step": int(meta["step"]), "info": json.loads(meta.get("info", "{}")), "path": path}


# ----------------------------------------------------------------------------- memory
def activation_gb(forward: Callable[[int], object]) -> float:
    """GB autograd keeps for backward per batch sample. `forward(b)` builds the model on the meta
    device and runs it on b samples (no memory, no compute); measured at b = 1 and 2, the
    difference cancels the weights some ops save. Errs high (~1.6x the real peak growth on the
    tiny video model)."""
    def saved(b: int) -> int:
        seen: dict[int, int] = {}

        def pack(t):  # one count per storage: ops often save views of the same tensor
            st = t.untyped_storage()
            seen[st._cdata] = st.nbytes()
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            forward(b)
        return sum(seen.values())
    return (saved(2) - saved(1)) / 1e9


def estimate_gb(model, params, per_sample_gb: float, mixed_precision: str = "no") -> tuple[float, float]:
    """Rough peak as (fixed, per batch sample) GB: every weight, plus gradients and AdamW moments
    (fp32) of the trained ones; the activations per sample (mixed precision halves them)."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    trained = sum(p.numel() for p in params) * 4 * 3
    return (weights + trained) / 1e9, per_sample_gb * (0.5 if mixed_precision in ("fp16", "bf16") else 1.0)


def check_memory(job: Job, cfg: RunSettings, device: torch.device) -> float:
    """The estimated peak in GB, or a TrainingError naming batch_size and the size that fits."""
    fixed, per = estimate_gb(job.model, job.params, job.per_sample_gb, cfg.mixed_precision)
    need, have = fixed + cfg.batch_size * per, cfg.max_memory_gb or available_gb(device)
    if need > have:
        fit = int((have - fixed) // per) if per > 0 else 0
        raise TrainingError(
            f"batch_size {cfg.batch_size} ({job.sample} per sample) needs about {need:.1f} GB, {have:.1f} GB "
            f"is free on {device.type} (an estimate that errs high)", "batch_size",
            f"lower batch_size to {fit} or less" if fit >= 1 else
            "even batch size 1 does not fit: use a smaller model or a device with more memory")
    return need


# ----------------------------------------------------------------------------- checkpoints
def _model_state(job: Job) -> dict[str, torch.Tensor]:
    """The trained parameters and the model's buffers: what a resume restores into the model
    the trainer built as for a fresh run."""
    trained = {id(p) for p in job.params}
    keep = {n for n, p in job.model.named_parameters() if id(p) in trained} | {n for n, _ in job.model.named_buffers()}
    return {k: v for k, v in job.model.state_dict().items() if k in keep}


def _rng_states(acc, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Every process's random streams, one row per process (a collective: all processes call it)."""
    states = {"rng.batches": gen.get_state(), "rng.torch": torch.get_rng_state()}
    if acc.device.type == "cuda":
        states["rng.cuda"] = torch.cuda.get_rng_state(acc.device)
    return {k: acc.gather(v.to(acc.device)[None]).cpu() for k, v in states.items()}


def _save_checkpoint(acc, job: Job, opt, sched, gen, cfg, step: int, pending: list, rows: list) -> None:
    rng = _rng_states(acc, gen)
    if acc.is_main_process:
        sd = opt.state_dict()
        tensors = {f"model.{k}": v for k, v in _model_state(job).items()}
        tensors.update({f"optimizer.{i}.{k}": v if torch.is_tensor(v) else torch.tensor(float(v))
                        for i, st in sd["state"].items() for k, v in st.items()})
        meta = {"format": FORMAT, "step": str(step), "optimizer": json.dumps(sd["param_groups"]),
                "scheduler": json.dumps(sched.state_dict()), "pending": json.dumps(pending),
                "processes": str(acc.num_processes), "config": json.dumps(asdict(cfg)), "info": json.dumps(job.info)}
        with atomic_write(Path(cfg.out) / "last") as tmp:
            tmp.mkdir(parents=True)
            job.save(job.model, tmp / job.result, step, rows)
            save_file({k: v.detach().cpu().contiguous() for k, v in {**tensors, **rng}.items()},
                      str(tmp / STATE), metadata=meta)
        plot_losses(rows, Path(cfg.out) / PLOT, job.title)
    acc.wait_for_everyone()


def _restore(acc, job: Job, opt, sched, gen, cfg, path: Path, log) -> tuple[int, list]:
    """Model tensors, optimizer, scheduler and random streams from `path`: (step, pending losses)."""
    tensors = load_file(str(path))
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    model = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    missing = sorted(set(_model_state(job)) - set(model))
    unexpected = job.model.load_state_dict(model, strict=False).unexpected_keys
    if missing or unexpected:
        raise TrainingError(f"the checkpoint {path.parent} does not match this model ({len(missing)} tensors "
                            f"missing, {len(unexpected)} unexpected, e.g. {(missing + unexpected)[0]})", "resume",
                            "resume with the settings the run was started with, or choose another --out")
    state: dict = {}
    for key, v in tensors.items():
        if key.startswith("optimizer."):
            _, i, k = key.split(".", 2)
            state.setdefault(int(i), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": json.loads(meta["optimizer"])})
    sched.load_state_dict(json.loads(meta["scheduler"]))
    step, me = int(meta["step"]), acc.process_index
    if int(meta["processes"]) == acc.num_processes:
        gen.set_state(tensors["rng.batches"][me])
        torch.set_rng_state(tensors["rng.torch"][me])
        if "rng.cuda" in tensors and acc.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"][me], acc.device)
    else:  # another process count: new streams (the run continues, not the same trajectory)
        gen.manual_seed(cfg.seed * 1000 + me + 7919 * step)
        log(f"the checkpoint was written by {meta['processes']} processes, this run has "
            f"{acc.num_processes}: batches are drawn afresh")
    return step, json.loads(meta["pending"])


# ----------------------------------------------------------------------------- loss log
def read_log(out: str | Path) -> list[dict]:
    path = Path(out) / LOG
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def plot_losses(rows: list[dict], png: Path, title: str) -> None:
    """Every logged loss term over the steps (log scale)."""
    if not rows:
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    skip = {"step", "every", "lr", "s_per_step"}
    terms = [k for k, v in rows[0].items() if k not in skip and isinstance(v, float)]
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    for k in terms:
        ax.plot([r["step"] for r in rows], [r[k] for r in rows], label=k, marker="." if len(rows) < 40 else None)
    ax.set(xlabel="step", ylabel=f"mean per {rows[0]['every']} steps", yscale="log", title=title)
    ax.grid(alpha=0.3)
    if len(terms) > 1:
        ax.legend()
    fig.tight_layout()
    with atomic_write(png) as tmp:
        fig.savefig(tmp)
    plt.close(fig)


def export(src: Path, dest: Path) -> Path:
    """Copy a run's result (file or folder) to `dest`, whole or nothing (e.g. into the models folder)."""
    with atomic_write(dest) as tmp:
        (shutil.copytree if Path(src).is_dir() else shutil.copyfile)(src, tmp)
    return Path(dest)


def duration(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h"


# ----------------------------------------------------------------------------- the loop
def fit(acc, job: Job, cfg: RunSettings, log=print, progress: Progress = None,
        interrupt: Interrupt = None) -> list[dict]:
    """Train `job` for cfg.steps (or continue its checkpoint), writing the run folder; returns the
    log rows of the whole run. The model ends in eval mode with gradients off."""
    from diffusers.optimization import get_scheduler

    log = voice(acc, log)
    for name in ("steps", "batch_size", "log_every"):
        if getattr(cfg, name) < 1:
            raise TrainingError(f"{name} must be >= 1, got {getattr(cfg, name)}", name, f"set {name} to 1 or more")
    out, done = Path(cfg.out), resume_point(cfg)
    need = check_memory(job, cfg, acc.device)
    opt = torch.optim.AdamW(job.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    try:
        sched = get_scheduler(cfg.lr_schedule, opt, num_warmup_steps=cfg.warmup, num_training_steps=cfg.steps)
    except ValueError as e:
        raise TrainingError(f"lr_schedule {cfg.lr_schedule!r}: {e}", "lr_schedule",
                            "use cosine, linear or constant_with_warmup") from None
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + acc.process_index)
    start, pending = _restore(acc, job, opt, sched, gen, cfg, done["path"], log) if done else (0, [])
    net, opt = acc.prepare(job.model, opt)
    rows = [r for r in read_log(out) if r["step"] <= start] if done else []
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / LOG).write_text("".join(json.dumps(r) + "\n" for r in rows))
    log(f"{sum(p.numel() for p in job.params):,} trained parameters, estimated peak memory {need:.2f} GB, "
        + (f"resuming at step {start}" if done else "from step 0"))
    t0, step = time.time(), start
    while step < cfg.steps:
        check(interrupt)
        batch = job.batch(gen)
        with acc.autocast():
            terms = job.loss(net, batch, gen)
        opt.zero_grad()
        acc.backward(terms["loss"])
        acc.clip_grad_norm_(job.params, 1.0)
        opt.step()
        sched.step()
        step += 1
        over = bool(cfg.time_limit_min) and time.time() - t0 > cfg.time_limit_min * 60
        # the loss terms' mean over processes, and whether any process ran out of time, in one gather
        flag = torch.tensor(float(over), device=acc.device)
        mine = torch.stack([v.detach().float() for v in terms.values()] + [flag])
        means = acc.gather(mine[None]).mean(0).tolist()
        pending.append(dict(zip(terms, means)))
        over = means[-1] > 0
        if step == start + 1:
            first = time.time() - t0
            log(f"first step took {first:.2f} s, so {cfg.steps - start} steps should take about "
                f"{duration(first * (cfg.steps - start))}")
        report(progress, step, cfg.steps)
        if step % cfg.log_every == 0 or step == cfg.steps or over:
            row = {"step": step, **job.info, **{k: sum(p[k] for p in pending) / len(pending) for k in terms},
                   "every": len(pending), "lr": sched.get_last_lr()[0],
                   "s_per_step": round((time.time() - t0) / (step - start), 3)}
            rows.append(row)
            pending = []
            if acc.is_main_process:
                with (out / LOG).open("a") as f:
                    f.write(json.dumps(row) + "\n")
            log(json.dumps(row))
        if (cfg.ckpt_every and step % cfg.ckpt_every == 0) or step == cfg.steps or over:
            _save_checkpoint(acc, job, opt, sched, gen, cfg, step, pending, rows)
        if over:
            log(f"time limit ({cfg.time_limit_min} min) reached at step {step}: checkpoint in {out / 'last'}")
            break
    model = acc.unwrap_model(net, keep_fp32_wrapper=False).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if acc.is_main_process:
        with atomic_write(out / job.result) as tmp:
            job.save(model, tmp, step, rows)
        plot_losses(rows, out / PLOT, job.title)
    acc.wait_for_everyone()
    return rows
