"""Save/load the trained parts of the stage-2 models as a folder (ComfyUI: models/vlogger/video/<name>/).

    config.json                  {"format": "vlogger-video", "kind": "video"|"super_resolution", "spec": {...}, ...}
    trained_parts.safetensors    video: control branch + temporal convs + context (+ base LoRA if spec.lora)
                                 super_resolution: the whole SR UNet + temporal convs + context
    base_unet.safetensors        video with a pixel base only (a latent base comes from the user's
                                 SD 1.x checkpoint in models/checkpoints)

Loading checks every tensor's name and shape against the model the config builds and raises one
VloggerError (arg "folder") listing all that does not match. Safetensors only, never pickle.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import VloggerError
from .model import VideoDiffusionModel, VideoSpec, build_base_unet, build_video_model
from .super_resolution import SRSpec, SuperResolutionModel
from .temporal import unwrapped_state_dict

FORMAT = "vlogger-video"
TRAINED = "trained_parts.safetensors"
BASE = "base_unet.safetensors"
FOLDER_FIX = "pick a folder written by the training nodes (config.json + trained_parts.safetensors)"


def _save(tensors: dict, path: Path) -> None:
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path))


def save_model(model, folder: str | Path, *, tiny_random: bool = False, note: str = "") -> Path:
    """Write a video or SR model's trained parts (+ pixel base) and config.json into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    kind = "video" if isinstance(model, VideoDiffusionModel) else "super_resolution"
    cfg = {"format": FORMAT, "version": 1, "kind": kind, "spec": model.spec.to_json(),
           "tiny_random": bool(tiny_random), "note": note}
    _save(model.trained_state_dict(), folder / TRAINED)
    if kind == "video" and model.vae is None:
        _save(unwrapped_state_dict(model.base), folder / BASE)
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    return folder


def read_folder_config(folder: str | Path) -> dict:
    folder = Path(folder)
    path = folder / "config.json"
    if not path.is_file():
        raise VloggerError(f"'{folder}' has no config.json; it is not a VLOGGER video-model folder", "folder",
                           FOLDER_FIX)
    try:
        cfg = json.loads(path.read_text())
    except ValueError as e:
        raise VloggerError(f"'{path}' is not valid JSON ({e})", "folder", FOLDER_FIX) from None
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT or cfg.get("kind") not in ("video", "super_resolution"):
        raise VloggerError(f"'{path}' is not a VLOGGER video-model config", "folder", FOLDER_FIX)
    if not (folder / TRAINED).is_file():
        raise VloggerError(f"'{folder}' has no {TRAINED}", "folder", FOLDER_FIX)
    return cfg


def mismatches(expected: dict, got: dict) -> list[str]:
    """Lines naming the tensors `got` lacks, has beyond `expected`, or has in another shape."""
    wrong = [f"{k}: file {tuple(got[k].shape)} vs model {tuple(expected[k].shape)}"
             for k in sorted(set(got) & set(expected)) if tuple(got[k].shape) != tuple(expected[k].shape)]
    groups = (("missing", sorted(set(expected) - set(got))), ("unexpected", sorted(set(got) - set(expected))),
              ("wrong shape", wrong))
    return [f"  {len(items)} {label}: " + "; ".join(items[:8]) + (" ..." if len(items) > 8 else "")
            for label, items in groups if items]


def load_checked(expected: dict, path: Path, what: str) -> dict:
    """Tensors of `path`, after checking names and shapes against `expected`; all problems listed."""
    try:
        got = load_file(str(path))
    except (OSError, SafetensorError) as e:
        raise VloggerError(f"cannot read {what} ({path.name}: {e})", "folder", FOLDER_FIX) from None
    problems = mismatches(expected, got)
    if problems:
        raise VloggerError("\n".join([f"{what} ({path.name}) does not match the model its config.json describes:",
                                      *problems]), "folder", "use the config.json saved with these weights")
    return got


def load_model(folder: str | Path, *, checkpoint: str | Path | None = None, device="cpu",
               dtype: torch.dtype = torch.float32):
    """A VideoDiffusionModel or SuperResolutionModel from a folder written by save_model.
    A latent (SD 1.x) video model needs `checkpoint`, the user's single-file SD 1.x .safetensors."""
    folder = Path(folder)
    cfg = read_folder_config(folder)
    if cfg["kind"] == "super_resolution":
        model = SuperResolutionModel(SRSpec.from_json(cfg["spec"]))
        model.load_state_dict(load_checked(model.trained_state_dict(), folder / TRAINED, "SR weights"), strict=False)
        return model.to(device, dtype).eval()
    spec = VideoSpec.from_json(cfg["spec"])
    if spec.latent_scale > 1:
        if checkpoint is None:
            raise VloggerError(f"this video model runs on a Stable Diffusion 1.x base ({spec.base}) and needs the "
                               "SD 1.x checkpoint it was trained on", "checkpoint",
                               "choose that checkpoint (a single-file .safetensors in models/checkpoints)")
        from .sd_checkpoint import load_sd1_checkpoint
        base, vae = load_sd1_checkpoint(checkpoint, spec.unet_config, spec.vae_config)
    else:
        if not (folder / BASE).is_file():
            raise VloggerError(f"'{folder}' is a pixel-space video model but has no {BASE}", "folder", FOLDER_FIX)
        base, vae = build_base_unet(spec.unet_config), None
        base.load_state_dict(load_checked(base.state_dict(), folder / BASE, "base UNet"))
    model = build_video_model(spec, base, vae)
    trained = load_checked(model.trained_state_dict(), folder / TRAINED, "trained parts")
    model.control.load_state_dict({k[8:]: v for k, v in trained.items() if k.startswith("control.")}, strict=False)
    model.temporal.load_state_dict({k[9:]: v for k, v in trained.items() if k.startswith("temporal.")})
    lora = {k[10:]: v for k, v in trained.items() if k.startswith("base_lora.")}
    if lora:
        model.base.load_state_dict(lora, strict=False)
    with torch.no_grad():
        model.context.copy_(trained["context"])
    return model.to(device, dtype).eval()
