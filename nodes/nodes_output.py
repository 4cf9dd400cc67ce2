"""Writing the talking video: an IMAGE batch + the speech -> MP4 (H.264 + AAC) in ComfyUI's output."""
from __future__ import annotations

import os

import folder_paths
import torch
from comfy_api.latest import io, ui

from vlogger_core.audio.comfy_audio import from_audio
from vlogger_core.audio.speech_io import SpeechError
from vlogger_core.media import StreamingMP4Writer

from .common import (
    VloggerNode,
    input_error,
    interrupt_check,
    node_error,
    progress_callback,
)


def audio_input(node_id: str, audio: dict | None, name: str = "audio") -> tuple[torch.Tensor | None, int | None]:
    """An optional AUDIO input as (mono wave, rate), (None, None) when not connected; a bad one
    is reported as this node's input `name`."""
    if audio is None:
        return None, None
    try:
        return from_audio(audio)
    except SpeechError as e:
        raise node_error(node_id, e, {"audio": name}) from None


def output_path(node_id: str, prefix: str, width: int, height: int, ext: str = "mp4"):
    """A fresh numbered path in ComfyUI's output folder (subfolders allowed in the prefix)."""
    try:
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
            prefix, folder_paths.get_output_directory(), width, height)
        os.makedirs(folder, exist_ok=True)
    except Exception as e:
        raise input_error(node_id, "filename_prefix", f"cannot be used as an output path ({e})",
                          "use a plain name like 'vlogger/talking' inside the output folder")
    if not os.access(folder, os.W_OK):
        raise input_error(node_id, "filename_prefix", f"the folder {folder} is not writable",
                          "pick another prefix or fix the folder's permissions")
    file = f"{name}_{counter:05}_.{ext}"
    return os.path.join(folder, file), file, subfolder


class SaveVideo(VloggerNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VLOGGER_SaveVideo",
            display_name="VLOGGER Save Video (MP4 + speech)",
            category="VLOGGER/output",
            description=(
                "Writes the frames as an MP4 (H.264) with the speech muxed in (AAC) to ComfyUI's "
                "output folder and shows it in the UI. The file appears only when complete "
                "(written under a temporary name, then renamed). The video is as long as the "
                "frames; longer audio is cut, shorter audio is padded with silence. An odd width "
                "or height is padded by one edge pixel (H.264 needs even sizes)."),
            inputs=[
                io.Image.Input("images", tooltip="The frames, an IMAGE batch [frames, H, W, 3]."),
                io.Float.Input("fps", default=24.0, min=1.0, max=120.0, step=1.0,
                               tooltip="Frames per second: use the fps the motion was sampled at."),
                io.String.Input("filename_prefix", default="vlogger/talking",
                                tooltip="Name (and optional subfolder) inside ComfyUI's output folder."),
                io.Audio.Input("audio", optional=True,
                               tooltip="The speech to mux in (any sample rate, mono or stereo)."),
                io.Int.Input("crf", default=20, min=0, max=51, optional=True,
                             tooltip="H.264 quality: lower is better and bigger (18-23 is typical)."),
            ],
            outputs=[io.String.Output("path", tooltip="Absolute path of the written MP4.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, images, fps, filename_prefix, audio=None, crf=20) -> io.NodeOutput:
        node = "VLOGGER_SaveVideo"
        if images.dim() != 4 or images.shape[-1] != 3 or images.shape[0] == 0:
            raise input_error(node, "images", f"expected an IMAGE batch [N,H,W,3], got {tuple(images.shape)}",
                              "connect the frames from VLOGGER_RenderFrames or any IMAGE output")
        if not (0 < fps <= 240):
            raise input_error(node, "fps", f"{fps} is not a usable frame rate", "use 24, 25 or 30")
        n, h, w, _ = images.shape
        if h % 2 or w % 2:
            images = torch.nn.functional.pad(images.permute(0, 3, 1, 2), (0, w % 2, 0, h % 2),
                                             mode="replicate").permute(0, 2, 3, 1)
            n, h, w, _ = images.shape
        wave, sr = audio_input(node, audio)
        path, file, subfolder = output_path(node, filename_prefix, w, h)
        progress = progress_callback(n)
        with StreamingMP4Writer(path, fps, w, h, wave, sr, crf=crf) as writer:
            for start in range(0, n, 32):
                interrupt_check()
                writer.write(images[start:start + 32])
                progress(min(n, start + 32), n)
        return io.NodeOutput(path, ui=ui.PreviewVideo([ui.SavedResult(file, subfolder, io.FolderType.output)]))


NODES = [SaveVideo]
