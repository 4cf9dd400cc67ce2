"""Personalization: train a LoRA for the video model on one subject's prepared footage."""
from __future__ import annotations

import copy
import os
import re
import time
from pathlib import Path

import folder_paths
import torch
from comfy_api.latest import io

from vlogger_core.diffusion.lora import LoraError, save_lora, train_lora
from vlogger_core.diffusion.model import VideoDiffusionModel
from vlogger_core.training.video import TrainingError

from .common import input_error, interrupt_check, progress_callback
from .nodes_video import LORA_FOLDER
from .types import VideoModel

NODE = "VLOGGER_TrainLoRA"


def _resolve(dataset: str) -> str:
    """An absolute path as given; a relative one looked up in ComfyUI's output, then input folder
    (Prepare Dataset writes to output/vlogger_datasets/<name>)."""
    if not dataset or os.path.isabs(dataset):
        return dataset
    for base in (folder_paths.get_output_directory(), folder_paths.get_input_directory()):
        if (Path(base) / dataset / "dataset.json").exists():
            return str(Path(base) / dataset)
    return dataset


class TrainLoRA(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=NODE,
            display_name="VLOGGER Train LoRA (personalize)",
            category="VLOGGER/training",
            description=(
                "Personalizes a video model to one person: trains a LoRA (peft) on its control branch and "
                "temporal layers (optionally the frozen base's attention too) with the diffusion loss on that person's prepared dataset (VLOGGER Prepare Dataset), "
                "saves it to models/vlogger/lora/<name> and outputs the model with it applied. Load it "
                "later with VLOGGER Load Video Diffusion Model's lora input. The first step is timed and "
                "the expected duration is shown; on a CPU only tiny runs are practical (real runs: GPU)."),
            inputs=[
                VideoModel.Input("video_model", tooltip="The video model to personalize (not changed: a copy is trained)."),
                io.String.Input("dataset", force_input=True,
                                tooltip="A prepared dataset folder (vlogger-dataset-v1) of ONE person at the model's "
                                        "frame size: VLOGGER Prepare Dataset's output, or a path (relative "
                                        "paths are looked up in ComfyUI's output, then input folder)."),
                io.Int.Input("steps", default=200, min=1, max=100_000, tooltip="Training steps."),
                io.Float.Input("lr", default=1e-4, min=1e-6, max=1e-2, step=1e-5, tooltip="Learning rate."),
                io.Int.Input("rank", default=8, min=1, max=256, tooltip="LoRA rank (4-16 typical)."),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1, tooltip="Random seed of the run."),
                io.String.Input("lora_name", default="my_speaker_lora",
                                tooltip="Folder name in models/vlogger/lora (replaced if it exists)."),
                io.Int.Input("batch_size", default=2, min=1, max=4096,
                             tooltip="Clips per step. Settings whose estimated memory does not fit the "
                                     "device are refused before training, with the batch size that fits."),
                io.Boolean.Input("include_base", default=False,
                                 tooltip="Also put the LoRA on the frozen base UNet's attention layers (more "
                                         "identity detail, a bigger file; the paper fine-tunes the whole model)."),
            ],
            outputs=[VideoModel.Output("personalized", tooltip="The model with the new LoRA applied (strength 1)."),
                     io.String.Output("lora_path", tooltip="Where the LoRA was saved.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, video_model, dataset, steps, lr, rank, seed, lora_name, batch_size=2,
                include_base=False) -> io.NodeOutput:
        if not isinstance(video_model, VideoDiffusionModel):
            raise input_error(NODE, "video_model", "is not a video model (an SR stage?)",
                              "load a video model folder")
        dataset = _resolve(dataset)
        if not dataset or not (Path(dataset) / "dataset.json").exists():
            raise input_error(NODE, "dataset", f"'{dataset}' is not a prepared dataset (no dataset.json)",
                              "connect VLOGGER_PrepareDataset's dataset output")
        notes = []

        def log(msg: str) -> None:  # printed at once (the first-step time estimate), shown at the end
            print(f"[{NODE}] {msg}")
            notes.append(msg)
        try:
            with torch.inference_mode(False), torch.enable_grad():
                # a copy (the loader's model stays as it was), made outside inference mode so
                # its weights are ordinary tensors autograd can use
                model = copy.deepcopy(video_model)
                losses = train_lora(model, dataset, steps, lr, rank, batch_size, seed, include_base,
                                    progress=progress_callback(steps), interrupt=interrupt_check, log=log,
                                    batch_flag="batch_size")
        except LoraError as e:
            if "already has" in str(e):
                raise input_error(NODE, "video_model", str(e), "set the loader's lora to (none)")
            raise input_error(NODE, "dataset", str(e), "check the dataset and settings")
        except TrainingError as e:
            if "needs about" in str(e):
                raise input_error(NODE, "batch_size", str(e), "lower batch_size (or use a GPU with more memory)")
            raise input_error(NODE, "dataset", str(e), "prepare the dataset from this person's footage at the "
                                                       "model's frame size")
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", lora_name).strip("._") or "lora"
        out = Path(folder_paths.get_folder_paths(LORA_FOLDER)[0]) / name
        save_lora(model, out, {"trained_on": str(dataset), "steps": steps, "lr": lr, "seed": seed,
                               "batch_size": batch_size,
                               "first_loss": losses[0], "last_loss": losses[-1],
                               "created": time.strftime("%Y-%m-%d %H:%M:%S")})
        msg = (f"{notes[0] if notes else ''}\nloss {losses[0]:.4f} (first step) -> {losses[-1]:.4f} (last step); "
               f"saved {out}")
        return io.NodeOutput(model, str(out), ui={"text": [msg]})


NODES = [TrainLoRA]
