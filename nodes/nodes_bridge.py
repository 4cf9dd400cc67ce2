"""The bridge to ComfyUI's own video models: VLOGGER's motion as the driving videos Wan 2.2 Animate,
Wan S2V, VACE, Fun-Control and ControlNet OpenPose take (pose / face / depth / normal IMAGE
batches at 16 fps in 4n + 1 frame windows, with the speech as AUDIO beside them)."""
from __future__ import annotations

import torch
from comfy_api.latest import io

from vlogger_core.audio.comfy_audio import from_audio, to_audio
from vlogger_core.audio.speech_io import SpeechError
from vlogger_core.bridge import windows
from vlogger_core.bridge.face_crops import FACE_SIZE
from vlogger_core.bridge.pose_drawing import ORDERS, VARIANTS, PoseStyle
from vlogger_core.bridge.videos import (
    face_video,
    frame_range,
    map_videos,
    pose_video,
    renderer_for,
)
from vlogger_core.errors import VloggerError

from .common import (
    VloggerNode,
    check_image_batch,
    device,
    frames_input,
    interrupt_check,
    node_error,
    progress_callback,
    sized_shape,
)
from .types import Body, Fit, Motion

SIZE_TIP = ("{} of the video in pixels (a multiple of 16, as the Wan nodes need). Another aspect "
            "than the photo's crops the photo's view at the centre. Use the size of the video "
            "model's node (WanAnimateToVideo / WanSoundImageToVideo width and height).")
COMMON_INPUTS = lambda: [  # noqa: E731
    Body.Input("body", tooltip="The body model the fit and the motion were made for."),
    Fit.Input("fit", tooltip="The reference fit of the photo (VLOGGER Fit Reference)."),
    Motion.Input("motion", tooltip="The motion: VLOGGER Wan Timing's or Wan Window's output (16 fps, "
                                   "4n + 1 frames), or any motion."),
    io.Int.Input("width", default=640, min=64, max=2048, step=16, tooltip=SIZE_TIP.format("Width")),
    io.Int.Input("height", default=640, min=64, max=2048, step=16, tooltip=SIZE_TIP.format("Height")),
    io.Int.Input("start_frame", default=0, min=0, max=10_000_000,
                 tooltip="First frame of the motion to make."),
    io.Int.Input("max_frames", default=0, min=0, max=100_000,
                 tooltip="How many frames; 0 = all, to the motion's end."),
]
ARGS = {"start": "start_frame", "count": "max_frames", "width": "width", "height": "height"}


WINDOW_FIX = ("make the video window by window (VLOGGER Wan Window: one slice per Extend / continue_motion "
              "window), set max_frames (from start_frame), or use a smaller width / height")


class BridgeVideo:
    """Mixin of the bridge nodes that make frame batches of width x height of a range of the
    motion: their memory is checked against the free memory before they render (and before long
    speech is worked on, through batch_shape)."""

    BATCH_FIX = WINDOW_FIX   # also what common.check_downstream_batches tells long speech to do

    @classmethod
    def channels(cls, width: int, height: int) -> int:
        """float32 values per output pixel, all of the node's outputs together."""
        return 3

    @classmethod
    def batch_shape(cls, inputs: dict, frames: int, size=None) -> tuple[int, int, int, int] | None:
        """(frames, height, width, values per pixel) this node would hold for a motion of `frames`
        frames, from its literal inputs (common.check_downstream_batches)."""
        return sized_shape(inputs, frames, cls.channels)

    @classmethod
    def prepare(cls, node: str, body, fit, motion, width, height, start_frame, max_frames):
        """(renderer, start, stop), once the frames are known to fit in free memory."""
        try:
            start, stop = frame_range(motion, start_frame, max_frames)
            check_image_batch(node, frames_input(max_frames), stop - start, height, width, cls.BATCH_FIX,
                              cls.channels(width, height), what="this node's videos")
            return renderer_for(body, fit, width, height, device()), start, stop
        except VloggerError as e:
            raise node_error(node, e, ARGS) from None


class PoseVideo(BridgeVideo, VloggerNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VLOGGER_PoseVideo",
            display_name="VLOGGER Pose Video (OpenPose / DWPose)",
            category="VLOGGER/bridge",
            description=(
                "Draws the posed body of every frame as an OpenPose / DWPose skeleton, the "
                "pose_video / control_video of WanAnimateToVideo, WanSoundImageToVideo, "
                "WanVaceToVideo, Wan22FunControlToVideo and of a ControlNet OpenPose model: 18 "
                "body points in COCO order, 17 limbs in the standard colours, 21-point hands, "
                "optional 68 white face dots. The points are the 3D joints and face points of the "
                "body as the default renderer poses it, seen by the fitted camera; points outside "
                "the frame or hidden behind the body are left out, as a detector leaves them out. "
                "'wan_animate' draws Wan Animate's own variant (its widths, the toe points)."),
            inputs=[
                *COMMON_INPUTS(),
                io.Boolean.Input("body_points", default=True, tooltip="Draw the body skeleton."),
                io.Boolean.Input("hands", default=True, tooltip="Draw the 21-point hands."),
                io.Boolean.Input("face", default=False,
                                 tooltip="Draw the 68 face points as white dots (DWPose's face; "
                                         "Wan Animate's own template leaves them out)."),
                io.Combo.Input("style", options=list(VARIANTS), default=VARIANTS[0],
                               tooltip="openpose: the OpenPose / DWPose look (ControlNet, the Wan "
                                       "templates' DWPose preprocessor); wan_animate: Wan 2.2 "
                                       "Animate's own preprocessing (thinner lines, toe points)."),
                io.Combo.Input("channel_order", options=list(ORDERS), default="RGB",
                               tooltip="RGB for ComfyUI's models (all of the above); BGR for a "
                                       "model trained on OpenCV-ordered pose images."),
            ],
            outputs=[io.Image.Output("pose_video", tooltip="The skeleton on black, [frames, H, W, 3]."),
                     io.Int.Output("frames", tooltip="How many frames (4n + 1 when the motion is "
                                                     "VLOGGER Wan Timing's or Window's).")],
        )

    @classmethod
    def execute(cls, body, fit, motion, width, height, start_frame, max_frames, body_points, hands,
                face, style, channel_order) -> io.NodeOutput:
        node = "VLOGGER_PoseVideo"
        r, start, stop = cls.prepare(node, body, fit, motion, width, height, start_frame, max_frames)
        try:
            v = pose_video(r, motion, PoseStyle(body_points, hands, face, style, channel_order), start,
                           stop, progress_callback(), interrupt_check)
        except VloggerError as e:
            raise node_error(node, e, {**ARGS, "variant": "style", "order": "channel_order"}) from None
        return io.NodeOutput(torch.from_numpy(v), len(v))


class FaceVideo(BridgeVideo, VloggerNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VLOGGER_FaceVideo",
            display_name="VLOGGER Face Video (Wan Animate)",
            category="VLOGGER/bridge",
            description=(
                "Renders the frames with the default renderer (the photo warped along the posed "
                "body: lips, jaw, blinks, head) and crops the face the way Wan 2.2 Animate's "
                "preprocessing does: the box of the 68 face points grown to 1.3 times its area, "
                "more above than below, resized to 512 x 512. This is WanAnimateToVideo's "
                "face_video: its face encoder sees the photo's own lips moving with the speech. "
                "Also outputs the full frames (e.g. as background_video or to preview)."),
            inputs=COMMON_INPUTS(),
            outputs=[io.Image.Output("face_video", tooltip=f"Face crops [frames, {FACE_SIZE}, {FACE_SIZE}, 3]."),
                     io.Image.Output("frames", tooltip="The default renderer's frames [frames, H, W, 3].")],
        )

    @classmethod
    def channels(cls, width: int, height: int) -> int:
        return 3 + -(-3 * FACE_SIZE * FACE_SIZE // (width * height))   # the frames and the face crops

    @classmethod
    def execute(cls, body, fit, motion, width, height, start_frame, max_frames) -> io.NodeOutput:
        node = "VLOGGER_FaceVideo"
        r, start, stop = cls.prepare(node, body, fit, motion, width, height, start_frame, max_frames)
        try:
            faces, frames = face_video(r, motion, start, stop, progress=progress_callback(),
                                       interrupt=interrupt_check)
        except VloggerError as e:
            raise node_error(node, e, ARGS) from None
        return io.NodeOutput(torch.from_numpy(faces), torch.from_numpy(frames))


class DepthVideo(BridgeVideo, VloggerNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VLOGGER_DepthVideo",
            display_name="VLOGGER Depth / Normal Video (VACE, Fun-Control)",
            category="VLOGGER/bridge",
            description=(
                "The posed body's depth, surface normals and body parts per frame, as "
                "control_video for WanVaceToVideo / Wan22FunControlToVideo / a depth or normal "
                "ControlNet. Depth as VACE's MiDaS annotator gives it: inverse depth, near white, "
                "far and background black, grey in all channels (range fixed per photo, so it "
                "does not flicker). Normals as ControlNet normal maps: RGB = (n + 1) / 2, x "
                "right, y up, z towards the viewer. Mask: 1 where the body is."),
            inputs=COMMON_INPUTS(),
            outputs=[io.Image.Output("depth_video", tooltip="Inverse depth, near white [frames, H, W, 3]."),
                     io.Image.Output("normal_video", tooltip="Camera-space normals as RGB [frames, H, W, 3]."),
                     io.Image.Output("semantic_video", tooltip="Body parts colour-coded [frames, H, W, 3]."),
                     io.Mask.Output("body_mask", tooltip="1 on the body [frames, H, W] (e.g. "
                                                         "character_mask / control_masks).")],
        )

    @classmethod
    def channels(cls, width: int, height: int) -> int:
        return 3 * 3 + 1                 # depth, normal and semantic RGB, and the mask

    @classmethod
    def execute(cls, body, fit, motion, width, height, start_frame, max_frames) -> io.NodeOutput:
        node = "VLOGGER_DepthVideo"
        r, start, stop = cls.prepare(node, body, fit, motion, width, height, start_frame, max_frames)
        try:
            m = map_videos(r, motion, start, stop, progress_callback(), interrupt_check)
        except VloggerError as e:
            raise node_error(node, e, ARGS) from None
        t = torch.from_numpy
        return io.NodeOutput(t(m["depth"]), t(m["normal"]), t(m["semantic"]), t(m["mask"]))


MOTION_AND_SPEECH = lambda: [  # noqa: E731
    Motion.Input("motion", tooltip="The motion made from the speech (any fps)."),
    io.Audio.Input("audio", tooltip="The speech the motion was made from."),
]
FPS_INPUT = lambda: io.Float.Input("fps", default=windows.WAN_FPS, min=1.0, max=60.0, step=1.0,  # noqa: E731
                                   tooltip="The video model's frame rate (Wan 2.x 14B: 16; Wan 2.2 5B: 24).")


def _audio(node: str, audio) -> tuple[torch.Tensor, int]:
    try:
        return from_audio(audio)
    except SpeechError as e:
        raise node_error(node, e) from None


class WanTiming(VloggerNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VLOGGER_WanTiming",
            display_name="VLOGGER Wan Timing (16 fps, 4n+1 frames)",
            category="VLOGGER/bridge",
            description=(
                "The whole motion at the Wan models' 16 fps, padded to 4n + 1 frames (the last "
                "pose held), and the speech at 16 kHz (wav2vec2's rate) cut or padded with "
                "silence to exactly those frames. Feed the motion to the pose / face / depth "
                "nodes and the speech to AudioEncoderEncode and to the video writer."),
            inputs=[*MOTION_AND_SPEECH(), FPS_INPUT()],
            outputs=[Motion.Output("wan_motion", display_name="motion", tooltip="The motion at fps, 4n + 1 frames."),
                     io.Audio.Output("wan_audio", display_name="audio",
                                     tooltip="The speech at 16 kHz, as long as the frames."),
                     io.Int.Output("frames", tooltip="The frame count (4n + 1)."),
                     io.Float.Output("video_fps", display_name="fps",
                                     tooltip="The frame rate, for CreateVideo / Save Video.")],
        )

    @classmethod
    def execute(cls, motion, audio, fps) -> io.NodeOutput:
        node = "VLOGGER_WanTiming"
        wave, rate = _audio(node, audio)
        try:
            m = windows.whole_motion(motion, fps)
            a = windows.audio_slice(wave, rate, 0, m.num_frames, fps)
        except VloggerError as e:
            raise node_error(node, e) from None
        return io.NodeOutput(m, to_audio(a, windows.AUDIO_RATE), m.num_frames, float(fps))


class WanWindow(VloggerNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VLOGGER_WanWindow",
            display_name="VLOGGER Wan Window (slice for Extend / continue)",
            category="VLOGGER/bridge",
            description=(
                "One window of a long motion: its 4n + 1 frames (at 16 fps) and its stretch of "
                "the speech (16 kHz), so each window's pose / face / depth video is made on its "
                "own and memory stays bounded at any length. 's2v': window k starts where "
                "ComfyUI's WanSoundImageToVideoExtend reads window k's audio (k x 4 x latent "
                "frames), which it does not do for control_video; 'animate': windows overlap by "
                "WanAnimateToVideo's continue_motion frames; 'plain': back to back. Also "
                "outputs how many windows the motion needs."),
            inputs=[*MOTION_AND_SPEECH(),
                    io.Int.Input("window", default=0, min=0, max=100_000,
                                 tooltip="Which window, from 0 (the first WanSoundImageToVideo; 1 = the "
                                         "first Extend)."),
                    io.Int.Input("length", default=windows.DEFAULT_LENGTH, min=1, max=1021, step=4,
                                 tooltip="Frames per window, 4n + 1 (the video node's length)."),
                    io.Combo.Input("mode", options=list(windows.MODES), default="s2v",
                                   tooltip="How the video model chains windows (see the description)."),
                    io.Int.Input("overlap", default=windows.DEFAULT_OVERLAP, min=0, max=1020,
                                 tooltip="'animate' only: WanAnimateToVideo's continue_motion_max_frames."),
                    FPS_INPUT()],
            outputs=[Motion.Output("window_motion", display_name="motion",
                                   tooltip="The window's frames (the last pose held past the end)."),
                     io.Audio.Output("window_audio", display_name="audio",
                                     tooltip="The window's speech at 16 kHz (silence past the end)."),
                     io.Int.Output("start_frame", tooltip="The window's first frame in the whole motion."),
                     io.Int.Output("windows", tooltip="How many windows cover the whole motion.")],
        )

    @classmethod
    def execute(cls, motion, audio, window, length, mode, overlap, fps) -> io.NodeOutput:
        node = "VLOGGER_WanWindow"
        wave, rate = _audio(node, audio)
        try:
            total = windows.motion_at(motion, fps).num_frames
            w = windows.Window(window, windows.window_start(window, length, mode, overlap), length, fps)
            m = windows.window_motion(motion, w)
            a = windows.audio_slice(wave, rate, w.start, length, fps)
            count = windows.window_count(total, length, mode, overlap)
        except VloggerError as e:
            raise node_error(node, e, {"index": "window"}) from None
        return io.NodeOutput(m, to_audio(a, windows.AUDIO_RATE), w.start, count)


NODES = [PoseVideo, FaceVideo, DepthVideo, WanTiming, WanWindow]
