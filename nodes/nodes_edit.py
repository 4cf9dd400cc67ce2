"""Editing nodes: re-dub an existing video with new speech, regenerating only a region."""
from __future__ import annotations

import numpy as np
import torch
from comfy_api.latest import io

from vlogger_core.inpainting import REGIONS, InpaintError, RedubSettings, redub_frames
from vlogger_core.motion_params import Motion

from .common import device, input_error, interrupt_check, progress_callback
from .nodes_body import Body
from .nodes_motion import MotionType

NODE = "VLOGGER_RegionInpaint"
MAX_FRAMES = 20_000


class RegionInpaint(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=NODE,
            display_name="VLOGGER Region Inpaint (re-dub a video)",
            category="VLOGGER/edit",
            description=(
                "Re-dubs an existing video of a person with new speech: only the chosen region "
                "(mouth, eyes or face) is regenerated, every other pixel is the original's. The "
                "body is fitted to the first frame, the face is tracked through the video, the "
                "new motion's region (e.g. jaw and mouth) is rendered with the default renderer "
                "and composited through a feathered mask from the body's semantic maps. The "
                "output has the motion's length: a shorter video is played back and forth. "
                "Connect the new speech to VLOGGER Save Video."),
            inputs=[
                io.Image.Input("images", tooltip="The original video's frames (e.g. from Get Video "
                                                 "Components), a person facing the camera."),
                Body.Input("body", tooltip="The body model (VLOGGER_BodyModelLoader)."),
                MotionType.Input("motion", tooltip="Motion from the NEW speech (VLOGGER_MotionSampler "
                                                   "at the video's fps)."),
                io.Combo.Input("region", options=list(REGIONS), default="mouth",
                               tooltip="What to regenerate: mouth (lips, teeth, jaw motion), eyes "
                                       "(blinks, gaze) or the whole face."),
                io.Int.Input("dilate", default=6, min=0, max=64,
                             tooltip="Pixels the region grows by, to cover the old mouth's motion "
                                     "(about 2-3% of the frame width)."),
                io.Int.Input("feather", default=4, min=0, max=64,
                             tooltip="Width in pixels of the soft edge outside the region; beyond it "
                                     "the original pixels are kept exactly."),
                io.Combo.Input("detector", options=["auto", "mediapipe", "opencv"], default="auto",
                               tooltip="Face detector for the fit and the tracking: mediapipe when "
                                       "installed (landmarks), else OpenCV's face box."),
            ],
            outputs=[io.Image.Output("frames", tooltip="The re-dubbed frames."),
                     io.Mask.Output("mask", tooltip="The feathered region per frame (1 = new pixels).")],
        )

    @classmethod
    def execute(cls, images, body, motion, region, dilate, feather, detector) -> io.NodeOutput:
        if not torch.is_tensor(images) or images.ndim != 4 or images.shape[0] < 1:
            raise input_error(NODE, "images", "are not a batch of video frames",
                              "connect the IMAGE output of Get Video Components (or Load Video)")
        if not isinstance(motion, Motion):
            raise input_error(NODE, "motion", "is not a VLOGGER motion", "connect VLOGGER_MotionSampler")
        if motion.expression_set != body.expression_set:
            raise input_error(NODE, "motion", f"drives '{motion.expression_set}' but the body uses "
                              f"'{body.expression_set}'", "sample the motion with a model for this body")
        if motion.num_frames > MAX_FRAMES:
            raise input_error(NODE, "motion", f"has {motion.num_frames} frames", f"use at most {MAX_FRAMES} "
                              "(split the speech)")
        frames = images[..., :3].detach().cpu().float().numpy()
        settings = RedubSettings(region=region, dilate=dilate, feather=feather, detector=detector)
        outs, masks = [], []
        try:
            with torch.inference_mode(False), torch.enable_grad():   # the fit optimises
                for f, m in redub_frames(body, frames, motion, settings, device(),
                                         progress_callback(motion.num_frames), interrupt_check):
                    outs.append(torch.from_numpy(f))
                    masks.append(torch.from_numpy(m))
        except InpaintError as e:
            which = "images" if "face" in str(e) or "video" in str(e) else "region"
            raise input_error(NODE, which, str(e), "use a video of one person facing the camera"
                              if which == "images" else f"choose one of {list(REGIONS)}")
        except ValueError as e:
            if "mediapipe" in str(e) or "no face" in str(e).lower():
                raise input_error(NODE, "detector", str(e), "try detector 'opencv'")
            raise
        return io.NodeOutput(torch.cat(outs), torch.cat(masks))


NODES = [RegionInpaint]
