"""Frames without diffusion weights: the default talking-video path (warp-and-composite)."""
from __future__ import annotations

import torch
from comfy_api.latest import io, ui

from vlogger_core.render.talking_video import (
    TalkingVideoRenderer,
    output_size,
    write_talking_video,
)

from .common import device, input_error, interrupt_check, progress_callback
from .nodes_output import audio_mono, output_path
from .types import Body, Fit, Motion

RESOLUTIONS = ["256", "512", "photo"]
RES_TOOLTIP = ("Output size: 256x256, 512x512, or 'photo' (the photo's aspect, long side 512, "
               "rounded to multiples of 8).")
MAX_BATCH_FRAMES = 20000  # an IMAGE batch this long at 512 is ~60 GB: use the streaming node


def _check_pair(node_id: str, body, fit, motion) -> None:
    if getattr(fit, "body_name", body.name) != body.name:
        raise input_error(node_id, "fit", f"was fitted with body '{fit.body_name}', not '{body.name}'",
                          "connect the same VLOGGER_BodyModelLoader to the fit and to this node")
    if motion is not None and motion.expression_set != body.expression_set:
        raise input_error(node_id, "motion", f"drives the '{motion.expression_set}' expression set but "
                          f"the body uses '{body.expression_set}'",
                          "use a motion model trained for this body, or load the matching body")


def _renderer(node_id: str, body, fit, resolution: str) -> TalkingVideoRenderer:
    if resolution not in RESOLUTIONS:
        raise input_error(node_id, "resolution", f"'{resolution}' is not offered", "pick 256, 512 or photo")
    w, h = output_size(fit, resolution)
    return TalkingVideoRenderer(body, fit, w, h, device())


class RenderFrames(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VLOGGER_RenderFrames",
            display_name="VLOGGER Render Frames (no diffusion)",
            category="VLOGGER/frames",
            description=(
                "Turns a motion into video frames without any diffusion weights: the photo is "
                "warped along the posed 3D body (lips, eyelids, head, arms and hair follow the "
                "mesh), the mouth interior is painted from the mesh's mouth parts, and the person "
                "is composited over an inpainted background plate. Outputs an IMAGE batch for "
                "VLOGGER_SaveVideo, VideoHelperSuite or any upscaler. For long audio use "
                "VLOGGER_TalkingVideo, which streams to MP4 with flat memory."),
            inputs=[
                Body.Input("body", tooltip="The body model the fit and motion were made for."),
                Fit.Input("fit", tooltip="The reference fit of the photo (VLOGGER_FitReference)."),
                Motion.Input("motion", tooltip="The motion to render (VLOGGER_MotionSampler)."),
                io.Combo.Input("resolution", options=RESOLUTIONS, default="256", tooltip=RES_TOOLTIP),
                io.Int.Input("start_frame", default=0, min=0, max=10_000_000,
                             tooltip="First frame of the motion to render."),
                io.Int.Input("max_frames", default=0, min=0, max=MAX_BATCH_FRAMES,
                             tooltip="How many frames to render; 0 = all (up to the motion's end)."),
            ],
            outputs=[io.Image.Output("frames", tooltip="The frames [N, H, W, 3]."),
                     io.Float.Output("fps", tooltip="The motion's frame rate, for the video writer.")],
        )

    @classmethod
    def execute(cls, body, fit, motion, resolution, start_frame, max_frames) -> io.NodeOutput:
        node = "VLOGGER_RenderFrames"
        _check_pair(node, body, fit, motion)
        n = motion.num_frames
        if start_frame >= n:
            raise input_error(node, "start_frame", f"{start_frame} is past the motion's {n} frames",
                              f"use a start_frame below {n}")
        stop = n if max_frames == 0 else min(n, start_frame + max_frames)
        if stop - start_frame > MAX_BATCH_FRAMES:
            raise input_error(node, "max_frames", f"{stop - start_frame} frames would not fit in memory "
                              "as one IMAGE batch", "render in parts or use VLOGGER_TalkingVideo")
        r = _renderer(node, body, fit, resolution)
        progress = progress_callback(stop - start_frame)
        chunks = []
        for s in range(start_frame, stop, 48):
            interrupt_check()
            e = min(stop, s + 48)
            chunks.append(torch.from_numpy(r.render(motion, s, e)))
            progress(e - start_frame, stop - start_frame)
        return io.NodeOutput(torch.cat(chunks), float(motion.fps))


class TalkingVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VLOGGER_TalkingVideo",
            display_name="VLOGGER Talking Video (streaming MP4)",
            category="VLOGGER/frames",
            description=(
                "Renders a motion of any length straight into an MP4 with the speech muxed in, "
                "window by window, so memory stays flat (10 minutes use about what 1 minute "
                "does). Same frames as VLOGGER_RenderFrames. The file is written under a "
                "temporary name and renamed when complete; Cancel leaves no partial file."),
            inputs=[
                Body.Input("body", tooltip="The body model the fit and motion were made for."),
                Fit.Input("fit", tooltip="The reference fit of the photo (VLOGGER_FitReference)."),
                Motion.Input("motion", tooltip="The motion to render (VLOGGER_MotionSampler)."),
                io.Audio.Input("audio", tooltip="The speech the motion was made from; muxed into the MP4."),
                io.Combo.Input("resolution", options=RESOLUTIONS, default="256", tooltip=RES_TOOLTIP),
                io.Int.Input("window", default=48, min=8, max=480,
                             tooltip="Frames rendered per window: more is a little faster, uses more memory."),
                io.String.Input("filename_prefix", default="vlogger/talking",
                                tooltip="Name (and optional subfolder) inside ComfyUI's output folder."),
            ],
            outputs=[io.String.Output("path", tooltip="Absolute path of the written MP4.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, body, fit, motion, audio, resolution, window, filename_prefix) -> io.NodeOutput:
        node = "VLOGGER_TalkingVideo"
        _check_pair(node, body, fit, motion)
        wave, sr = audio_mono(audio, node)
        r = _renderer(node, body, fit, resolution)
        path, file, subfolder = output_path(node, filename_prefix, r.width, r.height)
        write_talking_video(path, r, motion, wave, sr, window,
                            progress_callback(motion.num_frames), interrupt_check)
        return io.NodeOutput(path, ui=ui.PreviewVideo([ui.SavedResult(file, subfolder, io.FolderType.output)]))


NODES = [RenderFrames, TalkingVideo]
