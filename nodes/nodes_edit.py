"""Editing nodes: re-dub an existing video with new speech, regenerating only a region."""
from __future__ import annotations

import logging

import numpy as np
import torch
from comfy_api.latest import io

from vlogger_core.body.track import VIDEO_DETECTORS
from vlogger_core.edit.redub import REGIONS, RedubSettings, redub_frames
from vlogger_core.errors import VloggerError
from vlogger_core.motion.params import Motion

from .common import (
    VloggerNode,
    check_image_batch,
    device,
    input_error,
    interrupt_check,
    node_error,
    progress_callback,
)
from .nodes_output import audio_input
from .types import Body, VideoModel
from .types import Motion as MotionType

log = logging.getLogger("VLOGGER")
NODE = "VLOGGER_RegionInpaint"
MAX_FRAMES = 20_000


def _frames_and_fps(images, video, fps: float) -> tuple[np.ndarray, float]:
    """The original video's frames [T,H,W,3] float (images win when both are connected; a
    VIDEO gives its own frame rate) and its fps."""
    which = "images" if images is not None else "video"
    if video is not None:
        try:
            comps = video.get_components()
        except Exception as e:
            raise input_error(NODE, "video", f"cannot be decoded ({e})", "load a readable video file with Load Video")
        fps = float(comps.frame_rate)
        if images is None:
            images = comps.images
    if images is None:
        raise input_error(NODE, "images", "nothing is connected (neither 'images' nor 'video')",
                          "connect Get Video Components' images, or a VIDEO from Load Video")
    if not torch.is_tensor(images) or images.ndim != 4 or images.shape[-1] < 3:
        raise input_error(NODE, which, "are not a batch of video frames [T,H,W,3]",
                          "connect the IMAGE output of Get Video Components")
    if images.shape[0] < 1:
        raise input_error(NODE, which, "the video has no frames", "load a video file that decodes to frames")
    if not fps or fps <= 0:
        raise input_error(NODE, "fps", f"{fps} is not a frame rate", "connect Get Video Components' fps")
    # the frames as given (float): pixels outside the mask come back exactly as they went in
    return images[..., :3].detach().cpu().float().numpy(), fps


def _check_speech(speech, motion: Motion) -> None:
    if speech is None:
        raise input_error(NODE, "speech", "no speech is connected",
                          "connect the NEW speech (the audio the motion was sampled from)")
    wave, sr = audio_input(NODE, speech, "speech")
    seconds = wave.shape[-1] / sr
    if abs(seconds - motion.duration) > max(0.25, 0.05 * seconds):
        raise input_error(NODE, "motion", f"lasts {motion.duration:.2f} s but the speech lasts {seconds:.2f} s",
                          "sample the motion from this same speech (VLOGGER_MotionSampler)")


class RegionInpaint(VloggerNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=NODE,
            display_name="VLOGGER Region Inpaint (re-dub a video)",
            category="VLOGGER/edit",
            description=(
                "Re-dubs an existing video of a person with new speech: only the chosen region "
                "(mouth, eyes or face) is regenerated, every other pixel is the original's, bit for "
                "bit. The body is fitted to the video (landmarks: one frame fitted, then tracked per "
                "frame; OpenCV: first frame + face-box tracking), each frame keeps its own head and "
                "body pose and takes the new motion's mouth (or eyes), and is re-rendered from "
                "ITSELF (identity, lighting and background match) by the default renderer, or by "
                "masked diffusion when a video model is connected. The feathered mask comes from "
                "the fitted body's semantic maps plus the pixels the edit moves (chin, cheeks). The "
                "output has the speech's length: a shorter video is played back and forth "
                "(ping-pong), a longer one is cut. Pass the 'audio' output to VLOGGER Save Video."),
            inputs=[
                io.Image.Input("images", optional=True,
                               tooltip="The original video's frames (Get Video Components' images), a "
                                       "person facing the camera. Or connect 'video' instead."),
                Body.Input("body", tooltip="The body model (VLOGGER_BodyModelLoader)."),
                MotionType.Input("motion", tooltip="Motion from the NEW speech (VLOGGER_MotionSampler; "
                                                   "any fps, frames are matched by time)."),
                io.Combo.Input("region", options=list(REGIONS), default="mouth",
                               tooltip="What to regenerate: mouth (lips, teeth, jaw and chin: the "
                                       "articulation; the video's own smile is kept), eyes (blinks, "
                                       "gaze, brows) or the whole face."),
                io.Int.Input("dilate", default=6, min=0, max=64,
                             tooltip="Pixels the region grows by, so the old mouth is covered too "
                                     "(about 2-3% of the frame width)."),
                io.Int.Input("feather", default=4, min=0, max=64,
                             tooltip="Width in pixels of the soft edge outside the grown region; beyond "
                                     "it the original pixels are kept exactly."),
                io.Combo.Input("detector", options=VIDEO_DETECTORS, default="auto",
                               tooltip="Face landmarks for the fit. auto: landmarks (mediapipe's models, "
                                       "shipped; per-frame tracking of head, jaw and expression), else "
                                       "OpenCV. mediapipe: the same from the mediapipe package, if "
                                       "installed. opencv: the face box (first frame only, 2D "
                                       "tracking: dilate more)."),
                io.Video.Input("video", optional=True,
                               tooltip="The original video as a VIDEO (Load Video), instead of 'images'; "
                                       "its frame rate is used."),
                io.Float.Input("fps", default=24.0, min=1.0, max=240.0, step=0.001, optional=True,
                               tooltip="Frame rate of 'images' (Get Video Components' fps); ignored when "
                                       "'video' is connected."),
                io.Audio.Input("speech", optional=True,
                               tooltip="The NEW speech the motion was sampled from; passed on as 'audio' "
                                       "for the MP4 (required)."),
                VideoModel.Input("video_model", optional=True,
                                 tooltip="Optional trained VLOGGER video model (VLOGGER_VideoModelLoader): "
                                         "the region is generated by masked diffusion instead of the "
                                         "default renderer. Needs trained weights to look like anything."),
                io.Int.Input("seed", default=0, min=0, max=2**63 - 1, optional=True,
                             tooltip="Noise seed of the masked diffusion (unused without a video model)."),
                io.Int.Input("steps", default=25, min=1, max=500, optional=True,
                             tooltip="Denoising steps of the masked diffusion (unused without a video model)."),
            ],
            outputs=[io.Image.Output("frames", tooltip="The re-dubbed frames (the speech's length)."),
                     io.Mask.Output("mask", tooltip="The feathered region per frame (1 = new pixels, "
                                                    "0 = the original pixel, exactly)."),
                     io.Audio.Output("audio", tooltip="The new speech, for VLOGGER Save Video.")],
        )

    @classmethod
    def execute(cls, body, motion, region, dilate, feather, detector, images=None, video=None, fps=24.0,
                speech=None, video_model=None, seed=0, steps=25) -> io.NodeOutput:
        if not isinstance(motion, Motion):
            raise input_error(NODE, "motion", "is not a VLOGGER motion", "connect VLOGGER_MotionSampler")
        if motion.num_frames > MAX_FRAMES:
            raise input_error(NODE, "motion", f"has {motion.num_frames} frames",
                              f"use at most {MAX_FRAMES} (split the speech)")
        _check_speech(speech, motion)
        frames, fps = _frames_and_fps(images, video, fps)
        h, w = frames.shape[1:3]       # each new frame and its mask, in a list and then joined: twice
        check_image_batch(NODE, "motion", motion.num_frames, h, w, "re-dub a shorter speech at a time (split it "
                          "and join the videos), or a smaller video", channels=2 * (3 + 1),
                          what="re-dubbed frames and masks")
        settings = RedubSettings(region=region, dilate=dilate, feather=feather, detector=detector,
                                 seed=seed, steps=steps)
        outs, masks = [], []
        try:
            with torch.inference_mode(False), torch.enable_grad():   # the fit optimises
                for f, m in redub_frames(body, frames, motion, settings, fps, video_model, device(),
                                         progress_callback(motion.num_frames), interrupt_check,
                                         log=lambda msg: log.info("%s: %s", NODE, msg)):
                    outs.append(torch.from_numpy(f))
                    masks.append(torch.from_numpy(m))
        except VloggerError as e:       # InpaintError, or the body/motion check's
            raise node_error(NODE, e, {"frames": "video" if images is None else "images"}) from None
        return io.NodeOutput(torch.cat(outs), torch.cat(masks), speech)


NODES = [RegionInpaint]
