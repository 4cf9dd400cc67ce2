"""The motion editor (web/js/vlogger_motion_editor.js) in the real frontend (headless Chromium, real
server): after a run of workflows/motion_combine.json it draws the EditMotion node's curves and the
keys its `edits` widget holds; a real mouse drag of the head-yaw key rewrites that widget's JSON;
the next run turns the head by the dragged amount inside the key's time range only (read back from
SaveMotion's npz) and the rendered frames change there only; the same JSON sent through the API
without the frontend gives the same motion. Then the other gestures (click to add, double- and
right-click to delete, the blink strip, shift-drag to mute) each rewrite the JSON as documented."""
from __future__ import annotations

import io
import json
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from comfyui_browser import (
    browser_page,
    node_of_type,
    open_workflow_file,
    queue_from_ui,
    set_widget,
    widget_value,
)
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / "workflows"
EXAMPLES = REPO / "examples"
GREY = "#808080"
YAW = "#ffa000"


@pytest.fixture(scope="module")
def page(comfy):
    with browser_page(comfy.url) as p:
        yield p


def _edits(page, node_id: int) -> dict:
    return json.loads(widget_value(page, node_id, "edits"))


def _bring_into_view(page, node_id: int) -> None:
    """The node alone near the screen's top left at zoom 1 (far from the workflow's other nodes,
    whose DOM widgets would lie over its editor), clear of the side bar."""
    page.evaluate("""(id) => {
        const n = app.graph.getNodeById(id);
        n.pos = [20000, 20000];
        app.canvas.ds.scale = 1; app.canvas.ds.offset = [140 - 20000, 40 - 20000];
        app.canvas.setDirty(true, true); app.canvas.draw(true, true);
    }""", node_id)
    page.wait_for_timeout(400)


def _count(img: np.ndarray, rgb: str, tol: int = 30) -> int:
    c = np.array([int(rgb[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(img[..., :3].astype(int) - c).max(-1) <= tol).sum())


def _drag(page, a, b, steps: int = 8, shift: bool = False) -> None:
    if shift:
        page.keyboard.down("Shift")
    page.mouse.move(*a)
    page.mouse.down()
    page.mouse.move(*b, steps=steps)
    page.mouse.up()
    if shift:
        page.keyboard.up("Shift")
    page.wait_for_timeout(100)


def _unique_motion(comfy) -> str:
    """A copy of the face motion under a new name, so no node of this server session is cached."""
    name = f"editor_{uuid.uuid4().hex[:8]}.npz"
    shutil.copy(EXAMPLES / "talking_astronaut_motion.npz", comfy.input_dir / name)
    return name


def _saved(comfy, prefix: str):
    from vlogger_core.motion.params import Motion

    files = sorted((comfy.output_dir / "vlogger").glob(f"{prefix}_*.npz"))
    assert len(files) == 1, files
    return Motion.load_npz(str(files[0]))


def _yaw_deg(a, b) -> np.ndarray:
    """Per frame, the yaw (degrees, R = Ry Rx Rz) of the head rotation that takes motion a to b."""
    from vlogger_core.motion.exchange.euler import matrix_to_euler

    k = a.joints.index("head")
    rel = b.rotation_matrices()[:, k].double() @ a.rotation_matrices()[:, k].double().transpose(-1, -2)
    return np.degrees(matrix_to_euler(rel, "YXZ")[:, 0].numpy())


def _frames(comfy, res, node: str) -> np.ndarray:
    imgs = res.outputs[node]["images"]
    return np.stack([np.asarray(Image.open(io.BytesIO(comfy.fetch(f))).convert("RGB")) for f in imgs]).astype(int)


def test_drag_a_key_edits_the_motion_in_its_range_only(comfy, page, tmp_path):
    from vlogger_core.motion.edits import curve

    tag = uuid.uuid4().hex[:8]
    open_workflow_file(page, WORKFLOWS / "motion_combine.json")
    lid, eid, sid = (node_of_type(page, t) for t in ("VLOGGER_LoadMotion", "VLOGGER_EditMotion", "VLOGGER_SaveMotion"))
    set_widget(page, lid, "motion_file", _unique_motion(comfy))
    set_widget(page, sid, "filename_prefix", f"vlogger/editor_{tag}_a")
    edits0 = _edits(page, eid)
    keys0 = edits0["tracks"]["head_yaw"]
    assert keys0 == [[2.5, 0.0], [3.0, 20.0], [3.5, 0.0]]
    first = comfy.wait(queue_from_ui(page))
    assert first.error is None, first.error
    data = first.outputs[str(eid)]["vlogger_motion_edit"][0]
    model, edited = data["model"], data["edited"]
    assert model["frames"] == 96 and model["fps"] == 24.0 and model["fps"] / model["step"] <= 25
    for c in (model["curves"], edited["curves"]):
        assert {"head_yaw", "head_pitch", "head_roll", "mouth", "blink", "gesture", "gaze_yaw", "jawOpen",
                "mouthSmileLeft", "browInnerUp"} <= set(c)
        assert all(len(v) == -(-96 // model["step"]) for v in c.values())
    assert "jawOpen" in data["tracks"] and data["groups"]["smile"] == ["mouthSmileLeft", "mouthSmileRight"]
    times = np.arange(len(model["curves"]["head_yaw"])) * model["step"] / model["fps"]
    turn = np.subtract(edited["curves"]["head_yaw"], model["curves"]["head_yaw"])
    assert turn[(times > 2.9) & (times < 3.1)].max() > 15 and np.abs(turn[times < 2.45]).max() < 0.05

    # the editor draws the curves and the widget's keys
    page.wait_for_function("(id) => !!app.graph.getNodeById(id).vloggerMotionEditor", arg=eid, timeout=30_000)
    _bring_into_view(page, eid)
    canvas = page.locator(".vlogger-motion-editor canvas").first
    box = canvas.bounding_box()
    assert box and box["width"] > 400 and box["height"] > 300, box
    shot = np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("RGB"))
    Image.fromarray(shot).save(tmp_path / "motion_editor.png")
    shutil.copy(tmp_path / "motion_editor.png", REPO / "docs" / "images" / "motion_editor.png")
    assert _count(shot, GREY, 8) > 40 and _count(shot, YAW) > 300, (_count(shot, GREY, 8), _count(shot, YAW))
    geo = json.loads(page.evaluate("() => document.querySelector('.vlogger-motion-editor').dataset.geometry"))
    g, T = geo["lanes"]["head_yaw"], geo["seconds"]
    assert T == pytest.approx(4.0, abs=0.01) and geo["width"] == pytest.approx(box["width"], abs=1)
    # the 20-degree key's dot sits on the curve it makes: the model's yaw there + 20
    k = page.evaluate("(id) => app.graph.getNodeById(id).vloggerMotionEditor.keyPoint('head_yaw', 1)", eid)
    model_at = lambda t: float(np.interp(t, times, model["curves"]["head_yaw"]))  # noqa: E731
    per_px = (g["hi"] - g["lo"]) / (g["height"] - 2 * geo["pad"])
    assert k["x"] == pytest.approx(3.0 / T * geo["width"], abs=0.5)
    assert g["top"] + g["height"] - geo["pad"] - k["y"] == pytest.approx((model_at(3.0) + 20 - g["lo"]) / per_px, abs=0.5)
    # drag it with the real mouse: 40 px later, 12 px down
    dot = (box["x"] + k["x"], box["y"] + k["y"])
    dx, dy = 40, 12
    _drag(page, dot, (dot[0] + dx, dot[1] + dy))
    keys1 = _edits(page, eid)["tracks"]["head_yaw"]
    t1 = 3.0 + dx * T / geo["width"]
    want = model_at(3.0) + 20 - dy * per_px - model_at(t1)
    assert keys1[0] == keys0[0] and keys1[2] == keys0[2], keys1
    assert keys1[1][0] == pytest.approx(t1, abs=0.01) and keys1[1][1] == pytest.approx(want, abs=0.1), (keys1, t1, want)
    assert keys1[1][1] < 20 - 0.5 * dy * per_px                     # really moved down
    edits1 = widget_value(page, eid, "edits")

    # the next run (queued from the UI: the widget's JSON) turns the head in 2.5..3.5 s only
    set_widget(page, sid, "filename_prefix", f"vlogger/editor_{tag}_b")
    second = comfy.wait(queue_from_ui(page))
    assert second.error is None, second.error
    m0, m1 = _saved(comfy, f"editor_{tag}_a"), _saved(comfy, f"editor_{tag}_b")
    centres = (np.arange(m0.num_frames) + 0.5) / m0.fps
    inside = (centres >= 2.5) & (centres <= 3.5)
    d_yaw = _yaw_deg(m0, m1)
    assert d_yaw == pytest.approx(curve(keys1, centres) - curve(keys0, centres), abs=1e-3)
    assert np.abs(d_yaw[inside]).max() > 0.8 * (20 - keys1[1][1])   # by about the dragged amount
    assert (m1.rot6d[~inside] - m0.rot6d[~inside]).abs().max() < 1e-4
    assert (m1.expression - m0.expression).abs().max() < 1e-4        # only the head was edited
    shown = second.outputs[str(eid)]["vlogger_motion_edit"][0]
    assert shown["edits"] == edits1
    moved = np.subtract(shown["edited"]["curves"]["head_yaw"], edited["curves"]["head_yaw"])
    assert np.abs(moved[(times < 2.45) | (times > 3.55)]).max() < 1e-3 and np.abs(moved).max() > 3

    # the same JSON through the API, without the frontend: the same motion; and rendered frames
    # (the original edits vs. the dragged ones) differ inside 2.5..3.5 s only
    prompt = comfy.workflow("motion_combine")
    prompt["1"]["inputs"]["motion_file"] = _unique_motion(comfy)
    prompt["6"]["inputs"]["edits"] = edits1
    prompt["5"]["inputs"]["filename_prefix"] = f"vlogger/editor_{tag}_c"
    prompt["16"] = {"class_type": "VLOGGER_EditMotion", "inputs": {"motion": ["3", 0], "edits": json.dumps(edits0)}}
    prompt["11"] = {"class_type": "LoadImage", "inputs": {"image": "astronaut.png"}}
    prompt["12"] = {"class_type": "VLOGGER_BodyModelLoader", "inputs": {"body": "anny_smplx"}}
    prompt["13"] = {"class_type": "VLOGGER_FitReference", "inputs": {
        "image": ["11", 0], "body": ["12", 0], "detector": "auto", "scale": 1.0, "offset_x": 0.0, "offset_y": 0.0,
        "rotation": 0.0, "fov": 0.0, "no_person": "refuse", "background": "white"}}
    start, count = 36, 60                                            # 1.5 .. 4.0 s
    for rid, mid, pid in (("14", "6", "17"), ("15", "16", "18")):
        prompt[rid] = {"class_type": "VLOGGER_RenderFrames", "inputs": {
            "body": ["12", 0], "fit": ["13", 0], "motion": [mid, 0], "resolution": "256",
            "start_frame": start, "max_frames": count}}
        prompt[pid] = {"class_type": "PreviewImage", "inputs": {"images": [rid, 0]}}
    api = comfy.run(prompt)
    assert api.error is None, api.error
    m2 = _saved(comfy, f"editor_{tag}_c")
    assert torch.equal(m2.expression, m1.expression) and torch.equal(m2.rot6d, m1.rot6d)
    dragged, original = _frames(comfy, api, "17"), _frames(comfy, api, "18")
    assert dragged.shape == (count, 256, 256, 3)
    diff = np.abs(dragged - original).max(axis=(1, 2, 3))
    frame_in = inside[start:start + count]
    assert (diff[~frame_in] == 0).all(), diff
    turned = diff[frame_in & (np.abs(d_yaw[start:start + count]) > 2)]
    assert len(turned) > 5 and (turned > 20).all(), diff


def test_editor_gestures_rewrite_the_edits(comfy, page):
    """Click to add, double- and right-click to delete, the blink strip and a shift-drag on the
    time axis, on the editor shown by a run (the same page as above or a fresh run)."""
    shown = "() => !!app.graph._nodes.find(n => n.type === 'VLOGGER_EditMotion')?.vloggerMotionEditor"
    if not page.evaluate(shown):
        open_workflow_file(page, WORKFLOWS / "motion_combine.json")
        eid = node_of_type(page, "VLOGGER_EditMotion")
        set_widget(page, node_of_type(page, "VLOGGER_LoadMotion"), "motion_file", _unique_motion(comfy))
        res = comfy.wait(queue_from_ui(page))
        assert res.error is None, res.error
        page.wait_for_function(shown, timeout=30_000)
    eid = node_of_type(page, "VLOGGER_EditMotion")
    # start from the workflow's edits again: the editor reads its keys from the widget
    set_widget(page, eid, "edits", json.dumps({"version": 1, "tracks": {}, "blinks": [], "mute": []}))
    _bring_into_view(page, eid)
    box = page.locator(".vlogger-motion-editor canvas").first.bounding_box()
    geo = json.loads(page.evaluate("() => document.querySelector('.vlogger-motion-editor').dataset.geometry"))
    T, W = geo["seconds"], geo["width"]
    at = lambda t, y: (box["x"] + t / T * W, box["y"] + y)            # noqa: E731
    g = geo["lanes"]["smile"]
    # a click in the smile lane: a bump (zero keys 0.5 s either side) with the clicked value
    page.mouse.click(*at(2.0, g["top"] + g["height"] / 2))
    page.wait_for_timeout(100)
    smile = _edits(page, eid)["tracks"]["smile"]
    assert [k[0] for k in smile] == pytest.approx([1.5, 2.0, 2.5], abs=0.01) and smile[0][1] == smile[2][1] == 0
    assert smile[1][1] != 0
    # a second click adds one key; a right-click on it deletes it again
    page.mouse.click(*at(2.3, g["top"] + 6))
    page.wait_for_timeout(100)
    assert len(_edits(page, eid)["tracks"]["smile"]) == 4
    k = page.evaluate("(id) => app.graph.getNodeById(id).vloggerMotionEditor.keyPoint('smile', 2)", eid)
    page.mouse.click(box["x"] + k["x"], box["y"] + k["y"], button="right")
    page.wait_for_timeout(100)
    assert _edits(page, eid)["tracks"]["smile"] == smile
    # a double-click deletes the bump's key; only zeros left: no smile edit at all
    k = page.evaluate("(id) => app.graph.getNodeById(id).vloggerMotionEditor.keyPoint('smile', 1)", eid)
    page.mouse.dblclick(box["x"] + k["x"], box["y"] + k["y"])
    page.wait_for_timeout(100)
    assert "smile" not in _edits(page, eid)["tracks"]
    # the blink strip: a click adds a blink; a click on it takes it back
    yb = sum(geo["blink"]) / 2
    page.mouse.click(*at(0.6, yb))
    page.wait_for_timeout(100)
    blinks = _edits(page, eid)["blinks"]
    assert len(blinks) == 1 and blinks[0]["action"] == "add" and blinks[0]["t"] == pytest.approx(0.6, abs=0.01)
    page.mouse.click(*at(0.6, yb))
    page.wait_for_timeout(100)
    assert _edits(page, eid)["blinks"] == []
    # shift-drag on the time axis: a muted range; a click in it unmutes
    ya = sum(geo["axis"]) / 2
    _drag(page, at(1.0, ya), at(2.0, ya), shift=True)
    mute = _edits(page, eid)["mute"]
    assert len(mute) == 1 and mute[0] == pytest.approx([1.0, 2.0], abs=0.01), mute
    page.mouse.click(*at(1.5, ya))
    page.wait_for_timeout(100)
    assert _edits(page, eid)["mute"] == []
    # "+ lane": a lane for any ARKit expression, with the incoming weights drawn in it
    h0 = box["height"]
    page.locator(".vlogger-motion-editor-add").first.select_option("jawOpen")
    page.wait_for_timeout(300)
    geo2 = json.loads(page.evaluate("() => document.querySelector('.vlogger-motion-editor').dataset.geometry"))
    jaw = geo2["lanes"]["jawOpen"]
    assert jaw["top"] == geo["lanes"]["gesture_amount"]["top"] + jaw["height"] and jaw["hi"] > 1
    assert page.locator(".vlogger-motion-editor canvas").first.bounding_box()["height"] == pytest.approx(h0 + jaw["height"], abs=1)
    # a widget text that is not JSON: the editor says so and leaves it alone
    set_widget(page, eid, "edits", "{not json")
    page.mouse.click(*at(2.0, g["top"] + g["height"] / 2))
    page.wait_for_timeout(100)
    assert widget_value(page, eid, "edits") == "{not json"
    assert "not readable" in page.evaluate("() => document.querySelector('.vlogger-motion-editor span').textContent")
    assert [e for e in page.errors if "vlogger" in e.lower()] == [], page.errors


def test_editor_payload_curves_read_the_motion():
    """What the editor draws (no server): motion_timeline(expressions=True) adds each ARKit
    weight by name and the eyes' gaze in degrees, on the same frames as the view's curves."""
    from vlogger_core.motion.edits import apply_edits
    from vlogger_core.motion.params import ARKIT52, Motion
    from vlogger_core.motion.plot import motion_timeline

    m = Motion.neutral(50, 25.0)
    m.expression[10:20, ARKIT52.index("mouthSmileLeft")] = 0.7
    e = apply_edits(m, {"tracks": {"gaze_yaw": [[0.8, 0.0], [1.0, 10.0], [1.2, 0.0]]}})
    d = motion_timeline(e, None, max_points=25, expressions=True)
    c = {k: np.array(v) for k, v in d["curves"].items()}
    assert d["step"] == 2 and all(len(v) == 25 for v in c.values()) and set(ARKIT52) <= set(c)
    assert c["mouthSmileLeft"][5:10] == pytest.approx(0.7) and c["mouthSmileLeft"][12] == 0
    assert c["gaze_yaw"][12] == pytest.approx(np.degrees(np.radians(10) * (1 - 0.5 / 5)), abs=0.05)
    assert abs(c["gaze_yaw"][2]) < 1e-4 and np.abs(c["gaze_pitch"]).max() < 1e-3
    assert set(motion_timeline(e, None)["curves"]) == {"mouth", "blink", "head_pitch", "head_yaw", "head_roll", "gesture"}
