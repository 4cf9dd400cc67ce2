"""The body nodes through the real ComfyUI server: loader list, the shipped fit workflow,
the overlay preview, and artist-facing errors (no person, user body file corrupt)."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def _fit_prompt(image: str, detector: str = "auto", body: str = "anny_smplx") -> dict:
    p = json.loads((ROOT / "workflows" / "api" / "fit_reference.json").read_text())
    p["1"]["inputs"]["image"] = image
    p["2"]["inputs"]["body"] = body
    p["3"]["inputs"]["detector"] = detector
    return p


def test_nodes_registered(comfy):
    info = comfy.object_info()
    loader = info["VLOGGER_BodyModelLoader"]
    assert "anny_smplx" in loader["input"]["required"]["body"][1]["options"] or \
        "anny_smplx" in str(loader["input"]["required"]["body"])
    fit = info["VLOGGER_FitReference"]
    assert fit["category"] == "VLOGGER/body" and fit["description"]
    for name, spec in fit["input"]["required"].items():
        assert spec[1].get("tooltip"), name


def test_fit_workflow_overlay(comfy):
    for det in ("auto", "opencv"):
        res = comfy.run(_fit_prompt("astronaut.png", det))
        assert res.error is None, res.error
        img = np.asarray(Image.open(io.BytesIO(comfy.fetch(res.outputs["4"]["images"][0]))))
        assert img.shape[:2] == (512, 512)
        photo = np.asarray(Image.open(ROOT / "examples" / "astronaut.png").convert("RGB"))
        diff = np.abs(img[..., :3].astype(int) - photo.astype(int)).sum(-1)
        assert diff[80:180, 180:280].mean() > 20       # the body is drawn over the face
        assert diff[:20, :20].mean() < 5               # the background corner is untouched
        assert res.outputs.get("3", {}).get("images"), "FitReference shows its own preview"


def test_no_person_is_a_clear_error(comfy):
    Image.fromarray(np.full((128, 128, 3), 90, np.uint8)).save(comfy.input_dir / "blank_wall.png")
    res = comfy.run(_fit_prompt("blank_wall.png", "opencv"))
    assert res.error is not None
    assert "[VLOGGER_FitReference] input 'detector'" in str(res.error)
    res = comfy.run(_fit_prompt("blank_wall.png", "auto"))        # documented fallback
    assert res.error is None, res.error
    p = _fit_prompt("astronaut.png", "manual")
    p["3"]["inputs"]["fov"] = 3.0                                  # the core names the input at fault
    res = comfy.run(p)
    assert "[VLOGGER_FitReference] input 'fov'" in str(res.error) and "Fix:" in str(res.error), res.error


def test_corrupt_and_mismatched_user_body_files(comfy):
    """User SMPL-X files in models/vlogger/body and models/smplx: listed by the loader; a corrupt
    or mismatched one is refused with the node, the input and the fix named."""
    body_dir = comfy.models_dir / "vlogger" / "body"
    body_dir.mkdir(parents=True, exist_ok=True)
    (body_dir / "broken_smplx.npz").write_bytes(b"PK\x03\x04 truncated download")
    with np.load(ROOT / "models" / "body" / "anny_smplx.npz") as z:
        d = {k: z[k] for k in z.files}
    d["J_regressor"] = d["J_regressor"][:24]            # an SMPL (not SMPL-X) joint set
    smplx_dir = comfy.models_dir / "smplx"
    smplx_dir.mkdir(parents=True, exist_ok=True)
    np.savez(smplx_dir / "smpl_not_x.npz", **d)
    options = str(comfy.object_info()["VLOGGER_BodyModelLoader"]["input"]["required"]["body"])
    assert "broken_smplx" in options and "smpl_not_x" in options
    for name, problem in (("broken_smplx.npz", "not a readable"), ("smpl_not_x.npz", "55 joints")):
        res = comfy.run(_fit_prompt("astronaut.png", "opencv", body=name))
        assert res.error is not None, name
        msg = str(res.error)
        assert "[VLOGGER_BodyModelLoader] input 'body'" in msg and problem in msg and "Fix:" in msg, msg
    # the server survived and the shipped body still works
    assert comfy.run(_fit_prompt("astronaut.png", "opencv")).error is None
