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
import torch.nn.functional as F
from comfy_api.latest import io, ui

from vlogger_core.diffusion.model import VideoDiffusionModel
from vlogger_core.diffusion.outpainting import outpaint
from vlogger_core.diffusion.sampling import SCHEDULERS, control_layout, sample_clip
from vlogger_core.diffusion.stream import diffusion_frames
from vlogger_core.diffusion.super_resolution import (
    SuperResolutionModel,
    sr_windows,
    super_resolve,
)
from vlogger_core.diffusion.weights import load_model
from vlogger_core.render.video_writer import StreamingMP4Writer

from .common import device, input_error, interrupt_check, progress_callback
from .nodes_output import audio_mono, output_path
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


def to_bchw(images: torch.Tensor) -> torch.Tensor:
    return images.permute(0, 3, 1, 2).float()


def to_image(frames: torch.Tensor) -> torch.Tensor:
    return frames.permute(0, 2, 3, 1).contiguous().float()


def square_reference(node: str, image: torch.Tensor, size: int) -> torch.Tensor:
    """IMAGE -> [1, 3, size, size]: first image, centre-cropped to a square, resized."""
    if image.dim() != 4 or image.shape[-1] < 3:
        raise input_error(node, "reference", f"expected an IMAGE [B,H,W,3], got {tuple(image.shape)}",
                          "connect a LoadImage output (the photo of the person)")
    x = to_bchw(image[:1, ..., :3])
    h, w = x.shape[-2:]
    s = min(h, w)
    x = x[..., (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    if s != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0, 1)


def check_video_model(node: str, model) -> VideoDiffusionModel:
    if not isinstance(model, VideoDiffusionModel):
        raise input_error(node, "video_model", "is a super-resolution model, not a video model",
                          "load a video-model folder (config kind 'video') with VLOGGER_VideoModelLoader")
    return model


def control_tensor(node: str, model: VideoDiffusionModel, controls):
    """Validate controls (a Controls set or a channels tensor) against the model; returned as
    given, so a long video's Controls is sliced per window instead of expanded at once."""
    s = model.spec
    try:
        frames, channels, h, w = control_layout(controls)
    except ValueError as e:
        raise input_error(node, "controls", str(e), "connect 'controls' from VLOGGER_RenderControls")
    want = 3 + s.num_parts + 3
    if channels != want:
        raise input_error(node, "controls", f"have {channels} channels ({channels - 6} body parts) but this model "
                          f"takes {want} (dense 3 + {s.num_parts} body parts + warped 3)",
                          "render the controls with the body model (part list) the video model was trained with")
    if (h, w) != (s.image_size, s.image_size):
        raise input_error(node, "controls", f"are {w}x{h} but this model takes {s.image_size}x{s.image_size}",
                          f"render the controls at {s.image_size}x{s.image_size}")
    if frames < 1:
        raise input_error(node, "controls", "hold no frames", "render at least one frame")
    return controls if not torch.is_tensor(controls) else controls.float()


IMAGE_CONTROL_INPUTS = lambda: [  # noqa: E731
    io.Image.Input("dense_maps", optional=True,
                   tooltip="Instead of 'controls': the dense maps C_d as an IMAGE batch (one per frame). "
                           "Body-part masks are then all zero, which a model trained with them handles worse."),
    io.Image.Input("warped_maps", optional=True,
                   tooltip="Instead of 'controls': the warped-reference maps C_w as an IMAGE batch "
                           "(same frame count and size as dense_maps)."),
]


def gather_controls(node: str, model: VideoDiffusionModel, controls, dense_maps, warped_maps) -> torch.Tensor:
    """VLOGGER_CONTROLS, or dense + warped IMAGE batches with empty part masks."""
    if controls is not None:
        return control_tensor(node, model, controls)
    if dense_maps is None or warped_maps is None:
        raise input_error(node, "controls", "no control maps are connected",
                          "connect 'controls' from the control-map node, or both 'dense_maps' and 'warped_maps'")
    if dense_maps.shape != warped_maps.shape:
        raise input_error(node, "warped_maps", f"shape {tuple(warped_maps.shape)} differs from dense_maps "
                          f"{tuple(dense_maps.shape)}", "give both one image per frame at the same size")
    d, w = to_bchw(dense_maps[..., :3]), to_bchw(warped_maps[..., :3])
    parts = torch.zeros(d.shape[0], model.spec.num_parts, *d.shape[-2:])
    return control_tensor(node, model, torch.cat([d, parts, w], 1))


SAMPLING_INPUTS = lambda: [  # noqa: E731
    io.Int.Input("steps", default=25, min=1, max=500,
                 tooltip="Denoising steps. More is slower and usually cleaner (20-50 typical)."),
    io.Int.Input("seed", default=0, min=0, max=2**63 - 1, control_after_generate=True,
                 tooltip="Random seed: the same seed and inputs give the same video."),
    io.Combo.Input("scheduler", options=sorted(SCHEDULERS), default="ddim",
                   tooltip="Sampler: ddim (deterministic DDIM) or dpmpp_2m (DPM-Solver++ 2M, good in few steps)."),
]


class VideoModelLoader(io.ComfyNode):
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
        except ValueError as e:
            name = "checkpoint" if ("checkpoint" in str(e) or "Stable Diffusion" in str(e)) else "model_folder"
            raise input_error(node, name, str(e), "choose a matching model folder / SD 1.x checkpoint")
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
                raise input_error(node, "lora", str(e), "pick a LoRA trained for this model folder")
        return io.NodeOutput(model)


class VideoSampler(io.ComfyNode):
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
                VideoModel.Input("video_model", tooltip="From VLOGGER_VideoModelLoader (a video model)."),
                io.Image.Input("reference", tooltip="The photo of the person (first image used; centre-cropped to a "
                                                     "square and resized to the model's resolution)."),
                Controls.Input("controls", optional=True,
                               tooltip="Per-frame control maps (dense, body parts, warped reference) "
                                       "with exactly N frames at the model's resolution."),
                *IMAGE_CONTROL_INPUTS(),
                *SAMPLING_INPUTS(),
                io.Float.Input("guidance", default=2.0, min=1.0, max=20.0, step=0.1,
                               tooltip="Classifier-free guidance on controls + reference (1 = off, one pass per "
                                       "step; higher follows the controls more, costs a second pass)."),
            ],
            outputs=[io.Image.Output("frames", tooltip="The N generated frames (IMAGE batch).")],
        )

    @classmethod
    def execute(cls, video_model, reference, steps, seed, scheduler, guidance, controls=None,
                dense_maps=None, warped_maps=None) -> io.NodeOutput:
        node = "VLOGGER_VideoSampler"
        model = check_video_model(node, video_model)
        ctl = gather_controls(node, model, controls, dense_maps, warped_maps)
        if control_layout(ctl)[0] != model.spec.num_frames:
            raise input_error(node, "controls", f"hold {control_layout(ctl)[0]} frames but this model makes clips of "
                              f"{model.spec.num_frames}", "use VLOGGER_Outpaint for other lengths")
        ref = square_reference(node, reference, model.spec.image_size)
        frames = sample_clip(model, ref, ctl, steps=steps, seed=seed, scheduler=scheduler, guidance=guidance,
                             progress=progress_callback(steps), interrupt=interrupt_check)
        return io.NodeOutput(to_image(frames))


class Outpaint(io.ComfyNode):
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
                VideoModel.Input("video_model", tooltip="From VLOGGER_VideoModelLoader (a video model)."),
                io.Image.Input("reference", tooltip="The photo of the person (first image used; centre-cropped to a "
                                                     "square and resized to the model's resolution)."),
                Controls.Input("controls", optional=True,
                               tooltip="Per-frame control maps for the whole video, at the model's resolution."),
                *IMAGE_CONTROL_INPUTS(),
                io.Int.Input("overlap", default=4, min=1, max=256,
                             tooltip="Frames each window re-uses from the previous one (1 .. N-1): quality vs run time."),
                *SAMPLING_INPUTS(),
                io.Float.Input("guidance", default=2.0, min=1.0, max=20.0, step=0.1,
                               tooltip="Classifier-free guidance on controls + reference (1 = off)."),
            ],
            outputs=[io.Image.Output("frames", tooltip="All generated frames, one per control frame (IMAGE batch).")],
        )

    @classmethod
    def execute(cls, video_model, reference, overlap, steps, seed, scheduler, guidance, controls=None,
                dense_maps=None, warped_maps=None) -> io.NodeOutput:
        node = "VLOGGER_Outpaint"
        model = check_video_model(node, video_model)
        ctl = gather_controls(node, model, controls, dense_maps, warped_maps)
        n = model.spec.num_frames
        if not 1 <= overlap < n:
            raise input_error(node, "overlap", f"{overlap} is not between 1 and N-1 = {n - 1} (N = {n} frames "
                              "per window; each window must make new frames and re-use at least one)",
                              f"set overlap to a value from 1 to {n - 1} (e.g. {max(1, n // 2)})")
        ref = square_reference(node, reference, model.spec.image_size)
        total = control_layout(ctl)[0]
        windows = 1 if total <= n else 1 + -(-(total - n) // (n - overlap))
        out = torch.empty(total, model.spec.image_size, model.spec.image_size, 3)
        for w in outpaint(model, ref, ctl, overlap=overlap, steps=steps, seed=seed, scheduler=scheduler,
                          guidance=guidance, progress=progress_callback(windows * steps), interrupt=interrupt_check):
            out[w.new_start:w.new_start + w.frames.shape[0]] = to_image(w.frames)
        return io.NodeOutput(out)


class SuperResolution(io.ComfyNode):
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
    def execute(cls, sr_model, images, steps, seed, scheduler, tile, tile_overlap, window_overlap=0) -> io.NodeOutput:
        node = "VLOGGER_SuperResolution"
        if not isinstance(sr_model, SuperResolutionModel):
            raise input_error(node, "sr_model", "is a video model, not a super-resolution stage",
                              "load an SR folder (config kind 'super_resolution')")
        s = sr_model.spec
        if images.dim() != 4 or tuple(images.shape[1:3]) != (s.in_size, s.in_size):
            raise input_error(node, "images", f"are {tuple(images.shape[1:3])} but this stage takes "
                              f"{s.in_size}x{s.in_size}", f"feed {s.in_size}x{s.in_size} frames (the previous stage's output)")
        if tile and (tile % sr_model.multiple or tile_overlap > tile // 2):
            raise input_error(node, "tile", f"tile {tile} / overlap {tile_overlap} do not fit this model",
                              f"use a tile that is a multiple of {sr_model.multiple} and an overlap <= tile/2, or 0")
        if window_overlap >= s.num_frames:
            raise input_error(node, "window_overlap", f"{window_overlap} is not below the SR window of "
                              f"{s.num_frames} frames", f"use 0 .. {s.num_frames - 1}")
        chunks = sr_windows(images.shape[0], s.num_frames, window_overlap)
        out = super_resolve(sr_model, to_bchw(images[..., :3]), steps=steps, seed=seed, scheduler=scheduler,
                            tile=tile, overlap=tile_overlap, chunk_overlap=window_overlap,
                            progress=progress_callback(chunks * steps), interrupt=interrupt_check,
                            log=lambda m: log.warning("[%s] %s", node, m))
        return io.NodeOutput(to_image(out))


class DiffusionVideo(io.ComfyNode):
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
                VideoModel.Input("video_model", tooltip="From VLOGGER_VideoModelLoader (a video model)."),
                io.Image.Input("reference", tooltip="The photo of the person (centre-cropped, resized)."),
                Controls.Input("controls", optional=True,
                               tooltip="Per-frame control maps for the whole video, at the model's resolution."),
                *IMAGE_CONTROL_INPUTS(),
                io.Int.Input("overlap", default=4, min=1, max=256,
                             tooltip="Frames each window re-uses from the previous one (1 .. N-1)."),
                *SAMPLING_INPUTS(),
                io.Float.Input("guidance", default=2.0, min=1.0, max=20.0, step=0.1,
                               tooltip="Classifier-free guidance on controls + reference (1 = off)."),
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
        model = check_video_model(node, video_model)
        ctl = gather_controls(node, model, controls, dense_maps, warped_maps)
        n = model.spec.num_frames
        if not 1 <= overlap < n:
            raise input_error(node, "overlap", f"{overlap} is not between 1 and N-1 = {n - 1}",
                              f"set overlap to a value from 1 to {n - 1}")
        stages, size = [], model.spec.image_size
        for name, sr in (("sr_stage_1", sr_stage_1), ("sr_stage_2", sr_stage_2)):
            if sr is None:
                continue
            if not isinstance(sr, SuperResolutionModel):
                raise input_error(node, name, "is a video model, not a super-resolution stage",
                                  "load an SR folder (config kind 'super_resolution')")
            if sr.spec.in_size != size:
                raise input_error(node, name, f"takes {sr.spec.in_size}x{sr.spec.in_size} frames but gets {size}x{size}",
                                  "connect the stages in order of resolution (128->256 first)")
            if sr_window_overlap >= sr.spec.num_frames:
                raise input_error(node, "sr_window_overlap", f"{sr_window_overlap} is not below the SR window of "
                                  f"{sr.spec.num_frames} frames", f"use 0 .. {sr.spec.num_frames - 1}")
            if sr_tile and (sr_tile % sr.multiple):
                raise input_error(node, "sr_tile", f"{sr_tile} is not a multiple of {sr.multiple}",
                                  f"use a multiple of {sr.multiple} or 0")
            stages.append(sr)
            size = sr.spec.out_size
        ref = square_reference(node, reference, model.spec.image_size)
        total = control_layout(ctl)[0]
        wave, sr_rate = audio_mono(audio, node)
        if wave is not None:
            want = int(round(total / fps * sr_rate))
            wave = torch.nn.functional.pad(wave[:want], (0, max(0, want - wave.shape[0])))
        path, file, subfolder = output_path(node, filename_prefix, size, size)
        bar = progress_callback(1)
        with StreamingMP4Writer(path, fps, size, size, wave, sr_rate) as writer:
            for frames in diffusion_frames(model, ref, ctl, overlap=overlap, steps=steps, seed=seed,
                                           scheduler=scheduler, guidance=guidance, sr_stages=stages,
                                           sr_steps=sr_steps, sr_tile=sr_tile, sr_tile_overlap=min(32, sr_tile // 2),
                                           sr_window_overlap=sr_window_overlap,
                                           progress=bar, interrupt=interrupt_check,
                                           log=lambda m: log.warning("[%s] %s", node, m)):
                writer.write(to_image(frames))
        return io.NodeOutput(path, ui=ui.PreviewVideo([ui.SavedResult(file, subfolder, io.FolderType.output)]))


NODES = [VideoModelLoader, VideoSampler, Outpaint, SuperResolution, DiffusionVideo]
