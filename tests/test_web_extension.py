"""The pack's frontend extension in the real frontend (headless Chromium, real server): it loads
once without console errors; the fit editor's drag and wheel write the override widgets and the
next run uses them; the motion view draws its tracks and plays the speech (checked on pixels of
screenshots, not on the DOM)."""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from comfyui_browser import browser_page, open_workflow_file, queue_from_ui

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / "workflows"
OUR_JS = ("vlogger_audio.js", "vlogger_fit_editor.js", "vlogger_motion_view.js")


@pytest.fixture(scope="module")
def page(comfy):
    with browser_page(comfy.url) as p:
        yield p


def _node_id(page, node_type: str) -> int:
    return page.evaluate("(t) => app.graph._nodes.find(n => n.type === t).id", node_type)


def _bring_into_view(page, node_id: int) -> None:
    """Put the node at the top-left of the canvas at zoom 1, so its DOM widgets are on screen."""
    page.evaluate("""(id) => {
        const n = app.graph.getNodeById(id);
        n.pos = [40, 40];
        app.canvas.ds.scale = 1; app.canvas.ds.offset = [0, 0];
        app.canvas.setDirty(true, true); app.canvas.draw(true, true);
    }""", node_id)
    page.wait_for_timeout(400)


def _widgets(page, node_id: int) -> dict:
    return page.evaluate("(id) => Object.fromEntries(app.graph.getNodeById(id).widgets"
                         ".filter(w => typeof w.value === 'number').map(w => [w.name, w.value]))", node_id)


def _count(img: np.ndarray, rgb: str, tol: int = 40) -> int:
    c = np.array([int(rgb[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(img[..., :3].astype(int) - c).max(-1) <= tol).sum())


def _shot(locator) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("RGB"))


def test_extension_loads_once_without_console_errors(comfy, page):
    """Each of our scripts is fetched once (the web folder must be registered once: a second
    registration, e.g. from pyproject's [tool.comfy] web, loads every script twice and the
    frontend refuses the second registration with a console error) and no console error
    mentions the pack. (The stock frontend logs its own on a fresh user folder: 404s for
    user.css and userdata, an offline registry lookup.)"""
    for name in OUR_JS:
        hits = [u for u in page.requests if u.split("?")[0].endswith("/" + name)]
        assert len(hits) == 1, f"{name} fetched {len(hits)} times: {hits}"
    ours = [e for e in page.errors if "vlogger" in e.lower() or "already registered" in e]
    assert ours == [], ours


def test_fit_editor_drag_and_wheel_drive_the_next_fit(comfy, page, tmp_path):
    open_workflow_file(page, WORKFLOWS / "fit_reference.json")
    fid = _node_id(page, "VLOGGER_FitReference")
    first = comfy.wait(queue_from_ui(page))
    assert first.error is None, first.error
    fit0 = first.outputs[str(fid)]["vlogger_fit"][0]
    page.wait_for_function("(id) => { const e = app.graph.getNodeById(id).vloggerFitEditor;"
                           " return e && e.img.complete && e.img.naturalWidth > 0; }", arg=fid, timeout=30_000)
    _bring_into_view(page, fid)
    canvas = page.locator(".vlogger-fit-editor canvas").first
    box = canvas.bounding_box()
    assert box and box["width"] > 100 and box["height"] > 100, box
    s = float(page.evaluate("() => document.querySelector('.vlogger-fit-editor').dataset.cssScale"))
    before = _widgets(page, fid)
    # drag inside the picture, away from the handles (top of the outline)
    x0, y0 = box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.75
    dx, dy = 40, 24
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + dx / 2, y0 + dy / 2, steps=3)
    page.mouse.move(x0 + dx, y0 + dy, steps=3)
    page.mouse.up()
    page.mouse.move(x0 + dx, y0 + dy)
    page.mouse.wheel(0, -200)                                   # scale up by exp(0.2)
    page.wait_for_timeout(300)
    after = _widgets(page, fid)
    W, H = fit0["width"], fit0["height"]
    assert after["offset_x"] - before["offset_x"] == pytest.approx(dx / s / W, abs=2e-3)
    assert after["offset_y"] - before["offset_y"] == pytest.approx(dy / s / H, abs=2e-3)
    assert after["scale"] / before["scale"] == pytest.approx(np.exp(0.2), rel=0.02)
    # the editor previews the pending edit: the new outline (cyan) over the old one (yellow)
    shot = _shot(canvas)
    Image.fromarray(shot).save(tmp_path / "fit_editor.png")
    assert _count(shot, "#00e5ff", 30) > 100 and _count(shot, "#ffff00", 40) > 30
    shutil.copy(tmp_path / "fit_editor.png", REPO / "docs" / "images" / "fit_editor.png")
    # the next run (queued from the UI, so with the widgets' values) uses the correction
    second = comfy.wait(queue_from_ui(page))
    assert second.error is None, second.error
    fit1 = second.outputs[str(fid)]["vlogger_fit"][0]
    for k in ("offset_x", "offset_y", "scale"):
        assert fit1["overrides"][k] == pytest.approx(after[k], abs=1e-6), k
    # offsets move the face by the dragged pixels; scale keeps the face centre in place
    moved = np.subtract(fit1["face_center"], fit0["face_center"])
    assert moved == pytest.approx([dx / s, dy / s], abs=2.0), moved
    # the face grows by the wheel's factor (the outline is clipped by the photo's borders)
    grown = np.ptp(np.array(fit1["landmarks"]), 0) / np.ptp(np.array(fit0["landmarks"]), 0)
    assert grown.mean() == pytest.approx(np.exp(0.2), rel=0.05), grown


def test_motion_view_draws_tracks_and_plays_the_speech(comfy, page, tmp_path):
    open_workflow_file(page, WORKFLOWS / "motion_from_speech.json")
    pid = _node_id(page, "VLOGGER_MotionSampler")
    res = comfy.wait(queue_from_ui(page))
    assert res.error is None, res.error
    data = res.outputs[str(pid)]["vlogger_motion"][0]
    assert data["frames"] > 10 and set(data["curves"]) >= {"mouth", "blink", "head_yaw", "gesture"}
    assert res.outputs[str(_node_id(page, "VLOGGER_MotionPreview"))]["vlogger_motion"][0]["frames"] == data["frames"]
    page.wait_for_function("(id) => !!app.graph.getNodeById(id).vloggerMotionView", arg=pid, timeout=30_000)
    page.wait_for_timeout(500)
    view = page.locator(".vlogger-motion-view").first
    shot = _shot(view.locator("canvas"))
    Image.fromarray(shot).save(tmp_path / "motion_view.png")
    shutil.copy(tmp_path / "motion_view.png", REPO / "docs" / "images" / "motion_view.png")
    counts = {c: _count(shot, c, 30) for c in ("#9a9a9a", "#ff3030", "#b040ff", "#ffa000", "#2090ff",
                                               "#30d050", "#e0d020")}
    assert all(n > 40 for n in counts.values()), counts
    # play: the audio element runs and the playhead moves
    view.locator(".vlogger-motion-play").click()
    page.wait_for_timeout(1200)
    state = page.evaluate("(id) => { const a = app.graph.getNodeById(id).vloggerMotionView.audio;"
                          " return {paused: a.paused, t: a.currentTime, src: a.src}; }", pid)
    assert not state["paused"] and state["t"] > 0.2, state
    view.locator(".vlogger-motion-play").click()                # pause
    assert json.loads(json.dumps(state))["src"].endswith("type=temp")
