"""Personalization (the paper's "Editing and personalization"): a LoRA (peft) on the video
model's trained parts (control branch attention/convs and its zero-initialised joins into the
base, the temporal convs; optionally the frozen base's attention too), trained on one subject's
prepared footage with the same diffusion loss as the trainer, saved as a small folder, and
applied to a loaded model with a strength. Training: vlogger_core/training/lora.py.

    LORA_FOLDER/lora.safetensors   the adapter weights (lora_A / lora_B of the targeted layers)
    LORA_FOLDER/lora.json          rank, alpha, target regex, the model folder it was trained for
                                   and that model's signature (architecture + a weight fingerprint),
                                   checked on load: a LoRA for another architecture is refused
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import VloggerError
from .model import VideoDiffusionModel

FORMAT = "vlogger-lora-v1"
ADAPTER = "vlogger"
# Module names in the whole VideoDiffusionModel. The control branch's joins (controlnet_*_block)
# are included because on a fresh branch they are zero, and without them nothing upstream of
# them would get a gradient.
CONTROL = r"control\..*(to_q|to_k|to_v|to_out\.0|conv1|conv2|controlnet_down_blocks\.\d+|controlnet_mid_block)"
TEMPORAL = r"(base|control)\..*\.temporal\.proj"
BASE_ATTENTION = r"base\..*(to_q|to_k|to_v|to_out\.0)"


class LoraError(VloggerError):
    """A LoRA that does not fit the model, or bad settings."""


def targets(include_base: bool = False) -> str:
    return "(" + "|".join([CONTROL, TEMPORAL] + ([BASE_ATTENTION] if include_base else [])) + ")"


def _plain_state(model: VideoDiffusionModel) -> dict[str, torch.Tensor]:
    """Trained parts under their names without any LoRA (peft renames a wrapped layer's weight to
    base_layer.weight), so a model's fingerprint is the same before and after add_lora."""
    return {k.replace(".base_layer.", "."): v for k, v in model.trained_state_dict().items() if ".lora_" not in k}


def fingerprint(model: VideoDiffusionModel) -> str:
    """A short hash of the trained parts (names, shapes and a strided sample of values in fp16,
    so it does not depend on the load dtype beyond that): which trained model a LoRA belongs to."""
    h = hashlib.sha256()
    for k, v in sorted(_plain_state(model).items()):
        flat = v.detach().flatten()
        h.update(f"{k}{tuple(v.shape)}".encode())
        h.update(flat[:: max(1, flat.numel() // 256)].to("cpu", torch.float16).numpy().tobytes())
    return h.hexdigest()[:16]


def signature(model: VideoDiffusionModel) -> dict:
    s = model.spec
    return {"base": s.base, "image_size": s.image_size, "num_frames": s.num_frames, "num_parts": s.num_parts,
            "cond_channels": s.cond_channels, "blocks": list(model.control.config.block_out_channels),
            "temporal_in": list(s.temporal_in), "base_lora": bool(s.lora)}


def has_lora(model: VideoDiffusionModel) -> bool:
    return getattr(model, "_vlogger_lora", None) is not None


def add_lora(model: VideoDiffusionModel, rank: int = 8, alpha: float | None = None,
             include_base: bool = False) -> None:
    """Inject a fresh LoRA (B = 0: the model's output is unchanged) into the targeted layers."""
    from peft import LoraConfig, inject_adapter_in_model

    if rank < 1:
        raise LoraError(f"rank must be >= 1, got {rank}", "rank", "set rank to 1 or more (4-16 typical)")
    if has_lora(model):
        raise LoraError("the model already has a personalization LoRA", "model",
                        "start from the model without one (the loader's lora = (none))")
    regex = targets(include_base)
    cfg = LoraConfig(r=rank, lora_alpha=alpha or rank, target_modules=regex, lora_dropout=0.0)
    fp = fingerprint(model)  # before injection (the names peft gives are normalised anyway)
    inject_adapter_in_model(cfg, model, adapter_name=ADAPTER)
    model._vlogger_lora = {"rank": rank, "alpha": float(alpha or rank), "targets": regex,
                           "include_base": include_base, "fingerprint": fp}


def lora_state(model: VideoDiffusionModel) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters()
            if ".lora_" in n and f".{ADAPTER}." in n}


def set_strength(model: VideoDiffusionModel, strength: float) -> None:
    """Scale the LoRA's delta (0 = the model without it, exactly; 1 = as trained)."""
    from peft.tuners.lora import LoraLayer
    for m in model.modules():
        if isinstance(m, LoraLayer) and ADAPTER in m.scaling:
            m.set_scale(ADAPTER, strength)


def save_lora(model: VideoDiffusionModel, folder: str | Path, meta: dict | None = None) -> Path:
    """lora.safetensors + lora.json in `folder` (created; to replace a folder whole, write it
    through files.atomic_write, as the trainer does)."""
    if not has_lora(model):
        raise LoraError("the model has no LoRA to save", "model", "train or apply a LoRA first")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = lora_state(model)
    save_file(weights, str(folder / "lora.safetensors"))
    info = {"format": FORMAT, **model._vlogger_lora, "model_folder": getattr(model, "source_folder", None),
            "model": signature(model), "layers": len(weights) // 2, **(meta or {})}
    (folder / "lora.json").write_text(json.dumps(info, indent=1))
    return folder


def read_lora(folder: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    folder = Path(folder)
    try:
        info = json.loads((folder / "lora.json").read_text())
        weights = load_file(str(folder / "lora.safetensors"))
    except (OSError, ValueError) as e:
        raise LoraError(f"{folder.name} is not a VLOGGER LoRA folder (lora.json + lora.safetensors): {e}",
                        "folder", "pick a folder written by LoRA training") from e
    if info.get("format") != FORMAT:
        raise LoraError(f"{folder.name}/lora.json is not a {FORMAT} file (format {info.get('format')!r})",
                        "folder", "pick a folder written by LoRA training")
    return info, weights


def apply_lora(model: VideoDiffusionModel, folder: str | Path, strength: float = 1.0, log=print) -> VideoDiffusionModel:
    """Add a saved LoRA to `model` (in place) at `strength`. A LoRA for another architecture or
    with other target layers is refused, naming what differs; one trained on other weights of
    the same architecture is applied with a warning (it may still help, like SD LoRAs across
    fine-tunes)."""
    folder = Path(folder)
    info, weights = read_lora(folder)
    trained_for = info.get("model_folder") or "?"
    want, have = info.get("model", {}), signature(model)
    diff = {k: (want.get(k), have[k]) for k in have if want.get(k) != have[k]}
    if diff:
        raise LoraError(f"{folder.name} was trained for another model ({trained_for}): " +
                        ", ".join(f"{k} {a} (LoRA) vs {b} (model)" for k, (a, b) in diff.items()),
                        "folder", "pick a LoRA trained for this model")
    add_lora(model, int(info["rank"]), float(info["alpha"]), bool(info.get("include_base")))
    own = lora_state(model)
    missing = sorted(set(own) - set(weights))
    extra = sorted(set(weights) - set(own))
    wrong = [f"{k}: {tuple(weights[k].shape)} vs {tuple(own[k].shape)}" for k in own
             if k in weights and weights[k].shape != own[k].shape]
    if missing or extra or wrong:
        remove_lora(model)
        parts = [f"{len(x)} {what} (e.g. {x[0]})" for what, x in
                 (("layers the model has but the LoRA lacks", missing), ("LoRA layers the model lacks", extra),
                  ("shapes differ", wrong)) if x]
        raise LoraError(f"{folder.name} does not match this model's layers (trained for {trained_for}): "
                        + "; ".join(parts), "folder", "pick a LoRA trained for this model")
    if info.get("fingerprint") and info["fingerprint"] != model._vlogger_lora["fingerprint"]:
        log(f"warning: LoRA {folder.name} was trained on other weights of this architecture "
            f"({trained_for}); applying it anyway")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for k in own:
            params[k].copy_(weights[k].to(params[k].dtype))
    set_strength(model, strength)
    model._vlogger_lora.update(name=folder.name, strength=float(strength))
    return model


def remove_lora(model: VideoDiffusionModel) -> None:
    """Undo add_lora (a refused LoRA, a failed training): peft's layers replaced by their base layers."""
    from peft.tuners.lora import LoraLayer
    for name, m in list(model.named_modules()):
        if isinstance(m, LoraLayer):
            parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            setattr(parent, name.rsplit(".", 1)[-1], m.get_base_layer())
    model._vlogger_lora = None
