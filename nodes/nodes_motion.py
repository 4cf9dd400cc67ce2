"""Stage 1 nodes: load the motion diffusion model, sample motion from speech, preview, save/load."""
from __future__ import annotations

import os

import folder_paths
import torch
from comfy_api.latest import io, ui

from vlogger_core.audio import speech_io
from vlogger_core.audio.features import MIN_SECONDS, energy_envelope, prepare_audio
from vlogger_core.errors import VloggerError
from vlogger_core.files import atomic_write
from vlogger_core.media import write_wav
from vlogger_core.motion.model import load_motion_model
from vlogger_core.motion.params import Motion
from vlogger_core.motion.plot import motion_timeline, plot_motion
from vlogger_core.motion.sampling import MAX_FPS, MIN_FPS, SampleSettings, sample_motion
from vlogger_core.paths import SHIPPED_MODELS

from .common import (
    VloggerNode,
    check_downstream_batches,
    device,
    input_error,
    interrupt_check,
    node_error,
    progress_callback,
)
from .types import Motion as MotionType
from .types import MotionModel

FOLDER = "vlogger_motion"
folder_paths.add_model_folder_path(FOLDER, os.path.join(folder_paths.models_dir, "vlogger", "motion"))
SHIPPED = SHIPPED_MODELS / "motion" / "vlogger_motion_default.safetensors"
DEFAULT_NAME = "vlogger_motion_default (shipped)"


def timeline_ui(motion: Motion, wave: torch.Tensor | None) -> dict:
    """The motion view's payload (web/js/vlogger_motion_view.js): curves, waveform and the
    speech as a temp WAV the browser can play."""
    import uuid

    data = motion_timeline(motion, wave, speech_io.MODEL_SAMPLE_RATE)
    if wave is not None and wave.numel():
        sub = "vlogger"
        folder = os.path.join(folder_paths.get_temp_directory(), sub)
        os.makedirs(folder, exist_ok=True)
        name = f"motion_speech_{uuid.uuid4().hex[:10]}.wav"
        write_wav(os.path.join(folder, name), wave.reshape(-1), speech_io.MODEL_SAMPLE_RATE)
        data["audio"] = {"filename": name, "subfolder": sub, "type": "temp"}
    return {"vlogger_motion": [data]}


_CACHE: dict = {}


def _model_names() -> list[str]:
    names = [DEFAULT_NAME]
    try:
        names += [n for n in folder_paths.get_filename_list(FOLDER) if n.endswith(".safetensors")]
    except Exception:
        pass
    return names


class MotionModelLoader(VloggerNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VLOGGER_MotionModelLoader",
            display_name="VLOGGER Load Motion Model",
            category="VLOGGER/motion",
            description=("Loads the stage-1 audio-to-motion diffusion model: the shipped default "
                         "(trained by this pack on a synthetic speech corpus, see "
                         "models/motion/MODEL_CARD.md) or any .safetensors you trained with "
                         "scripts/train_motion.py and put in models/vlogger/motion/."),
            inputs=[io.Combo.Input("model", options=_model_names(), default=DEFAULT_NAME,
                                   tooltip="Which motion model to use. Your own go in ComfyUI's models/vlogger/motion/.")],
            outputs=[MotionModel.Output("motion_model", tooltip="The motion diffusion model.")],
        )

    @classmethod
    def execute(cls, model) -> io.NodeOutput:
        node = "VLOGGER_MotionModelLoader"
        if model == DEFAULT_NAME:
            path = str(SHIPPED)
            if not SHIPPED.exists():
                raise input_error(node, "model", f"the shipped default {SHIPPED} is missing",
                                  "reinstall the pack or train one with scripts/train_motion.py")
        else:
            path = folder_paths.get_full_path(FOLDER, model)
            if path is None:
                raise input_error(node, "model", f"'{model}' is not in models/vlogger/motion",
                                  "pick a file from the list or copy it there")
        key = (path, os.path.getmtime(path), str(device()))
        if key not in _CACHE:
            try:
                _CACHE.clear()
                _CACHE[key] = load_motion_model(path, device())
            except VloggerError as e:
                raise node_error(node, e, {"path": "model"}) from None
        return io.NodeOutput(_CACHE[key])


class MotionSampler(VloggerNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VLOGGER_MotionSampler",
            display_name="VLOGGER Motion from Speech",
            category="VLOGGER/motion",
            description=("Stage 1 of VLOGGER: turns speech into per-frame face expression and "
                         "body-pose residuals (head, eyes, jaw, arms, hands) with the motion "
                         "diffusion model. Any length: long audio is generated in causal windows "
                         "that carry the previous frames, so memory stays flat. Same seed, same "
                         "motion; a new seed gives another plausible performance. On top of the "
                         "model the body breathes (slower in pauses, a breath before each phrase), "
                         "the torso sways with the speech and follows the head, and the arms "
                         "gesture on emphasis (a seeded procedural layer). After a run "
                         "the node shows a timeline of the motion under the speech's waveform, "
                         "with playback, to judge lip sync before rendering."),
            inputs=[
                io.Audio.Input("audio", tooltip="Speech (any sample rate, mono or stereo), e.g. from VLOGGER Load Speech or Text to Speech."),
                MotionModel.Input("motion_model", tooltip="From VLOGGER Load Motion Model."),
                io.Float.Input("fps", default=25.0, min=MIN_FPS, max=MAX_FPS, step=1.0,
                               tooltip="Video frame rate of the motion; frames = round(duration x fps)."),
                io.Int.Input("seed", default=0, min=0, max=2**63 - 1, control_after_generate=True,
                             tooltip="Random seed: same seed, same motion."),
                io.Int.Input("steps", default=25, min=1, max=200,
                             tooltip="Denoising steps (25 is plenty; fewer is faster)."),
                io.Float.Input("guidance", default=1.0, min=1.0, max=8.0, step=0.1,
                               tooltip="Classifier-free guidance on the audio. 1 = off (fastest); 1.5-3 follows the speech more strongly."),
                io.Float.Input("expression_intensity", default=1.0, min=0.0, max=2.0, step=0.05,
                               tooltip="Scales face expressions and jaw (not blinks/gaze). 1 = as generated."),
                io.Float.Input("head_motion", default=1.0, min=0.0, max=3.0, step=0.05,
                               tooltip="Scales head, neck and torso movement (the torso's sway and breathing too). 0 = still head and torso."),
                io.Float.Input("gesture_amount", default=1.0, min=0.0, max=2.0, step=0.05,
                               tooltip="Arm, hand and finger gestures: 0 = still arms, 1 = natural, 2 = animated (larger and more frequent gestures on emphasis)."),
                io.Int.Input("window_frames", default=256, min=16, max=1024,
                             tooltip="Frames (at the model's fps) generated per window; the model was trained on up to 256."),
                io.Int.Input("context_frames", default=32, min=0, max=512,
                             tooltip="Frames carried from one window into the next so windows join without seams."),
                io.Combo.Input("sampler", options=["ddim", "dpm"], default="ddim",
                               tooltip="Diffusers scheduler: DDIM or DPM-Solver++."),
                io.Boolean.Input("add_blinks", default=True, optional=True,
                                 tooltip="Overlay natural blinks (12-22/min, seeded) drawn from the training corpus' blink prior. The shipped model rarely blinks by itself (see its model card); turn off to get the model's output only."),
            ],
            outputs=[MotionType.Output("motion", tooltip="Per-frame motion (expression + 6D pose residuals), with fps and parameter names.")],
            hidden=[io.Hidden.prompt, io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, audio, motion_model, fps, seed, steps, guidance, expression_intensity,
                head_motion, gesture_amount, window_frames=256, context_frames=32,
                sampler="ddim", add_blinks=True) -> io.NodeOutput:
        node = "VLOGGER_MotionSampler"
        try:
            wave = prepare_audio(audio)
        except speech_io.SpeechError as e:
            raise node_error(node, e) from None
        if wave.shape[0] < MIN_SECONDS * speech_io.MODEL_SAMPLE_RATE:
            raise input_error(node, "audio", f"is only {wave.shape[0] / speech_io.MODEL_SAMPLE_RATE:.3f} s long",
                              f"use at least {MIN_SECONDS} s of speech")
        # an IMAGE batch further down that could not hold this much: refused before sampling
        check_downstream_batches(node, "audio", cls.hidden.prompt, cls.hidden.unique_id,
                                 wave.shape[0] / speech_io.MODEL_SAMPLE_RATE, float(fps))
        settings = SampleSettings(seed=seed, steps=steps, guidance=guidance, window=window_frames,
                                  context=context_frames, expression_intensity=expression_intensity,
                                  head_motion=head_motion, gesture_amount=gesture_amount, sampler=sampler,
                                  add_blinks=add_blinks)
        try:
            motion = sample_motion(motion_model, wave, float(fps), settings, device(), progress_callback(),
                                   interrupt_check)
        except VloggerError as e:
            raise node_error(node, e, {"context": "context_frames", "window": "window_frames"}) from None
        return io.NodeOutput(motion, ui=timeline_ui(motion, wave))


class MotionPreview(VloggerNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VLOGGER_MotionPreview",
            display_name="VLOGGER Motion Preview (plot)",
            category="VLOGGER/motion",
            description=("Plots a motion over time so you can check it before rendering: mouth "
                         "opening against the speech envelope, head angles, blinks and gesture "
                         "energy. Shows the plot in the node and outputs it as an IMAGE, plus an "
                         "interactive timeline (waveform + tracks, play the speech, click to seek)."),
            inputs=[MotionType.Input("motion", tooltip="A VLOGGER motion (from the sampler or Load Motion)."),
                    io.Audio.Input("audio", optional=True, tooltip="Optional speech to draw its envelope under the mouth track."),
                    io.Int.Input("width", default=1200, min=400, max=4096, step=8, tooltip="Plot width in pixels."),
                    io.Int.Input("height", default=800, min=256, max=4096, step=8, tooltip="Plot height in pixels.")],
            outputs=[io.Image.Output("plot", tooltip="The plot as an image.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, motion, width=1200, height=800, audio=None) -> io.NodeOutput:
        node = "VLOGGER_MotionPreview"
        if not isinstance(motion, Motion):
            raise input_error(node, "motion", "is not a VLOGGER motion", "connect a Motion from the sampler or Load Motion")
        env = wave = None
        if audio is not None:
            try:
                wave = prepare_audio(audio)
            except speech_io.SpeechError as e:
                raise node_error(node, e) from None
            env = energy_envelope(wave, motion.fps, motion.num_frames).numpy()
        img = plot_motion(motion, env, width, height)
        return io.NodeOutput(img, ui={**ui.PreviewImage(img, cls=cls).as_dict(),
                                      **timeline_ui(motion, wave)})


class SaveMotion(VloggerNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VLOGGER_SaveMotion",
            display_name="VLOGGER Save Motion (npz)",
            category="VLOGGER/motion",
            description=("Saves a motion as a plain .npz (fps, expression set and names, "
                         "expression [N,E], 6D rotations [N,J,6], joint names) in ComfyUI's "
                         "output folder, for other tools or for VLOGGER Load Motion."),
            inputs=[MotionType.Input("motion", tooltip="The motion to save."),
                    io.String.Input("filename_prefix", default="vlogger/motion",
                                    tooltip="Output file prefix (sub-folders allowed).")],
            outputs=[io.String.Output("path", tooltip="Where the file was written.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, motion, filename_prefix) -> io.NodeOutput:
        node = "VLOGGER_SaveMotion"
        if not isinstance(motion, Motion):
            raise input_error(node, "motion", "is not a VLOGGER motion", "connect a Motion")
        if not filename_prefix.strip():
            raise input_error(node, "filename_prefix", "is empty", "type a name such as vlogger/motion")
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, folder_paths.get_output_directory())
        os.makedirs(folder, exist_ok=True)
        file = f"{name}_{counter:05}_.npz"
        path = os.path.join(folder, file)
        with atomic_write(path) as tmp:     # a cancel or a full disk leaves no half file
            motion.save_npz(str(tmp))
        return io.NodeOutput(path, ui=ui.PreviewText(f"saved {os.path.join(subfolder, file)}"))


class LoadMotion(VloggerNode):
    @classmethod
    def define_schema(cls):
        files = sorted(f for f in os.listdir(folder_paths.get_input_directory()) if f.endswith(".npz"))
        return io.Schema(
            node_id="VLOGGER_LoadMotion",
            display_name="VLOGGER Load Motion (npz)",
            category="VLOGGER/motion",
            description=("Loads a motion .npz (as written by VLOGGER Save Motion or "
                         "Motion.save_npz, e.g. motion fitted from real footage) from ComfyUI's "
                         "input folder."),
            inputs=[io.Combo.Input("motion_file", options=files or [""],
                                   tooltip="A .npz motion file in ComfyUI's input folder.")],
            outputs=[MotionType.Output("motion", tooltip="The loaded motion.")],
        )

    @classmethod
    def execute(cls, motion_file) -> io.NodeOutput:
        node = "VLOGGER_LoadMotion"
        path = os.path.join(folder_paths.get_input_directory(), motion_file or "")
        if not motion_file or not os.path.isfile(path):
            raise input_error(node, "motion_file", f"'{motion_file}' is not in the input folder",
                              "copy a .npz written by VLOGGER Save Motion into ComfyUI's input folder")
        try:
            motion = Motion.load_npz(path)
        except VloggerError as e:
            raise node_error(node, e, {"path": "motion_file"}) from None
        return io.NodeOutput(motion)


NODES = [MotionModelLoader, MotionSampler, MotionPreview, SaveMotion, LoadMotion]
