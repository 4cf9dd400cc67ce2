"""Control-map rendering node: motion + fit -> dense, semantic and warped-reference maps."""
from __future__ import annotations

import torch
from comfy_api.latest import io

from vlogger_core.body.model import PART_NAMES
from vlogger_core.errors import VloggerError
from vlogger_core.render.controls import BYTES_PER_PIXEL, render_motion

from .common import (
    VloggerNode,
    check_image_batch,
    frames_input,
    input_error,
    interrupt_check,
    node_error,
    progress_callback,
    sized_shape,
)
from .types import Body, Controls, Fit, Motion

NODE = "VLOGGER_RenderControls"
# Part groups offered besides the single parts (only the members a body has are used).
GROUPS = {
    "mouth (lips + interior + teeth + tongue)": ["lips", "mouth_interior", "teeth", "tongue"],
    "head (face, mouth, eyes, brows, hair, ears)": ["face_skin", "lips", "mouth_interior",
                                                    "teeth", "tongue", "eyes", "eyebrows",
                                                    "scalp_hair", "ears"],
    "whole body": None,
}
PART_OPTIONS = list(GROUPS) + PART_NAMES[1:]
REF_RASTER_MAX = 1024        # reference visibility is rasterized at most this size (long side)
# the maps, their previews and the masks it outputs, as float32 values per pixel (the free-memory check)
MAP_CHANNELS = -(-BYTES_PER_PIXEL // 4)
SIZE_FIX = ("render fewer frames at once (max_frames, from start_frame) or a smaller width / height; "
            "for a long diffusion video use VLOGGER Diffusion Video (streamed MP4, controls sliced per window)")


def _part_mask(controls, choice: str) -> torch.Tensor:
    if choice == "whole body":
        return controls.alpha.clone()
    names = GROUPS.get(choice, [choice])
    present = [n for n in names if n in controls.part_names]
    if not present:
        raise input_error(NODE, "mask_part", f"the body has no part '{choice}'",
                          f"pick one of: {', '.join(controls.part_names[1:])}")
    return controls.mask(present)


class RenderControls(VloggerNode):
    BATCH_FIX = SIZE_FIX     # what common.check_downstream_batches tells long speech to do

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=NODE,
            display_name="VLOGGER Render Controls (dense / semantic / warped)",
            category="VLOGGER/render",
            description=(
                "Poses the body for each frame of the motion (the reference pose plus the "
                "motion's residuals and expressions) and rasterizes it with the camera fitted to "
                "the photo. Outputs VLOGGER's 2D controls: the dense map (each pixel shows the "
                "rest-pose position of the body point under it as a colour), the semantic map "
                "(body parts colour-coded), and the warped reference (the photo's colours carried "
                "by the body into the new pose; black where the photo did not see that part, "
                "e.g. the inside of the mouth). Also a MASK of a chosen part per frame (e.g. the "
                "mouth, for inpainting) and the full control set for the video diffusion nodes. "
                "Without a motion it renders the reference pose as one frame."),
            inputs=[
                Body.Input("body", tooltip="The body model (VLOGGER_BodyModelLoader)."),
                Fit.Input("fit", tooltip="The reference fit of the photo (VLOGGER_FitReference)."),
                Motion.Input("motion", optional=True,
                             tooltip="The motion to render. Leave empty to render the fitted "
                                     "reference pose as a single frame."),
                io.Int.Input("width", default=256, min=16, max=4096, step=8,
                             tooltip="Width of the maps in pixels. Another aspect than the "
                                     "photo's crops the photo's view at the centre."),
                io.Int.Input("height", default=256, min=16, max=4096, step=8,
                             tooltip="Height of the maps in pixels."),
                io.Int.Input("start_frame", default=0, min=0, max=10_000_000,
                             tooltip="First frame of the motion to render (ignored without one)."),
                io.Int.Input("max_frames", default=0, min=0, max=100_000,
                             tooltip="How many frames to render; 0 = all up to the motion's end."),
                io.Combo.Input("mask_part", options=PART_OPTIONS, default=PART_OPTIONS[0],
                               tooltip="Which body part the 'mask' output shows (1 where it is "
                                       "visible), e.g. the mouth for inpainting."),
            ],
            outputs=[
                io.Image.Output("dense", tooltip="Dense maps C_d [N,H,W,3]: rest-pose position "
                                                 "under each pixel as RGB, black background."),
                io.Image.Output("semantic", tooltip="Semantic maps C_m colour-coded by part "
                                                    "[N,H,W,3] (for viewing; the part ids are in "
                                                    "'controls')."),
                io.Image.Output("warped", tooltip="Warped reference C_w [N,H,W,3]: the photo's "
                                                  "colours on the posed body, black where unseen."),
                Controls.Output("controls", tooltip="All maps (dense, part ids, warped, alpha, "
                                                    "depth) for the video diffusion nodes."),
                io.Mask.Output("mask", tooltip="The chosen part, [N,H,W] 0/1 per frame."),
                io.Mask.Output("body_mask", tooltip="Where the body is, [N,H,W] 0/1 per frame."),
            ],
        )

    @classmethod
    def batch_shape(cls, inputs: dict, frames: int, size=None) -> tuple[int, int, int, int] | None:
        """(frames, height, width, float32 values per pixel) of the maps this node would hold for a
        motion of `frames` frames, from its literal inputs (common.check_downstream_batches)."""
        return sized_shape(inputs, frames, MAP_CHANNELS)

    @classmethod
    def execute(cls, body, fit, width, height, start_frame, max_frames, mask_part,
                motion=None) -> io.NodeOutput:
        n = 1 if motion is None else motion.num_frames
        start = 0 if motion is None else start_frame
        stop = n if max_frames == 0 else min(n, start + max_frames)
        check_image_batch(NODE, "width" if motion is None else frames_input(max_frames), max(0, stop - start),
                          height, width, SIZE_FIX, MAP_CHANNELS, what="control maps (dense, semantic, "
                          "warped, masks, depth)")
        try:
            c = render_motion(body, fit, motion, width, height, start, stop, chunk=16, device="cpu",
                              ref_resolution=REF_RASTER_MAX, progress=progress_callback(),
                              interrupt=interrupt_check)
        except VloggerError as e:
            raise node_error(NODE, e, {"start": "start_frame"}) from None
        return io.NodeOutput(c.dense, c.semantic_rgb(), c.warped, c, _part_mask(c, mask_part),
                             c.alpha.clone())


NODES = [RenderControls]
