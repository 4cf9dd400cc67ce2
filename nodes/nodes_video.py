"""Stage-2 diffusion nodes: load the video / SR models, sample a clip, outpaint a long video, upscale.

No trained VLOGGER weights exist: these nodes need a trained folder in models/vlogger/video/ (from
the training nodes or your own). scripts/make_tiny_video_model.py makes TINY RANDOM folders for
tests, whose output is noise, not a result.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import folder_paths
import torch
from comfy_api.latest import io, ui

from vlogger_core.diffusion.outpainting import outpaint_video
from vlogger_core.diffusion.sampling import (
    SCHEDULERS,
    check_controls,
    check_video_model,
    control_layout,
    sample_clip,
    square_reference,
)
from vlogger_core.diffusion.stream import sr_chain, write_diffusion_video
from vlogger_core.diffusion.super_resolution import SuperResolutionModel, super_resolve
from vlogger_core.diffusion.weights import load_model
from vlogger_core.errors import VloggerError
from vlogger_core.render.controls import control_channels_of

from .common import (
    VloggerNode,
    check_image_batch,
    device,
    input_error,
    interrupt_check,
    node_error,
    progress_callback,
)
from .nodes_output import audio_input, output_path
from .types import Controls, VideoModel

log = logging.getLogger("VLOGGER")

FOLDER = "vlogger_video"
folder_paths.add_model_folder_path(FOLDER, os.path.join(folder_paths.models_dir, "vlogger", "video"))
NO_CHECKPOINT = "(none: pixel-space model)"

LORA_FOLDER = "vlogger_lora"
folder_paths.add_model_folder_path(LORA_FOLDER, os.path.join(folder_paths.models_dir, "vlogger", "lora"))
NO_LORA = "(none)"


def lora_folders() -> list[str]:
    """Sub-folders of models/vlogger/lora/ holding a lora.json."""
    found = []
    for base in folder_paths.get_folder_paths(LORA_FOLDER):
        if os.path.isdir(base):
            found += [d for d in sorted(os.listdir(base)) if os.path.isfile(os.path.join(base, d, "lora.json"))]
    return [NO_LORA] + found


def lora_path(name: str) -> Path | None:
    for base in folder_paths.get_folder_paths(LORA_FOLDER):
        p = Path(base) / name
        if (p / "lora.json").is_file():
            return p
    return None


def model_folders() -> list[str]:
    """Sub-folders (any depth 1) of models/vlogger/video/ that hold a config.json."""
    found = []
    for base in folder_paths.get_folder_paths(FOLDER):
        if os.path.isdir(base):
            found += [d for d in sorted(os.listdir(base)) if os.path.isfile(os.path.join(base, d, "config.json"))]
    return found or ["(no models in models/vlogger/video)"]


def folder_path(name: str) -> Path | None:
    for base in folder_paths.get_folder_paths(FOLDER):
        p = Path(base) / name
        if (p / "config.json").is_file():
            return p
    return None


def to_image(frames: torch.Tensor) -> torch.Tensor:
    return frames.permute(0, 2, 3, 1).contiguous().float()


# core argument -> this module's input names (the rest are called the same)
VIDEO_INPUTS = {"model": "video_model", "spec": "video_model", "dense": "dense_maps", "warped": "warped_maps"}


def clip_inputs(controls_tooltip: str) -> list:
    """The inputs every video node starts with, in this order (UI workflows store widgets by it)."""
    return [
        VideoModel.Input("video_model", tooltip="From VLOGGER_VideoModelLoader (a video model)."),
        io.Image.Input("reference", tooltip="The photo of the person (first image used; centre-cropped to a "
                                            "square and resized to the model's resolution)."),
        Controls.Input("controls", optional=True, tooltip=controls_tooltip),
        io.Image.Input("dense_maps", optional=True,
                       tooltip="Instead of 'controls': the dense maps C_d as an IMAGE batch (one per frame). "
                               "Body-part masks are then all zero, which a model trained with them handles worse."),
        io.Image.Input("warped_maps", optional=True,
                       tooltip="Instead of 'controls': the warped-reference maps C_w as an IMAGE batch "
                               "(same frame count and size as dense_maps)."),
    ]


WHOLE_VIDEO_CONTROLS = "Per-frame control maps for the whole video, at the model's resolution."
OVERLAP_INPUT = lambda: io.Int.Input(  # noqa: E731
    "overlap", default=4, min=1, max=256,
    tooltip="Frames each window re-uses from the previous one (1 .. N-1): quality vs run time.")
GUIDANCE_INPUT = lambda: io.Float.Input(  # noqa: E731
    "guidance", default=2.0, min=1.0, max=20.0, step=0.1,
    tooltip="Classifier-free guidance on controls + reference (1 = off, one pass per step; higher follows "
            "the controls more, costs a second pass).")


def video_inputs(node: str, video_model, reference, controls, dense_maps, warped_maps):
    """(model, reference [1,3,S,S], controls) for the core: VLOGGER_CONTROLS as given (a long
    video's set is sliced per window, never expanded at once), or dense + warped IMAGE batches
    with empty part masks; all checked against the model."""
    if controls is None and (dense_maps is None or warped_maps is None):
        raise input_error(node, "controls", "no control maps are connected",
                          "connect 'controls' from the control-map node, or both 'dense_maps' and 'warped_maps'")
    try:
        model = check_video_model(video_model)
        if controls is None:
            controls = control_channels_of(dense_maps[..., :3], warped_maps[..., :3], model.spec.num_parts)
        check_controls(model, controls)
        return model, square_reference(reference[0], model.spec.image_size), controls
    except VloggerError as e:
        raise node_error(node, e, VIDEO_INPUTS) from None


DIFFUSION_FIX = ("render fewer control frames at once (VLOGGER Render Controls' max_frames / start_frame), or use "
                 "VLOGGER Diffusion Video (streamed MP4: the windows and SR stages never sit in memory at once)")
SR_FIX = ("upscale fewer frames at once (e.g. ImageFromBatch), or use VLOGGER Diffusion Video with this SR stage "
          "(streamed MP4, flat memory)")


def check_frames_fit(node: str, model, controls, copies: int = 1) -> None:
    """Refuse, before sampling, generated frames (one per control frame, at the model's size;
    `copies` IMAGE batches of them held at once) that would not fit in free memory."""
    size = model.spec.image_size
    check_image_batch(node, "controls", control_layout(controls)[0], size, size, DIFFUSION_FIX, 3 * copies)


def batch_at_size(frames: int, size, scale: int = 1, channels: int = 3) -> tuple[int, int, int, int] | None:
    """batch_shape of a node that outputs `frames` frames at its input's size (height, width) times
    `scale`; None when the size is not known (the model decides it)."""
    return None if not size else (frames, size[0] * scale, size[1] * scale, channels)


SAMPLING_INPUTS = lambda: [  # noqa: E731
    io.Int.Input("steps", default=25, min=1, max=500,
                 tooltip="Denoising steps. More is slower and usually cleaner (20-50 typical)."),
    io.Int.Input("seed", default=0, min=0, max=2**63 - 1, control_after_generate=True,
                 tooltip="Random seed: the same seed and inputs give the same video."),
    io.Combo.Input("scheduler", options=sorted(SCHEDULERS), default="ddim",
                   tooltip="Sampler: ddim (deterministic DDIM) or dpmpp_2m (DPM-Solver++ 2M, good in few steps)."),
]


class VideoModelLoader(VloggerNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VLOGGER_VideoModelLoader",
            display_name="VLOGGER Load Video Diffusion Model",
            category="VLOGGER/video",
            description=(
                "Loads a trained VLOGGER stage-2 model folder from models/vlogger/video/: a video model "
                "(frozen base + control branch + temporal layers) or a super-resolution stage. A video "
                "model trained on a Stable Diffusion 1.x base also needs that SD 1.x checkpoint from "
                "models/checkpoints (loaded offline). No trained weights ship with the pack; folders "
                "named tiny-random-* are test fixtures whose output is noise."),
            inputs=[
                io.Combo.Input("model_folder", options=model_folders(),
                               tooltip="A folder in models/vlogger/video/ holding config.json + trained_parts.safetensors."),
                io.Combo.Input("checkpoint", options=[NO_CHECKPOINT] + folder_paths.get_filename_list("checkpoints"),
                               default=NO_CHECKPOINT,
                               tooltip="For latent (SD 1.x-based) video models: the single-file SD 1.x .safetensors "
                                       "it was trained on. Ignored for pixel-space models and SR stages."),
                io.Combo.Input("lora", options=lora_folders(), default=NO_LORA, optional=True,
                               tooltip="A personalization LoRA from models/vlogger/lora (VLOGGER Train LoRA); "
                                       "it must have been trained for this model."),
                io.Float.Input("lora_strength", default=1.0, min=-2.0, max=2.0, step=0.05, optional=True,
                               tooltip="How strongly the LoRA applies: 0 = the model without it, 1 = as trained."),
            ],
            outputs=[VideoModel.Output("video_model", tooltip="The loaded model for the VLOGGER video nodes.")],
        )

    @classmethod
    def execute(cls, model_folder, checkpoint, lora=NO_LORA, lora_strength=1.0) -> io.NodeOutput:
        node = "VLOGGER_VideoModelLoader"
        folder = folder_path(model_folder)
        if folder is None:
            raise input_error(node, "model_folder", f"'{model_folder}' is not a model folder in models/vlogger/video",
                              "put a trained folder (config.json + trained_parts.safetensors) there and refresh")
        ckpt = None
        if checkpoint != NO_CHECKPOINT:
            try:
                ckpt = folder_paths.get_full_path_or_raise("checkpoints", checkpoint)
            except Exception:
                raise input_error(node, "checkpoint", f"'{checkpoint}' is not in models/checkpoints",
                                  "pick an SD 1.x checkpoint from the list")
        try:
            model = load_model(folder, checkpoint=ckpt, device=device())
        except VloggerError as e:
            raise node_error(node, e, {"folder": "model_folder"}, default="model_folder") from None
        model.source_folder = model_folder  # a LoRA trained on it records the folder it was made for
        if lora and lora != NO_LORA:
            from vlogger_core.diffusion.lora import LoraError, apply_lora
            path = lora_path(lora)
            if path is None:
                raise input_error(node, "lora", f"'{lora}' is not in models/vlogger/lora", "pick one from the list")
            if isinstance(model, SuperResolutionModel):
                raise input_error(node, "lora", "LoRAs apply to video models, not SR stages", "set lora to (none)")
            try:
                apply_lora(model, path, lora_strength)
            except LoraError as e:
                raise node_error(node, e, {"folder": "lora", "strength": "lora_strength"}, default="lora",
                                 fix="pick a LoRA trained for this model folder") from None
        return io.NodeOutput(model)


class VideoSampler(VloggerNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VLOGGER_VideoSampler",
            display_name="VLOGGER Video Sampler (clip)",
            category="VLOGGER/video",
            description=(
                "Generates ONE clip of N frames (the model's clip length) of the person in the reference "
                "photo following the control maps, with the temporal diffusion model. For longer videos "
                "use VLOGGER_Outpaint. Needs trained weights: tiny-random models give noise."),
            inputs=[
                *clip_inputs("Per-frame control maps (dense, body parts, warped reference) "
                             "with exactly N frames at the model's resolution."),
                *SAMPLING_INPUTS(),
                GUIDANCE_INPUT(),
            ],
            outputs=[io.Image.Output("frames", tooltip="The N generated frames (IMAGE batch).")],
        )

    @classmethod
    def execute(cls, video_model, reference, steps, seed, scheduler, guidance, controls=None,
                dense_maps=None, warped_maps=None) -> io.NodeOutput:
        node = "VLOGGER_VideoSampler"
        model, ref, ctl = video_inputs(node, video_model, reference, controls, dense_maps, warped_maps)
        check_frames_fit(node, model, ctl, copies=2)        # the clip and its channels-last copy
        try:
            frames = sample_clip(model, ref, ctl, steps=steps, seed=seed, scheduler=scheduler, guidance=guidance,
                                 progress=progress_callback(), interrupt=interrupt_check)
        except VloggerError as e:
            raise node_error(node, e, VIDEO_INPUTS) from None
        return io.NodeOutput(to_image(frames))


class Outpaint(VloggerNode):
    BATCH_FIX = DIFFUSION_FIX   # what common.check_downstream_batches tells long speech to do

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VLOGGER_Outpaint",
            display_name="VLOGGER Temporal Outpainting (long video)",
            category="VLOGGER/video",
            description=(
                "Generates a video of any length: the first N frames, then repeatedly N - overlap new "
                "frames conditioned on the previous `overlap` frames (temporal outpainting). More overlap "
                "= smoother joins and slower. Needs trained weights: tiny-random models give noise."),
            inputs=[
                *clip_inputs(WHOLE_VIDEO_CONTROLS),
                OVERLAP_INPUT(),
                *SAMPLING_INPUTS(),
                GUIDANCE_INPUT(),
            ],
            outputs=[io.Image.Output("frames", tooltip="All generated frames, one per control frame (IMAGE batch).")],
        )

    @classmethod
    def batch_shape(cls, inputs: dict, frames: int, size=None) -> tuple[int, int, int, int] | None:
        """One frame per control frame, at the controls' size (common.check_downstream_batches)."""
        return batch_at_size(frames, size)

    @classmethod
    def execute(cls, video_model, reference, overlap, steps, seed, scheduler, guidance, controls=None,
                dense_maps=None, warped_maps=None) -> io.NodeOutput:
        node = "VLOGGER_Outpaint"
        model, ref, ctl = video_inputs(node, video_model, reference, controls, dense_maps, warped_maps)
        check_frames_fit(node, model, ctl)                  # written channels-last: one copy
        try:
            frames = outpaint_video(model, ref, ctl, overlap=overlap, steps=steps, seed=seed, scheduler=scheduler,
                                    guidance=guidance, progress=progress_callback(), interrupt=interrupt_check)
        except VloggerError as e:
            raise node_error(node, e, VIDEO_INPUTS) from None
        return io.NodeOutput(to_image(frames))


class SuperResolution(VloggerNode):
    BATCH_FIX = SR_FIX

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VLOGGER_SuperResolution",
            display_name="VLOGGER Super-Resolution (diffusion, x2)",
            category="VLOGGER/video",
            description=(
                "One stage of the VLOGGER cascade (128 -> 256 or 256 -> 512): a temporal diffusion model "
                "conditioned on the upsampled frames. Chain two for 512. Tiling bounds memory. ComfyUI's "
                "own 'Upscale Image (using Model)' can replace it. Needs trained weights."),
            inputs=[
                VideoModel.Input("sr_model", tooltip="From VLOGGER_VideoModelLoader (a super-resolution folder)."),
                io.Image.Input("images", tooltip="Frames at the stage's input resolution (e.g. 128x128)."),
                *SAMPLING_INPUTS(),
                io.Int.Input("tile", default=0, min=0, max=4096, step=8,
                             tooltip="Tile size in output pixels (0 = whole frame). Smaller uses less memory; "
                                     "on out-of-memory the tile is halved automatically (logged)."),
                io.Int.Input("tile_overlap", default=32, min=0, max=2048, step=8,
                             tooltip="Pixels neighbouring tiles share and blend (at most half the tile)."),
                io.Int.Input("window_overlap", default=0, min=0, max=256, optional=True,
                             tooltip="Frames each SR window re-uses from the previous one (0 .. N-1) so windows "
                                     "join without a jump; 0 = independent windows (fastest)."),
            ],
            outputs=[io.Image.Output("upscaled", tooltip="The frames at twice the resolution (IMAGE batch).")],
        )

    @classmethod
    def batch_shape(cls, inputs: dict, frames: int, size=None) -> tuple[int, int, int, int] | None:
        """Its input's frames at twice the size, held twice while they are joined (see execute)."""
        return batch_at_size(frames, size, scale=2, channels=2 * 3)

    @classmethod
    def execute(cls, sr_model, images, steps, seed, scheduler, tile, tile_overlap, window_overlap=0) -> io.NodeOutput:
        node = "VLOGGER_SuperResolution"
        if isinstance(sr_model, SuperResolutionModel) and torch.is_tensor(images) and images.ndim == 4:
            size = sr_model.spec.out_size      # the windows joined, then their channels-last copy: twice
            check_image_batch(node, "images", images.shape[0], size, size, SR_FIX, channels=2 * 3,
                              what=f"upscaled frames (x{size / max(1, images.shape[2]):g}, joined and copied)")
        try:
            out = super_resolve(sr_model, images[..., :3].permute(0, 3, 1, 2).float(), steps=steps, seed=seed,
                                scheduler=scheduler, tile=tile, overlap=tile_overlap, chunk_overlap=window_overlap,
                                progress=progress_callback(), interrupt=interrupt_check,
                                log=lambda m: log.warning("[%s] %s", node, m))
        except VloggerError as e:
            raise node_error(node, e, {"model": "sr_model", "spec": "sr_model", "frames": "images",
                                       "overlap": "tile_overlap", "chunk_overlap": "window_overlap"}) from None
        return io.NodeOutput(to_image(out))


class DiffusionVideo(VloggerNode):
    """Outpaint + SR cascade + MP4 in one stream: flat memory for any length."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VLOGGER_DiffusionVideo",
            display_name="VLOGGER Diffusion Video -> MP4 (streamed)",
            category="VLOGGER/video",
            description=(
                "The whole diffusion path in one pass with flat memory: temporal outpainting, then the "
                "optional super-resolution stages, each window written to an MP4 (with the speech) as soon "
                "as it exists, so a long video never sits in memory. Needs trained weights: tiny-random "
                "models give noise."),
            inputs=[
                *clip_inputs(WHOLE_VIDEO_CONTROLS),
                OVERLAP_INPUT(),
                *SAMPLING_INPUTS(),
                GUIDANCE_INPUT(),
                VideoModel.Input("sr_stage_1", optional=True, tooltip="Optional first SR stage (e.g. 128 -> 256)."),
                VideoModel.Input("sr_stage_2", optional=True, tooltip="Optional second SR stage (e.g. 256 -> 512)."),
                io.Int.Input("sr_steps", default=20, min=1, max=500, optional=True,
                             tooltip="Denoising steps of each SR stage."),
                io.Int.Input("sr_tile", default=0, min=0, max=4096, step=8, optional=True,
                             tooltip="SR tile size in output pixels (0 = whole frame); halved "
                                     "automatically on out-of-memory (logged)."),
                io.Int.Input("sr_window_overlap", default=1, min=0, max=256, optional=True,
                             tooltip="Frames each SR window re-uses from the previous one (0 = independent windows)."),
                io.Float.Input("fps", default=24.0, min=1.0, max=120.0, step=1.0,
                               tooltip="Frames per second of the controls (the motion's fps)."),
                io.String.Input("filename_prefix", default="vlogger/diffusion",
                                tooltip="Name (and optional subfolder) inside ComfyUI's output folder."),
                io.Audio.Input("audio", optional=True, tooltip="The speech to mux in."),
            ],
            outputs=[io.String.Output("path", tooltip="Absolute path of the written MP4.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, video_model, reference, overlap, steps, seed, scheduler, guidance, fps, filename_prefix,
                controls=None, dense_maps=None, warped_maps=None, sr_stage_1=None, sr_stage_2=None,
                sr_steps=20, sr_tile=0, sr_window_overlap=1, audio=None) -> io.NodeOutput:
        node = "VLOGGER_DiffusionVideo"
        inputs = {**VIDEO_INPUTS, "sr_stages[0]": "sr_stage_1", "sr_stages[1]": "sr_stage_2"}
        model, ref, ctl = video_inputs(node, video_model, reference, controls, dense_maps, warped_maps)
        wave, sr_rate = audio_input(node, audio)
        stages, tile_overlap = (sr_stage_1, sr_stage_2), min(32, sr_tile // 2)
        try:
            _, size = sr_chain(model.spec.image_size, stages, sr_window_overlap, sr_tile, tile_overlap)
            path, file, subfolder = output_path(node, filename_prefix, size, size)
            write_diffusion_video(path, model, ref, ctl, fps=fps, audio=wave, sample_rate=sr_rate, overlap=overlap,
                                  steps=steps, seed=seed, scheduler=scheduler, guidance=guidance, sr_stages=stages,
                                  sr_steps=sr_steps, sr_tile=sr_tile, sr_tile_overlap=tile_overlap,
                                  sr_window_overlap=sr_window_overlap, progress=progress_callback(),
                                  interrupt=interrupt_check, log=lambda m: log.warning("[%s] %s", node, m))
        except VloggerError as e:
            raise node_error(node, e, inputs) from None
        return io.NodeOutput(path, ui=ui.PreviewVideo([ui.SavedResult(file, subfolder, io.FolderType.output)]))


NODES = [VideoModelLoader, VideoSampler, Outpaint, SuperResolution, DiffusionVideo]
