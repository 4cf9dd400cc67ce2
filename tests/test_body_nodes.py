"""The body nodes through the real ComfyUI server: loader list, the shipped fit workflow,
the overlay preview, and artist-facing errors and documented behaviour for bad photos (no person,
several people, a face too small or cut by the edge, grayscale / RGBA, 6000x6000) and user body
files (corrupt, mismatched)."""
from __future__ import annotations

import io
import json
import shutil
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
    # a photo name no other test uses: ComfyUI reports no UI output for a node it takes from its cache
    shutil.copy(ROOT / "examples" / "astronaut.png", comfy.input_dir / "astronaut_overlay.png")
    for det in ("auto", "opencv"):
        res = comfy.run(_fit_prompt("astronaut_overlay.png", det))
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
    res = comfy.run(_fit_prompt("blank_wall.png", "auto"))        # no person: refused by default
    assert "[VLOGGER_FitReference] input 'image'" in str(res.error) and "no_person" in str(res.error), res.error
    p = _fit_prompt("blank_wall.png", "auto")
    p["3"]["inputs"]["no_person"] = "warn"                         # documented fallback, asked for
    res = comfy.run(p)
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


def _photo() -> Image.Image:
    return Image.open(ROOT / "examples" / "astronaut.png").convert("RGB")


def _editor(res) -> dict:
    """What FitReference sends its editor: detector, fitted landmarks, face centre, warnings."""
    return res.outputs["3"]["vlogger_fit"][0]


def test_no_person_landmarks_names_the_detector_and_auto_warns(comfy):
    Image.fromarray(np.full((256, 256, 3), 90, np.uint8)).save(comfy.input_dir / "blank_wall.png")
    res = comfy.run(_fit_prompt("blank_wall.png", "landmarks"))
    msg = str(res.error)
    assert "[VLOGGER_FitReference] input 'detector'" in msg and "no face" in msg and "Fix:" in msg, msg
    p = _fit_prompt("blank_wall.png", "auto")
    p["3"]["inputs"]["no_person"] = "warn"
    res = comfy.run(p)
    assert res.error is None, res.error
    ed = _editor(res)
    assert ed["detector"] == "manual" and any("no face found" in w for w in ed["warnings"]), ed["warnings"]


def test_several_people_fit_the_largest_face(comfy):
    """Two people: the one with the larger face is fitted, wherever it stands, and the warning
    says so and how to fit the other."""
    # head-and-shoulders crops: the short-range detector finds faces over ~15% of the long side
    big = _photo().crop((60, 0, 380, 320))
    small = big.resize((224, 224), Image.LANCZOS)
    for big_left in (True, False):
        canvas = Image.new("RGB", (544, 320), (120, 120, 120))
        canvas.paste(big, (0 if big_left else 224, 0))
        canvas.paste(small, (320 if big_left else 0, 96))
        canvas.save(comfy.input_dir / "two_people.png")
        res = comfy.run(_fit_prompt("two_people.png", "auto"))
        assert res.error is None, res.error
        ed = _editor(res)
        assert ed["detector"] == "landmarks"
        assert any("2 faces" in w and "largest" in w and "crop" in w for w in ed["warnings"]), ed["warnings"]
        cx = ed["face_center"][0]
        # the big crop's face is at x ~ 170 in it
        assert (120 < cx < 220) if big_left else (344 < cx < 444), (big_left, cx)


def test_a_face_under_40_px_is_refused(comfy):
    _photo().resize((120, 120), Image.LANCZOS).save(comfy.input_dir / "tiny_face.png")
    for det in ("auto", "landmarks"):
        res = comfy.run(_fit_prompt("tiny_face.png", det))
        msg = str(res.error)
        assert "[VLOGGER_FitReference] input 'image'" in msg and "40 px" in msg and "crop" in msg, msg


def test_a_face_cut_by_the_edge_fits_with_a_warning(comfy):
    # the face spans x ~ 170..290: cut at 215, a third of it is outside
    Image.fromarray(np.asarray(_photo())[:, 215:].copy()).save(comfy.input_dir / "cut_face.png")
    res = comfy.run(_fit_prompt("cut_face.png", "auto"))
    assert res.error is None, res.error
    ed = _editor(res)
    assert ed["detector"] == "landmarks"
    assert any("cut by the photo's edge" in w for w in ed["warnings"]), ed["warnings"]
    res = comfy.run(_fit_prompt("astronaut.png", "auto"))      # the whole photo: no such warning
    assert not any("edge" in w for w in _editor(res)["warnings"]), _editor(res)["warnings"]


def test_grayscale_and_rgba_photos(comfy):
    """A grayscale PNG and an RGBA one (through LoadImage), and a real 4-channel IMAGE
    (JoinImageWithAlpha): all fit with the landmarks; transparency becomes white."""
    _photo().convert("L").save(comfy.input_dir / "grey.png")
    rgba = np.dstack([np.asarray(_photo()), np.full((512, 512), 255, np.uint8)])
    rgba[:64, :64, 3] = 0                              # a transparent corner
    Image.fromarray(rgba, "RGBA").save(comfy.input_dir / "rgba.png")
    for name in ("grey.png", "rgba.png"):
        res = comfy.run(_fit_prompt(name, "auto"))
        assert res.error is None, (name, res.error)
        assert _editor(res)["detector"] == "landmarks", name
    p = _fit_prompt("rgba.png", "auto")
    p["5"] = {"class_type": "JoinImageWithAlpha", "inputs": {"image": ["1", 0], "alpha": ["1", 1]}}
    p["3"]["inputs"]["image"] = ["5", 0]
    res = comfy.run(p)
    assert res.error is None, res.error
    assert _editor(res)["detector"] == "landmarks"
    img = np.asarray(Image.open(io.BytesIO(comfy.fetch(res.outputs["4"]["images"][0]))))[..., :3]
    assert img[:48, :48].min() > 250 and img[100:120, 100:120].mean() < 200   # white where transparent


def test_a_6000_px_photo_fits_like_the_512_one(comfy):
    """Detected on a 1280 px copy; the fit lands where the 512 px photo's does, scaled; the
    overlay and the editor show it at 2048 px (benchmarks/fit_large_photo.py: peak memory)."""
    _photo().resize((6000, 6000), Image.BICUBIC).save(comfy.input_dir / "huge.png", compress_level=1)
    res = comfy.run(_fit_prompt("huge.png", "auto"))
    assert res.error is None, res.error
    ed = _editor(res)
    assert ed["detector"] == "landmarks" and (ed["width"], ed["height"]) == (2048, 2048)
    overlay = Image.open(io.BytesIO(comfy.fetch(res.outputs["4"]["images"][0])))
    assert overlay.size == (2048, 2048)
    ref = _editor(comfy.run(_fit_prompt("astronaut.png", "auto")))
    centre = np.array(ed["face_center"]) * 512 / 2048
    assert np.abs(centre - np.array(ref["face_center"])).max() < 3, (centre, ref["face_center"])
