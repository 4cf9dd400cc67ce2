"""Training a personalization LoRA (diffusion/lora.py: the adapter, its layers and file format)
on one subject's prepared footage, with the video trainer's diffusion loss (stage-2 windows, or
single frames for N = 1), on the trainer core (trainer.py: accelerate with several processes /
GPUs and mixed precision, checkpoints, resume, loss log and plot, memory check). Only the LoRA
weights change. Result: OUT/lora, a LoRA folder (copy it to models/vlogger/lora/NAME).

    python -m vlogger_core.training.lora --model MODEL_FOLDER --data DATASET --out RUN_FOLDER
        [--steps 200 --rank 8 --lr 1e-4 --include-base] [--mixed-precision bf16] [--resume]
    accelerate launch -m vlogger_core.training.lora ...   (same arguments, several GPUs)
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..diffusion.lora import add_lora, remove_lora, save_lora
from ..diffusion.model import VideoDiffusionModel
from .cli import config_from, parser, run_cli
from .trainer import RunSettings, accelerator, fit
from .video import diffusion_job


@dataclass
class LoraTrainConfig(RunSettings):
    steps: int = 200
    batch_size: int = 2
    warmup: int = 0
    lr_schedule: str = "constant_with_warmup"
    weight_decay: float = 0.0
    log_every: int = 1
    ckpt_every: int = 0
    rank: int = 8
    include_base: bool = False
    cond_dropout: float = 0.1


HELP = {
    "data": "a prepared dataset (vlogger-dataset-v1) of ONE subject, at the model's frame size",
    "out": "run folder: last/ (checkpoint), lora/ (the LoRA folder), loss_log.jsonl, loss_plot.png",
    "batch_size": "clips per step (per process; single frames for a one-frame model)",
    "rank": "LoRA rank (alpha = rank)",
    "include_base": "also put the LoRA on the frozen base UNet's attention projections",
    "cond_dropout": "probability of training a sample with the all-zero control input (guidance's null)",
}


def train_lora(model: VideoDiffusionModel, cfg: LoraTrainConfig, log=print, progress=None,
               interrupt=None) -> Path:
    """Add a LoRA to `model` (in place) and train it; returns OUT/lora. The model ends with the
    trained LoRA at strength 1, or, when training fails or is interrupted, without it."""
    acc = accelerator(cfg)
    add_lora(model, cfg.rank, include_base=cfg.include_base)
    try:
        for n, p in model.named_parameters():
            p.requires_grad_(".lora_" in n)
        stage = 2 if model.spec.num_frames > 1 else 1

        def save(m, path: Path, step: int, rows: list) -> None:
            save_lora(m, path, {"trained_on": str(cfg.data), "steps": step, "lr": cfg.lr, "seed": cfg.seed,
                                "batch_size": cfg.batch_size, "first_loss": rows[0]["loss"],
                                "last_loss": rows[-1]["loss"], "created": time.strftime("%Y-%m-%d %H:%M:%S")})
        job = diffusion_job(model.train(), [p for p in model.parameters() if p.requires_grad], cfg, stage,
                            acc.device, save, "lora", f"VLOGGER LoRA, rank {cfg.rank} ({Path(cfg.out).name})")
        fit(acc, job, cfg, log, progress, interrupt)
    except BaseException:
        remove_lora(model)
        raise
    model._vlogger_lora.update(strength=1.0)
    return Path(cfg.out) / "lora"


def main(argv=None) -> None:
    from ..diffusion.weights import load_model

    ap = parser(LoraTrainConfig, HELP, "python -m vlogger_core.training.lora", __doc__)
    ap.add_argument("--model", required=True, help="the video model folder the LoRA is for")
    ap.add_argument("--checkpoint", default="", help="the SD 1.x .safetensors a latent (sd15) model runs on")

    def run(args) -> Path:
        model = load_model(args.model, checkpoint=args.checkpoint or None)
        model.source_folder = Path(args.model).name
        return train_lora(model, config_from(LoraTrainConfig, args))
    run_cli(ap, argv, run)


if __name__ == "__main__":
    main()
