"""Personalization (the paper's "Editing and personalization"): a LoRA (peft) on the video
model's control branch, trained on one subject's prepared footage with the stage-2 diffusion loss,
saved as a small folder, and applied to a loaded model with a strength.

    LORA_FOLDER/lora.safetensors   the adapter weights (lora_A / lora_B of the targeted layers)
    LORA_FOLDER/lora.json          rank, alpha, targets, and the signature of the model it was
                                   trained for (checked on load: a LoRA for another model is refused)

    python -m vlogger_core.personalization --model MODEL_FOLDER --data DATASET --out LORA_FOLDER
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .video_diffusion import VideoDiffusionModel

ADAPTER = "vlogger"
# attention projections and resnet convs of the control branch, and its zero-initialised joins
# into the base (without them a LoRA on a fresh branch gets no gradient)
TARGETS = r".*(to_q|to_k|to_v|to_out\.0|conv1|conv2|controlnet_down_blocks\.\d+|controlnet_mid_block)$"


class LoraError(ValueError):
    """A LoRA that does not fit the model, or bad settings."""


def signature(model: VideoDiffusionModel) -> dict:
    s = model.spec
    return {"base": s.base, "image_size": s.image_size, "num_frames": s.num_frames, "num_parts": s.num_parts,
            "cond_channels": s.cond_channels,
            "blocks": list(model.control.config.block_out_channels)}


def add_lora(model: VideoDiffusionModel, rank: int = 8, alpha: float | None = None) -> None:
    """Inject a fresh LoRA (B = 0: the model's output is unchanged) into the control branch."""
    from peft import LoraConfig, inject_adapter_in_model

    if rank < 1:
        raise LoraError(f"rank must be >= 1, got {rank}")
    cfg = LoraConfig(r=rank, lora_alpha=alpha or rank, target_modules=TARGETS, lora_dropout=0.0)
    inject_adapter_in_model(cfg, model.control, adapter_name=ADAPTER)
    model._vlogger_lora = {"rank": rank, "alpha": float(alpha or rank), "targets": TARGETS}


def lora_state(model: VideoDiffusionModel) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.control.state_dict().items() if ".lora_" in k}


def set_strength(model: VideoDiffusionModel, strength: float) -> None:
    """Scale the LoRA's contribution (0 = the model without it, exactly; 1 = as trained)."""
    from peft.tuners.lora import LoraLayer
    for m in model.control.modules():
        if isinstance(m, LoraLayer) and ADAPTER in m.scaling:
            m.set_scale(ADAPTER, strength)


def save_lora(model: VideoDiffusionModel, folder: str | Path, meta: dict | None = None) -> Path:
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    save_file(lora_state(model), str(tmp / "lora.safetensors"))
    info = {"format": "vlogger-lora-v1", **model._vlogger_lora, "model": signature(model), **(meta or {})}
    (tmp / "lora.json").write_text(json.dumps(info, indent=1))
    import shutil
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def apply_lora(model: VideoDiffusionModel, folder: str | Path, strength: float = 1.0) -> VideoDiffusionModel:
    folder = Path(folder)
    try:
        info = json.loads((folder / "lora.json").read_text())
        weights = load_file(str(folder / "lora.safetensors"))
    except (OSError, ValueError) as e:
        raise LoraError(f"{folder.name} is not a VLOGGER LoRA folder (lora.json + lora.safetensors): {e}")
    want, have = info.get("model", {}), signature(model)
    diff = {k: (want.get(k), have[k]) for k in have if want.get(k) != have[k]}
    if diff:
        raise LoraError(f"{folder.name} was trained for another model: " +
                        ", ".join(f"{k} {a} (LoRA) vs {b} (model)" for k, (a, b) in diff.items()))
    add_lora(model, int(info["rank"]), float(info["alpha"]))
    own = lora_state(model)
    bad = [k for k in own if k not in weights or weights[k].shape != own[k].shape]
    if bad:
        raise LoraError(f"{folder.name} does not match the model's layers ({len(bad)} differ, e.g. {bad[0]})")
    model.control.load_state_dict({k: weights[k].to(own[k].dtype) for k in own}, strict=False)
    model.control.to(next(model.base.parameters()).device)
    set_strength(model, strength)
    return model


def train_lora(model: VideoDiffusionModel, data: str, steps: int = 200, lr: float = 1e-4, rank: int = 8,
               batch_size: int = 2, seed: int = 0, progress=None, interrupt=None, log=print) -> list[float]:
    """Train a LoRA on one subject's dataset (stage-2 windows, diffusion loss); only the LoRA
    weights change. Returns the per-step losses."""
    from diffusers import DDPMScheduler

    from .video_sampling import read_config
    from .video_training import diffusion_loss, load_clips, make_batch

    if steps < 1:
        raise LoraError(f"steps must be >= 1, got {steps}")
    clips = load_clips(data, model.spec)
    add_lora(model, rank)
    for n, p in model.named_parameters():
        p.requires_grad_(".lora_" in n and n.startswith("control."))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = DDPMScheduler(**{k: v for k, v in read_config(model.spec.scheduler_config).items()
                             if k in DDPMScheduler.__init__.__code__.co_varnames})
    gen = torch.Generator().manual_seed(seed)
    stage = 2 if model.spec.num_frames > 1 else 1
    losses, t0 = [], time.time()
    model.train()
    for step in range(steps):
        if interrupt is not None:
            interrupt()
        frames, cond, n = make_batch(clips, model, stage, batch_size, gen)
        dev = next(model.base.parameters()).device
        loss = diffusion_loss(model, sched, frames.to(dev), cond.to(dev), n, 0.1, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if step == 0:
            log(f"LoRA: first step {time.time() - t0:.2f} s; about {(time.time() - t0) * steps:.0f} s for {steps} steps")
        if progress is not None:
            progress(step + 1, steps)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return losses


def main(argv=None) -> None:
    from .video_weights import load_model
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="the video model folder the LoRA is for")
    ap.add_argument("--checkpoint", default="", help="SD 1.x file for a latent model")
    ap.add_argument("--data", required=True, help="a prepared dataset of ONE subject")
    ap.add_argument("--out", required=True, help="the LoRA folder to write")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    model = load_model(a.model, checkpoint=a.checkpoint or None)
    losses = train_lora(model, a.data, a.steps, a.lr, a.rank, a.batch_size, a.seed)
    print(save_lora(model, a.out, {"trained_on": a.data, "steps": a.steps, "first_loss": losses[0],
                                   "last_loss": losses[-1], "base_model_folder": Path(a.model).name}))


if __name__ == "__main__":
    main()
