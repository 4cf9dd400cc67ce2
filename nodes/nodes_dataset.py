"""Dataset preparation from the user's footage and motion fine-tuning on it."""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import folder_paths
import torch
from comfy_api.latest import InputImpl, io, ui

from vlogger_core.errors import VloggerError
from vlogger_core.motion.model import load_motion_model
from vlogger_core.training.dataset_prep import (
    DatasetError,
    PrepSettings,
    footage_from_arrays,
    prepare_dataset,
)
from vlogger_core.training.motion import TrainConfig, train
from vlogger_core.training.trainer import LOG, PLOT, export

from .common import (
    VloggerNode,
    device,
    input_error,
    interrupt_check,
    node_error,
    progress_callback,
)
from .nodes_motion import DEFAULT_NAME, FOLDER, SHIPPED, _model_names
from .nodes_output import audio_input
from .types import Body, MotionModel


def _footage(video, images, audio, images_fps: float, fps: float, node: str):
    """The core's footage: an IMAGE batch (+ AUDIO) at images_fps when connected; else a
    ComfyUI VIDEO, decoded from its own file when it has one (the container's timestamps, so
    variable frame rate is detected), or from its frames, rate and audio (Create Video)."""
    if images is not None:
        wave, rate = audio_input(node, audio)
        try:
            return footage_from_arrays("images", images, wave, rate, images_fps, fps)
        except DatasetError as e:
            raise node_error(node, e, {"frames": "images"}, default="images") from None
    if video is None:
        raise input_error(node, "video", "nothing is connected (neither 'video' nor 'images')",
                          "connect Load Video, or an IMAGE batch (+ AUDIO) of the footage")
    if not hasattr(video, "get_components"):
        raise input_error(node, "video", "is not a video", "connect Load Video (or Create Video)")
    if isinstance(video, InputImpl.VideoFromFile):      # (other kinds encode themselves to give a source)
        src = video.get_stream_source()
        if isinstance(src, str) and os.path.isfile(src):
            return src
    try:
        c = video.get_components()
    except Exception as e:
        raise input_error(node, "video", f"cannot be decoded ({e})", "load a readable video file")
    wave, rate = audio_input(node, c.audio, "video")
    try:
        return footage_from_arrays("video", c.images, wave, rate, float(c.frame_rate), fps)
    except DatasetError as e:
        raise node_error(node, e, {"frames": "video"}, default="video") from None


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name.strip()).strip("._") or "dataset"


def datasets_dir() -> Path:
    return Path(folder_paths.get_output_directory()) / "vlogger_datasets"


class PrepareDataset(VloggerNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VLOGGER_PrepareDataset",
            display_name="VLOGGER Prepare Dataset (from your footage)",
            category="VLOGGER/training",
            description=(
                "Turns a video of a person speaking into a training dataset (vlogger-dataset-v1) for "
                "VLOGGER Fine-tune Motion Model and VLOGGER Train LoRA: constant frame rate (variable-rate "
                "footage is resampled), 16 kHz speech, shot-cut detection (no clip spans a cut), face, "
                "pose and hand landmarks per frame (the pack's default detector, or mediapipe if chosen), the body fitted per clip (camera FOV estimated, "
                "shape shared, per-frame pose, jaw, fingers and expression, with a smoothness term), "
                "clips cut and filtered (too short, face or hands missing, unstable fit) with the reason "
                "for each one dropped, frames + control maps + motion + audio written per clip. Writes "
                "to output/vlogger_datasets/<name>."),
            inputs=[
                io.Video.Input("video", optional=True,
                               tooltip="The footage (Load Video, or Create Video): one person, facing the "
                                       "camera, speaking. Or connect 'images' (+ 'audio') instead."),
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
                               tooltip="Drop a clip when the face (or, with require_hands, the hands) is "
                                       "missing in more than this fraction of its frames."),
                io.Float.Input("max_error_px", default=6.0, min=0.5, max=50.0, step=0.5,
                               tooltip="Drop a clip whose mean landmark error (at 256 px) is higher: an unstable fit."),
                io.Float.Input("max_jitter_px", default=4.0, min=0.1, max=50.0, step=0.1,
                               tooltip="Drop a clip whose fitted face landmarks jitter more than this "
                                       "(mean frame-to-frame second difference, px at 256): an unstable fit."),
                io.Boolean.Input("require_hands", default=False,
                                 tooltip="Drop clips where neither hand is detected in more than max_missing of "
                                         "the frames (the paper keeps only clips with the hands seen; "
                                         "off for head-and-shoulders footage)."),
                io.Boolean.Input("allow_silent", default=False,
                                 tooltip="Accept footage without an audio track (its clips then serve only "
                                         "video-model training and LoRA, not the motion model)."),
                io.Image.Input("images", optional=True,
                               tooltip="The footage as an IMAGE batch (e.g. Get Video Components, or another "
                                       "pack's video loader); used instead of 'video' when connected."),
                io.Audio.Input("audio", optional=True,
                               tooltip="The speech of the 'images' footage (without it the footage is silent)."),
                io.Float.Input("images_fps", default=24.0, min=1.0, max=240.0, step=0.001, optional=True,
                               tooltip="Frame rate of the 'images' footage (Get Video Components' fps)."),
            ],
            outputs=[io.String.Output("dataset", tooltip="Path of the prepared dataset folder."),
                     io.String.Output("summary", tooltip="Clips kept and dropped (with reasons), as JSON.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, body, dataset_name, fps, clip_frames, frame_size, max_missing, max_error_px,
                max_jitter_px=4.0, require_hands=False, allow_silent=False, video=None, images=None,
                audio=None, images_fps=24.0) -> io.NodeOutput:
        node = "VLOGGER_PrepareDataset"
        out = datasets_dir() / _safe_name(dataset_name)
        source = _footage(video, images, audio, images_fps, fps, node)
        settings = PrepSettings(fps=fps, clip_frames=clip_frames, frame_size=frame_size,
                                max_missing=max_missing, max_error_px=max_error_px,
                                max_jitter_px=max_jitter_px, require_hands=require_hands,
                                allow_silent=allow_silent)
        try:
            with torch.inference_mode(False), torch.enable_grad():
                summary = prepare_dataset([source], out, body, settings, device(),
                                          progress_callback(1), interrupt_check, log=lambda *a: None)
        except DatasetError as e:     # the footage is 'images' (+ its 'audio') or 'video'
            which = "images" if images is not None else "video"
            raise node_error(node, e, {"sources": which, "audio": "audio" if images is not None else which},
                             default=which) from None
        text = json.dumps({k: summary[k] for k in ("kept", "dropped", "frames", "notes")}, indent=1)
        cuts = sum(len(n.get("shot_cuts", [])) for n in summary["notes"].values())
        extra = (f", {cuts} shot cut(s)" if cuts else "") + (
            ", resampled to constant fps" if any("resampled_to_fps" in n for n in summary["notes"].values()) else "")
        line = f"{summary['kept']} clips kept, {len(summary['dropped'])} dropped{extra} -> {out}"
        return io.NodeOutput(str(out), text, ui={"text": [line, text]})


class TrainMotion(VloggerNode):
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
        cfg = TrainConfig(data=dataset, out=str(work), steps=steps, batch_size=batch_size, lr=lr,
                          warmup=min(20, steps // 5), seed=seed, log_every=max(1, min(10, steps // 10)),
                          ckpt_every=0, init=base, min_frames=16)
        try:
            with torch.inference_mode(False), torch.enable_grad():
                final = train(cfg, log=lambda msg: print(f"[{node}] {msg}"), progress=progress_callback(steps),
                              interrupt=interrupt_check)
        except VloggerError as e:
            raise node_error(node, e, {"data": "dataset", "init": "base_model"}) from None
        out_dir.mkdir(parents=True, exist_ok=True)
        target = export(final, out_dir / f"{name}.safetensors")
        for f in (LOG, PLOT):
            export(work / f, out_dir / f"{name}_{f}")
        import numpy as np
        from PIL import Image
        plot = torch.from_numpy(np.asarray(Image.open(out_dir / f"{name}_{PLOT}").convert("RGB"),
                                           np.float32) / 255.0)[None]
        model = load_motion_model(str(target), device())
        return io.NodeOutput(model, str(target), plot, ui=ui.PreviewImage(plot, cls=cls))


NODES = [PrepareDataset, TrainMotion]
