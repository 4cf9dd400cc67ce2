"""Getting the weights: download the model files a shipped workflow needs (huggingface_hub) into
ComfyUI's model folders."""
from __future__ import annotations

import folder_paths
from comfy_api.latest import io, ui

from vlogger_core.bridge.model_fetch import (
    MODEL_SETS,
    FetchError,
    fetch,
    model_set,
    parse_file,
)

from .common import (
    VloggerNode,
    input_error,
    interrupt_check,
    node_error,
    progress_callback,
)

NODE = "VLOGGER_FetchModels"
CUSTOM = "one file (below)"
FOLDERS = ["checkpoints", "diffusion_models", "text_encoders", "vae", "clip_vision", "loras",
           "audio_encoders", "controlnet", "vlogger_video"]


def target_dir(folder: str) -> str:
    """The first folder ComfyUI searches for this kind of model (created if missing)."""
    try:
        paths = folder_paths.get_folder_paths(folder)
    except KeyError:
        paths = []
    if not paths:
        raise input_error(NODE, "folder", f"ComfyUI has no model folder '{folder}'",
                          f"pick one of: {', '.join(FOLDERS)}")
    return paths[0]


class FetchModels(VloggerNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=NODE,
            display_name="VLOGGER Fetch Models (Hugging Face)",
            category="VLOGGER/bridge",
            description=(
                "Downloads the model files a shipped workflow needs (wan_animate, wan_s2v, "
                "sd15_openpose: the files ComfyUI's own templates use) from Hugging Face into "
                "ComfyUI's model folders, or one file of your choice (e.g. a published VLOGGER "
                "video model). Shows progress, resumes an interrupted download, checks each "
                "file's sha256 against the hub's and moves it into place only when complete. "
                "Files already there are kept. Offline it says so and lists where to get each "
                "file by hand. Press Refresh (R) afterwards so the loaders list the new files."),
            inputs=[
                io.Combo.Input("workflow", options=[*MODEL_SETS, CUSTOM], default="wan_animate",
                               tooltip="Whose model files to get, or one file given below."),
                io.String.Input("file", default="owner/repository/model.safetensors", optional=True,
                                tooltip="Only for 'one file': repository and path on Hugging Face "
                                        "(safetensors only), optionally @revision."),
                io.Combo.Input("folder", options=FOLDERS, default="checkpoints", optional=True,
                               tooltip="Only for 'one file': the model folder it goes in."),
            ],
            outputs=[io.String.Output("report", tooltip="The files and where they are.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, workflow, file="", folder="checkpoints") -> io.NodeOutput:
        try:
            files = [parse_file(file, folder)] if workflow == CUSTOM else model_set(workflow)
            dirs = {f.folder: target_dir(f.folder) for f in files}
            paths = fetch(files, dirs, progress_callback(), interrupt_check)
        except FetchError as e:
            raise node_error(NODE, e, {"spec": "file", "workflow": "workflow"}, default="workflow") from None
        text = "\n".join(str(p) for p in paths)
        return io.NodeOutput(text, ui=ui.PreviewText(text))


NODES = [FetchModels]
