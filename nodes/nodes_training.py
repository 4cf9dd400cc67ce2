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

from vlogger_core.diffusion.lora import read_lora
from vlogger_core.diffusion.model import VideoDiffusionModel
from vlogger_core.errors import VloggerError
from vlogger_core.training.lora import LoraTrainConfig, train_lora
from vlogger_core.training.trainer import export

from .common import (
    VloggerNode,
    input_error,
    interrupt_check,
    node_error,
    progress_callback,
)
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


class TrainLoRA(VloggerNode):
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
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", lora_name).strip("._") or "lora"
        work = Path(folder_paths.get_temp_directory()) / "vlogger_train" / f"{name}_{int(time.time())}"
        cfg = LoraTrainConfig(data=dataset, out=str(work), steps=steps, lr=lr, rank=rank, batch_size=batch_size,
                              seed=seed, include_base=include_base)
        try:
            with torch.inference_mode(False), torch.enable_grad():
                # a copy (the loader's model stays as it was), made outside inference mode so
                # its weights are ordinary tensors autograd can use
                model = copy.deepcopy(video_model)
                result = train_lora(model, cfg, log=log, progress=progress_callback(steps), interrupt=interrupt_check)
        except VloggerError as e:
            raise node_error(NODE, e, {"model": "video_model", "data": "dataset"}) from None
        out = export(result, Path(folder_paths.get_folder_paths(LORA_FOLDER)[0]) / name)
        info = read_lora(out)[0]
        head = "\n".join(notes[:2])   # the trainer's first lines: parameters and memory, the time estimate
        msg = (f"{head}\nloss {info['first_loss']:.4f} (first step) -> {info['last_loss']:.4f} (last step); "
               f"saved {out}")
        return io.NodeOutput(model, str(out), ui={"text": [msg]})


NODES = [TrainLoRA]
