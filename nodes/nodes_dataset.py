"""Dataset preparation from the user's footage and motion fine-tuning on it."""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import folder_paths
import torch
from comfy_api.latest import io, ui

from vlogger_core.dataset_prep import DatasetError, PrepSettings, prepare_dataset
from vlogger_core.motion_diffusion import load_motion_model
from vlogger_core.motion_training import TrainConfig, plot_losses, train

from .common import device, input_error, interrupt_check, progress_callback
from .nodes_body import Body
from .nodes_motion import DEFAULT_NAME, FOLDER, SHIPPED, MotionModel, _model_names

def _video_file(video, node: str) -> tuple[str, bool]:
    """A file path for a ComfyUI VIDEO: its own file when it has one, else a temporary MP4
    (frames + audio made into a video by another node). Returns (path, is_temporary)."""
    import tempfile

    src = getattr(video, "get_stream_source", lambda: None)()
    if isinstance(src, str) and os.path.isfile(src):
        return src, False
    if video is None or not hasattr(video, "save_to"):
        raise input_error(node, "video", "is not a video", "connect Load Video (or Create Video)")
    fd, path = tempfile.mkstemp(suffix=".mp4", dir=folder_paths.get_temp_directory())
    os.close(fd)
    video.save_to(path)
    return path, True


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name.strip()).strip("._") or "dataset"


def datasets_dir() -> Path:
    return Path(folder_paths.get_output_directory()) / "vlogger_datasets"


class PrepareDataset(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VLOGGER_PrepareDataset",
            display_name="VLOGGER Prepare Dataset (from your footage)",
            category="VLOGGER/training",
            description=(
                "Turns a video of a person speaking into a training dataset (vlogger-dataset-v1): "
                "constant frame rate, 16 kHz speech, shot-cut detection, mediapipe landmarks per "
                "frame, the body fitted per clip (shape and camera fixed, per-frame pose, jaw and "
                "expression, with a smoothness term), clips cut and filtered (face missing, "
                "unstable fit), frames + control maps + motion + audio written per clip. Needs "
                "mediapipe (pip install mediapipe==0.10.21). Writes to output/vlogger_datasets/<name>."),
            inputs=[
                io.Video.Input("video", tooltip="The footage (e.g. from Load Video, or Create Video from "
                                                "frames + audio): one person, facing the camera, speaking."),
                Body.Input("body", tooltip="The body model to fit (VLOGGER_BodyModelLoader)."),
                io.String.Input("dataset_name", default="my_speaker",
                                tooltip="Folder name under output/vlogger_datasets (replaced if it exists)."),
                io.Float.Input("fps", default=24.0, min=5.0, max=60.0, step=1.0,
                               tooltip="Frame rate of the dataset (the paper: 24). Other rates are resampled."),
                io.Int.Input("clip_frames", default=240, min=16, max=2400,
                             tooltip="Frames per clip (the paper: 240 = 10 s at 24 fps)."),
                io.Int.Input("frame_size", default=128, min=32, max=1024, step=32,
                             tooltip="Stored frames and control maps are square at this size (the "
                                     "video model's resolution, e.g. 128 for the pixel base)."),
                io.Float.Input("max_missing", default=0.1, min=0.0, max=1.0, step=0.01,
                               tooltip="Drop a clip when the face is missing in more than this fraction of frames."),
                io.Float.Input("max_error_px", default=6.0, min=0.5, max=50.0, step=0.5,
                               tooltip="Drop a clip whose mean landmark error (at 256 px) is higher: an unstable fit."),
            ],
            outputs=[io.String.Output("dataset", tooltip="Path of the prepared dataset folder."),
                     io.String.Output("summary", tooltip="Clips kept and dropped (with reasons), as JSON.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, video, body, dataset_name, fps, clip_frames, frame_size, max_missing,
                max_error_px) -> io.NodeOutput:
        node = "VLOGGER_PrepareDataset"
        out = datasets_dir() / _safe_name(dataset_name)
        path, tmp = _video_file(video, node)
        settings = PrepSettings(fps=fps, clip_frames=clip_frames, frame_size=frame_size,
                                max_missing=max_missing, max_error_px=max_error_px)
        try:
            with torch.inference_mode(False), torch.enable_grad():
                summary = prepare_dataset([path], out, body, settings, device(),
                                          progress_callback(1), interrupt_check, log=lambda *a: None)
        except DatasetError as e:
            fix = ("install the optional extra: pip install mediapipe==0.10.21" if "mediapipe" in str(e)
                   else "use a video of one person facing the camera, with speech")
            raise input_error(node, "video", str(e), fix)
        finally:
            if tmp:
                os.unlink(path)
        if summary["kept"] == 0:
            reasons = "; ".join(sorted({d["reason"] for d in summary["dropped"]}))
            raise input_error(node, "video", f"no usable clip ({reasons})",
                              "use longer footage with the face visible, or relax max_missing / max_error_px")
        text = json.dumps({k: summary[k] for k in ("kept", "dropped", "frames", "notes")}, indent=1)
        return io.NodeOutput(str(out), text, ui={"text": [f"{summary['kept']} clips kept, "
                                                          f"{len(summary['dropped'])} dropped -> {out}"]})


class TrainMotion(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VLOGGER_TrainMotion",
            display_name="VLOGGER Fine-tune Motion Model",
            category="VLOGGER/training",
            description=(
                "Fine-tunes a motion model on a prepared dataset (your speaker's fitted motion + "
                "speech), with the same trainer as scripts/train_motion.py (accelerate; the model's "
                "normalisation is kept). Saves models/vlogger/motion/<name>.safetensors with its "
                "loss log and plot, and outputs the model for VLOGGER Motion from Speech. On a CPU "
                "only short runs are practical (about 0.1-0.2 s per step at batch 4)."),
            inputs=[
                io.String.Input("dataset", force_input=True,
                                tooltip="Path of a prepared dataset (VLOGGER_PrepareDataset)."),
                io.Combo.Input("base_model", options=_model_names(), default=DEFAULT_NAME,
                               tooltip="The motion model to start from."),
                io.Int.Input("steps", default=300, min=1, max=100_000, tooltip="Training steps."),
                io.Float.Input("lr", default=1e-4, min=1e-6, max=1e-2, step=1e-5,
                               tooltip="Learning rate (fine-tuning: 1e-4 or lower)."),
                io.Int.Input("batch_size", default=4, min=1, max=256, tooltip="Clips per step."),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1, tooltip="Random seed of the run."),
                io.String.Input("output_name", default="my_speaker_motion",
                                tooltip="File name in models/vlogger/motion (replaced if it exists)."),
            ],
            outputs=[MotionModel.Output("motion_model", tooltip="The fine-tuned model."),
                     io.String.Output("model_path", tooltip="Where it was saved."),
                     io.Image.Output("loss_plot", tooltip="The training loss over steps.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, dataset, base_model, steps, lr, batch_size, seed, output_name) -> io.NodeOutput:
        node = "VLOGGER_TrainMotion"
        if not dataset or not (Path(dataset) / "dataset.json").exists():
            raise input_error(node, "dataset", f"'{dataset}' is not a prepared dataset (no dataset.json)",
                              "connect VLOGGER_PrepareDataset's dataset output")
        base = str(SHIPPED) if base_model == DEFAULT_NAME else folder_paths.get_full_path(FOLDER, base_model)
        if not base:
            raise input_error(node, "base_model", f"'{base_model}' is not in models/vlogger/motion", "pick one from the list")
        out_dir = Path(folder_paths.get_folder_paths(FOLDER)[0])
        name = _safe_name(output_name)
        work = Path(folder_paths.get_temp_directory()) / "vlogger_train" / f"{name}_{int(time.time())}"
        bar = progress_callback(steps)

        def log(msg):
            interrupt_check()
            try:
                bar.update_absolute(json.loads(msg)["step"], steps)
            except Exception:
                pass

        cfg = TrainConfig(data=dataset, out=str(work), steps=steps, batch_size=batch_size, lr=lr,
                          warmup=min(20, steps // 5), seed=seed, log_every=max(1, min(10, steps // 10)),
                          ckpt_every=10**9, init=base, min_frames=16)
        try:
            with torch.inference_mode(False), torch.enable_grad():
                final = train(cfg, log=log)
        except FileNotFoundError as e:
            raise input_error(node, "dataset", str(e), "prepare the dataset first")
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / f"{name}.safetensors"
        os.replace(final, target)
        for f in ("loss_log.jsonl", "loss_plot.png"):
            if (work / f).exists():
                os.replace(work / f, out_dir / f"{name}_{f}")
        import numpy as np
        from PIL import Image
        plot = torch.from_numpy(np.asarray(Image.open(out_dir / f"{name}_loss_plot.png").convert("RGB"),
                                           np.float32) / 255.0)[None]
        model = load_motion_model(str(target), device())
        return io.NodeOutput(model, str(target), plot, ui=ui.PreviewImage(plot, cls=cls))


NODES = [PrepareDataset, TrainMotion]
