"""Motion exchange with other tools: ARKit blendshape CSV (Live Link Face) in and out, BVH out."""
from __future__ import annotations

import json
import os

import folder_paths
from comfy_api.latest import io, ui

from vlogger_core.errors import VloggerError
from vlogger_core.motion.exchange.arkit_csv import (
    UNITS,
    read_arkit_csv,
    write_arkit_csv,
)
from vlogger_core.motion.exchange.bvh import write_bvh
from vlogger_core.motion.params import Motion

from .common import VloggerNode, input_error, node_error
from .types import Body, Fit
from .types import Motion as MotionType

UNITS_TIP = "The unit of the head and eye angles (Live Link Face writes radians)."


def _motion(node: str, motion) -> Motion:
    if not isinstance(motion, Motion):
        raise input_error(node, "motion", "is not a VLOGGER motion", "connect a Motion (sampler, Reenact, Load Motion)")
    return motion


def _output_file(prefix: str, ext: str) -> tuple[str, str]:
    """(a fresh numbered path in ComfyUI's output folder, its name relative to that folder)."""
    folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(prefix, folder_paths.get_output_directory())
    os.makedirs(folder, exist_ok=True)
    file = f"{name}_{counter:05}_.{ext}"
    return os.path.join(folder, file), os.path.join(subfolder, file)


class LoadARKitCSV(VloggerNode):
    @classmethod
    def define_schema(cls):
        files = sorted(f for f in os.listdir(folder_paths.get_input_directory()) if f.lower().endswith(".csv"))
        return io.Schema(
            node_id="VLOGGER_LoadARKitCSV",
            display_name="VLOGGER Load ARKit CSV (Live Link Face)",
            category="VLOGGER/exchange",
            description=(
                "Loads a face capture as Live Link Face (iPhone) exports it, a CSV with Timecode, "
                "BlendshapeCount, the 52 ARKit blendshapes by name, head yaw/pitch/roll and eye angles, "
                "into a VLOGGER motion: columns matched by name in any order (missing ones read as 0 and "
                "are reported), the capture's own frame rate read from the timecodes and resampled to "
                "'fps'. The body's other joints stay at the photo's pose."),
            inputs=[
                io.Combo.Input("csv_file", options=files or [""],
                               tooltip="A .csv in ComfyUI's input folder (Live Link Face: export the take as CSV)."),
                io.Float.Input("fps", default=24.0, min=1.0, max=120.0, step=0.001,
                               tooltip="The frame rate of the motion out (the capture is resampled to it)."),
                io.Float.Input("csv_fps", default=0.0, min=0.0, max=240.0, step=0.001,
                               tooltip="The rate the CSV was recorded at; 0 = read it from the timecodes "
                                       "(needs at least a second of frames)."),
                io.Combo.Input("units", options=list(UNITS), default="radians", tooltip=UNITS_TIP),
            ],
            outputs=[MotionType.Output("motion", tooltip="The face capture as a VLOGGER motion.")],
        )

    @classmethod
    def execute(cls, csv_file, fps, csv_fps, units) -> io.NodeOutput:
        node = "VLOGGER_LoadARKitCSV"
        path = os.path.join(folder_paths.get_input_directory(), csv_file or "")
        if not csv_file or not os.path.isfile(path):
            raise input_error(node, "csv_file", f"'{csv_file}' is not in the input folder",
                              "copy the CSV exported from Live Link Face into ComfyUI's input folder")
        try:
            motion, report = read_arkit_csv(path, float(fps), float(csv_fps), units)
        except VloggerError as e:
            raise node_error(node, e, {"path": "csv_file"}) from None
        text = (f"{report['frames_in_file']} rows at {report['capture_fps']:g} fps -> {motion.num_frames} frames "
                f"at {motion.fps:g} fps")
        if report["missing_blendshapes"]:
            text += f"\nmissing blendshapes (read as 0): {', '.join(report['missing_blendshapes'])}"
        if report["missing_rotations"]:
            text += f"\nno angles for: {', '.join(report['missing_rotations'])} (no rotation)"
        return io.NodeOutput(motion, ui=ui.PreviewText(text + "\n" + json.dumps(report)))


class SaveARKitCSV(VloggerNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VLOGGER_SaveARKitCSV",
            display_name="VLOGGER Save ARKit CSV (Live Link Face)",
            category="VLOGGER/exchange",
            description=(
                "Saves the motion's face as a Live Link Face CSV (Timecode, BlendshapeCount, the 52 ARKit "
                "blendshapes, head yaw/pitch/roll, eye angles) in ComfyUI's output folder, one row per frame "
                "at the motion's rate, for Unreal (Live Link Face importer), Blender or Maya add-ons."),
            inputs=[MotionType.Input("motion", tooltip="The motion to save (the default body's ARKit expressions)."),
                    io.String.Input("filename_prefix", default="vlogger/face",
                                    tooltip="Output file prefix (sub-folders allowed)."),
                    io.Combo.Input("units", options=list(UNITS), default="radians", tooltip=UNITS_TIP)],
            outputs=[io.String.Output("path", tooltip="Where the file was written.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, motion, filename_prefix, units) -> io.NodeOutput:
        node = "VLOGGER_SaveARKitCSV"
        motion = _motion(node, motion)
        path, shown = _output_file(filename_prefix, "csv")
        try:
            write_arkit_csv(path, motion, units)
        except VloggerError as e:
            raise node_error(node, e) from None
        return io.NodeOutput(path, ui=ui.PreviewText(f"saved {shown} ({motion.num_frames} frames)"))


class SaveBVH(VloggerNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VLOGGER_SaveBVH",
            display_name="VLOGGER Save BVH (body motion)",
            category="VLOGGER/exchange",
            description=(
                "Saves the body posed by the motion as BVH in ComfyUI's output folder: the SMPL-X joint "
                "hierarchy with the rest offsets of the fitted body (in metres), the fit's placement and "
                "pose with the motion composed on it. Axes: Y up, the person facing +Z; Blender's BVH "
                "import with its defaults (Scale 1.0, Forward -Z, Up Y) shows it upright, facing the "
                "front view, at real size."),
            inputs=[Body.Input("body", tooltip="The body model the fit and motion are for."),
                    Fit.Input("fit", tooltip="The fitted body (VLOGGER Fit Reference): its shape and pose."),
                    MotionType.Input("motion", tooltip="The motion to export."),
                    io.String.Input("filename_prefix", default="vlogger/body",
                                    tooltip="Output file prefix (sub-folders allowed).")],
            outputs=[io.String.Output("path", tooltip="Where the file was written.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, body, fit, motion, filename_prefix) -> io.NodeOutput:
        node = "VLOGGER_SaveBVH"
        motion = _motion(node, motion)
        path, shown = _output_file(filename_prefix, "bvh")
        try:
            notes = write_bvh(path, body, fit, motion)
        except VloggerError as e:
            raise node_error(node, e) from None
        return io.NodeOutput(path, ui=ui.PreviewText("\n".join([f"saved {shown} ({motion.num_frames} frames)",
                                                                *notes])))


NODES = [LoadARKitCSV, SaveARKitCSV, SaveBVH]
