"""Motion from elsewhere: reenactment (a driving video of any person -> a VLOGGER motion + the
video's own audio) and combining motions (face / head / gestures from different sources)."""
from __future__ import annotations

import json
import os

import torch
from comfy_api.latest import InputImpl, io, ui

from vlogger_core.audio.comfy_audio import to_audio
from vlogger_core.errors import VloggerError
from vlogger_core.media import read_audio
from vlogger_core.motion.combine import Source, combine_motions
from vlogger_core.motion.edits import GROUPS, TRACKS, apply_edits
from vlogger_core.motion.params import Motion
from vlogger_core.motion.plot import motion_timeline
from vlogger_core.motion.reenact import (
    PARTS,
    ReenactSettings,
    reenact_file,
    reenact_frames,
)

from .common import (
    VloggerNode,
    device,
    input_error,
    interrupt_check,
    node_error,
    progress_callback,
)
from .nodes_motion import timeline_ui
from .nodes_output import audio_input
from .types import Body
from .types import Motion as MotionType

NODE = "VLOGGER_Reenact"
NO_EDITS = '{"version": 1, "tracks": {}, "blinks": [], "mute": []}'
SAMPLE_RATE = 16000
INPUTS = {"frames": "video", "fps": "fps", "path": "video", "detector": "video"}


def _silence(seconds: float) -> dict:
    return to_audio(torch.zeros(max(1, int(round(seconds * SAMPLE_RATE)))), SAMPLE_RATE)


class Reenact(VloggerNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=NODE,
            display_name="VLOGGER Reenact (motion from a driving video)",
            category="VLOGGER/motion",
            description=(
                "Turns a video of any person (the driver) into a VLOGGER motion that drives your photo: "
                "the pack's landmark detector and fitting engine (the ones dataset preparation uses) "
                "fit the body to every frame (expressions, jaw, eyes, head, torso, arms and fingers "
                "where seen), taken relative to the driver's neutral frame so the photo keeps its own "
                "rest pose and identity. Long videos are streamed in windows (flat memory); frames "
                "without a face are interpolated and reported; with several people the largest face "
                "is followed. Outputs the motion and the driving video's audio, for VLOGGER Talking "
                "Video."),
            inputs=[
                Body.Input("body", tooltip="The body model the motion is for (VLOGGER Body Model Loader): "
                                           "the same one the photo is fitted with."),
                io.Video.Input("video", optional=True,
                               tooltip="The driving video (Load Video). A file is streamed window by window; "
                                       "its audio comes out of 'audio'. 'images' wins when both are connected."),
                io.Image.Input("images", optional=True,
                               tooltip="The driving video as an IMAGE batch (e.g. Get Video Components' "
                                       "images), at 'fps'."),
                io.Float.Input("fps", default=24.0, min=1.0, max=240.0, step=0.001,
                               tooltip="The frame rate of 'images' (a VIDEO brings its own)."),
                io.Combo.Input("parts", options=list(PARTS), default="everything",
                               tooltip="What the driver moves: 'face' (expressions, jaw, eyes), 'face+head' "
                                       "(+ neck and head turns), 'everything' (+ torso, arms, hands)."),
                io.Float.Input("face_strength", default=1.0, min=0.0, max=3.0, step=0.05,
                               tooltip="Scale of the expressions, jaw and eye motion (1 = as driven, 0 = none)."),
                io.Float.Input("head_strength", default=1.0, min=0.0, max=3.0, step=0.05,
                               tooltip="Scale of the head and neck rotations (parts 'face+head' or 'everything')."),
                io.Float.Input("body_strength", default=1.0, min=0.0, max=3.0, step=0.05,
                               tooltip="Scale of torso, arm and hand rotations (parts 'everything')."),
                io.Int.Input("neutral_frame", default=0, min=-1, max=10_000_000,
                             tooltip="The driver's frame that maps to the photo's own pose and expression "
                                     "(0 = the first frame; -1 = automatic: the frame whose mouth is most "
                                     "closed, eyes open, e.g. when the video starts mid-word)."),
                io.Float.Input("smoothing", default=1.0, min=0.0, max=10.0, step=0.1,
                               tooltip="Gaussian smoothing over time in frames, zero phase (no lag); 0 = off."),
            ],
            outputs=[MotionType.Output("motion", tooltip="The driver's motion, at the driving video's frame rate."),
                     io.Audio.Output("audio", tooltip="The driving video's audio (silence when it has none or "
                                                      "'images' were given), for VLOGGER Talking Video.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, body, parts, face_strength, head_strength, body_strength, neutral_frame, smoothing,
                fps=24.0, video=None, images=None) -> io.NodeOutput:
        settings = ReenactSettings(parts=parts, face_strength=float(face_strength),
                                   head_strength=float(head_strength), body_strength=float(body_strength),
                                   neutral_frame=int(neutral_frame), smoothing=float(smoothing))
        try:
            with torch.inference_mode(False), torch.enable_grad():      # the fit is an optimisation
                res, audio = _reenact(body, settings, float(fps), video, images)
        except VloggerError as e:
            raise node_error(NODE, e, {**INPUTS, "frames": "images" if images is not None else "video"},
                             default="video") from None
        motion, r = res.motion, res.report
        audio = audio or _silence(motion.duration)
        text = (f"{r['frames']} frames at {r['fps']:g} fps, {r['windows']} window(s), neutral frame "
                f"{r['neutral_frame']}, parts {r['parts']}, lost {r['lost_frames']}")
        text = "\n".join([text, *r["notes"], json.dumps(r)])
        return io.NodeOutput(motion, audio, ui={**ui.PreviewText(text).as_dict(), **timeline_ui(motion, None)})


def _reenact(body, settings: ReenactSettings, fps: float, video, images):
    """(Reenactment, the driving video's AUDIO or None): 'images' at fps when connected; else a
    VIDEO streamed from its own file, or decoded from its components (Create Video)."""
    args = dict(device=device(), progress=progress_callback(), interrupt=interrupt_check)
    if images is not None:
        if not torch.is_tensor(images) or images.ndim != 4 or images.shape[-1] < 3 or not len(images):
            raise input_error(NODE, "images", "are not a batch of video frames [T,H,W,3]",
                              "connect an IMAGE batch such as Get Video Components' images")
        return reenact_frames(images, fps, body, settings, **args), None
    if video is None:
        raise input_error(NODE, "video", "nothing is connected (neither 'video' nor 'images')",
                          "connect Load Video, or an IMAGE batch of the driving video")
    if not hasattr(video, "get_components"):
        raise input_error(NODE, "video", "is not a video", "connect Load Video (or Create Video)")
    src = video.get_stream_source() if isinstance(video, InputImpl.VideoFromFile) else None
    if isinstance(src, str) and os.path.isfile(src):
        res = reenact_file(src, body, settings, **args)
        got = read_audio(src, SAMPLE_RATE, mono=True, missing_ok=True)
        return res, None if got is None else to_audio(got[0], got[1])
    try:
        c = video.get_components()
    except Exception as e:
        raise input_error(NODE, "video", f"cannot be decoded ({e})", "load a readable video file") from None
    res = reenact_frames(c.images, float(c.frame_rate), body, settings, **args)
    if c.audio is None:
        return res, None
    wave, rate = audio_input(NODE, c.audio, "video")
    return res, to_audio(wave, rate)


class CombineMotions(VloggerNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VLOGGER_CombineMotions",
            display_name="VLOGGER Combine Motions (face / head / gestures)",
            category="VLOGGER/motion",
            description=(
                "Builds one motion from up to three: the face (lips, expressions, jaw, eyes) from 'face', "
                "the head and neck from 'head', the torso, arms and hands from 'gestures'. 'face' sets the "
                "frame rate and length; the others are resampled to it and placed at their start frame; "
                "outside their frames their part follows 'face', with crossfades at the seams."),
            inputs=[
                MotionType.Input("face", tooltip="The motion whose face (lips, expressions, jaw, eyes) is kept; "
                                                 "it sets the length and frame rate."),
                MotionType.Input("head", optional=True, tooltip="The motion the head and neck come from."),
                MotionType.Input("gestures", optional=True,
                                 tooltip="The motion the torso, arms and hands come from."),
                io.Int.Input("head_start", default=0, min=-1_000_000, max=1_000_000,
                             tooltip="The output frame the head motion's first frame lands on."),
                io.Int.Input("gestures_start", default=0, min=-1_000_000, max=1_000_000,
                             tooltip="The output frame the gestures motion's first frame lands on."),
                io.Int.Input("crossfade", default=6, min=0, max=240,
                             tooltip="Frames over which a part fades in and out at its seams (0 = cut)."),
            ],
            outputs=[MotionType.Output("motion", tooltip="The combined motion.")],
        )

    @classmethod
    def execute(cls, face, head_start, gestures_start, crossfade, head=None, gestures=None) -> io.NodeOutput:
        node = "VLOGGER_CombineMotions"
        for name, m in (("face", face), ("head", head), ("gestures", gestures)):
            if m is not None and not isinstance(m, Motion):
                raise input_error(node, name, "is not a VLOGGER motion", "connect a Motion")
        try:
            out = combine_motions(face, None if head is None else Source(head, int(head_start)),
                                  None if gestures is None else Source(gestures, int(gestures_start)), int(crossfade))
        except VloggerError as e:
            raise node_error(node, e, {"head": "head_start", "gestures": "gestures_start"}) from None
        return io.NodeOutput(out)


class EditMotion(VloggerNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VLOGGER_EditMotion",
            display_name="VLOGGER Edit Motion (keyframes)",
            category="VLOGGER/motion",
            description=(
                "Applies keyframed edits to a motion: per track (any of the 52 ARKit expressions, mouth_scale, "
                "smile, brows, eyes_open, gaze_yaw/pitch, head_yaw/pitch/roll in degrees, gesture_amount) "
                "[seconds, value] keys, linear between them and no change outside them; blinks added or "
                "removed at a time; muted time ranges keep the motion as it came in. The edits are a JSON "
                "text (saved in the workflow, sent through the API), so the same edits give the same "
                "motion with or without the frontend. After a run the node shows a timeline editor: lanes "
                "for head yaw/pitch/roll, mouth_scale, smile, brows, eyes_open, gesture_amount (+ lane: any "
                "ARKit expression or gaze) with the incoming curve (grey), the edited one (colour) and the keys; "
                "click a lane to add a key, drag a key to move it, double- or right-click to delete it; click "
                "the blink strip to add or remove a blink; shift-drag the time axis to mute a range (click it "
                "to unmute). Each change rewrites the edits text. See docs/motion_exchange.md."),
            inputs=[MotionType.Input("motion", tooltip="The motion to edit."),
                    io.String.Input("edits", default=NO_EDITS, multiline=True,
                                    tooltip='JSON: {"version": 1, "tracks": {"head_yaw": [[1.0, 0], [1.5, 15], '
                                            '[2.0, 0]]}, "blinks": [{"t": 2.4, "action": "add"}], "mute": '
                                            '[[3.0, 3.5]]}.')],
            outputs=[MotionType.Output("edited", tooltip="The edited motion.")],
        )

    @classmethod
    def execute(cls, motion, edits) -> io.NodeOutput:
        node = "VLOGGER_EditMotion"
        if not isinstance(motion, Motion):
            raise input_error(node, "motion", "is not a VLOGGER motion", "connect a Motion")
        try:
            edited = apply_edits(motion, edits or "")
        except VloggerError as e:
            raise node_error(node, e) from None
        return io.NodeOutput(edited, ui=edit_ui(motion, edited, edits or ""))


EDITOR_POINTS_PER_S, EDITOR_MAX_POINTS = 25, 1500


def edit_ui(motion: Motion, edited: Motion, edits: str) -> dict:
    """The motion editor's payload (web/js/vlogger_motion_editor.js): the motion view's curves
    (plot.motion_timeline, with the 52 expressions and gaze) of the incoming and the edited
    motion, at most 25 points a second, the edits they were made with, and the track names and
    groups the edits know."""
    points = min(EDITOR_MAX_POINTS, max(1, int(motion.duration * EDITOR_POINTS_PER_S + 0.999)))
    line = lambda m: motion_timeline(m, None, max_points=points, expressions=True)  # noqa: E731
    return {"vlogger_motion_edit": [{"model": line(motion), "edited": line(edited),
                                     "edits": edits, "tracks": list(TRACKS),
                                     "groups": {k: list(v) for k, v in GROUPS.items()}}]}


NODES = [Reenact, CombineMotions, EditMotion]
