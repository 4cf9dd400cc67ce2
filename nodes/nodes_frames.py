"""Frames without diffusion weights: the default talking-video path (warp-and-composite)."""
from __future__ import annotations

import torch
from comfy_api.latest import io, ui

from vlogger_core.errors import VloggerError
from vlogger_core.render.controls import check_body_inputs
from vlogger_core.render.talking_video import (
    TalkingVideoRenderer,
    output_size,
    write_talking_video,
)

from .common import (
    VloggerNode,
    check_image_batch,
    device,
    input_error,
    interrupt_check,
    node_error,
    progress_callback,
    ranged_count,
)
from .nodes_output import audio_input, output_path
from .types import Body, Fit, Motion

RESOLUTIONS = ["256", "512", "photo"]
RES_TOOLTIP = ("Output size: 256x256, 512x512, or 'photo' (the photo's aspect, long side 512, "
               "rounded to multiples of 8).")
MAX_BATCH_FRAMES = 20000  # an IMAGE batch this long at 512 is ~60 GB: use the streaming node
RENDER_INPUTS = lambda: [  # noqa: E731
    Body.Input("body", tooltip="The body model the fit and motion were made for."),
    Fit.Input("fit", tooltip="The reference fit of the photo (VLOGGER_FitReference)."),
    Motion.Input("motion", tooltip="The motion to render (VLOGGER_MotionSampler)."),
]


def _renderer(body, fit, motion, resolution: str) -> TalkingVideoRenderer:
    """The renderer, once the fit and the motion are known to be made for this body."""
    check_body_inputs(body, fit, motion)
    return TalkingVideoRenderer(body, fit, *output_size(fit, resolution), device())


class RenderFrames(VloggerNode):
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
                *RENDER_INPUTS(),
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
    def batch_shape(cls, inputs: dict, frames: int) -> tuple[int, int, int] | None:
        """(frames, height, width) of the IMAGE batch this node would make from a motion of
        `frames` frames, from its literal inputs ('photo': the largest, 512x512); for the
        refusal of long speech before the work upstream of it (common.check_downstream_batches)."""
        size = {"256": 256, "512": 512, "photo": 512}.get(inputs.get("resolution"))
        n = ranged_count(frames, inputs)
        return None if size is None or n is None else (n, size, size)

    @classmethod
    def execute(cls, body, fit, motion, resolution, start_frame, max_frames) -> io.NodeOutput:
        node = "VLOGGER_RenderFrames"
        stop = motion.num_frames if max_frames == 0 else min(motion.num_frames, start_frame + max_frames)
        if stop - start_frame > MAX_BATCH_FRAMES:
            raise input_error(node, "max_frames", f"{stop - start_frame} frames would not fit in memory "
                              "as one IMAGE batch", "render in parts or use VLOGGER_TalkingVideo")
        try:
            r = _renderer(body, fit, motion, resolution)
            check_image_batch(node, "max_frames" if max_frames else "motion", max(0, stop - start_frame),
                              r.height, r.width)
            frames = r.render_range(motion, start_frame, stop, progress=progress_callback(), interrupt=interrupt_check)
        except VloggerError as e:
            raise node_error(node, e, {"start": "start_frame"}) from None
        return io.NodeOutput(torch.from_numpy(frames), float(motion.fps))


class TalkingVideo(VloggerNode):
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
                *RENDER_INPUTS(),
                io.Audio.Input("audio", tooltip="The speech the motion was made from; muxed into the MP4."),
                io.Combo.Input("resolution", options=RESOLUTIONS, default="256", tooltip=RES_TOOLTIP),
                io.Int.Input("window", default=48, min=8, max=480,
                             tooltip="The most frames rendered at once (progress and Cancel act between windows). "
                             "At large sizes the renderer uses fewer: about 24 MB of frames is fastest."),
                io.String.Input("filename_prefix", default="vlogger/talking",
                                tooltip="Name (and optional subfolder) inside ComfyUI's output folder."),
            ],
            outputs=[io.String.Output("path", tooltip="Absolute path of the written MP4.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, body, fit, motion, audio, resolution, window, filename_prefix) -> io.NodeOutput:
        node = "VLOGGER_TalkingVideo"
        wave, sr = audio_input(node, audio)
        try:
            r = _renderer(body, fit, motion, resolution)
            path, file, subfolder = output_path(node, filename_prefix, r.width, r.height)
            write_talking_video(path, r, motion, wave, sr, window, progress_callback(), interrupt_check)
        except VloggerError as e:
            raise node_error(node, e) from None
        return io.NodeOutput(path, ui=ui.PreviewVideo([ui.SavedResult(file, subfolder, io.FolderType.output)]))


NODES = [RenderFrames, TalkingVideo]
