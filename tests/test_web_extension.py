"""The pack's frontend extension in the real frontend (headless Chromium, real server): it loads
once and adds no console error; the fit editor's drag, wheel, scale handle and turn knob write
the override widgets and the next run uses them (read back from /history); the motion view
draws its tracks and plays the speech (checked on pixels of screenshots, not on the DOM)."""
from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from comfyui_browser import (
    browser_page,
    graph_to_api,
    open_workflow_file,
    queue_from_ui,
    serialize_graph,
)
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / "workflows"
OUR_JS = ("vlogger_audio.js", "vlogger_fit_editor.js", "vlogger_motion_view.js", "vlogger_live.js",
          "vlogger_motion_editor.js")
OUR_EXTENSIONS = ("VLOGGER.AudioUpload", "VLOGGER.FitEditor", "VLOGGER.MotionView", "VLOGGER.Live",
                  "VLOGGER.MotionEditor")
MOTION_COLORS = {"wave": "#9a9a9a", "mouth": "#ff3030", "blink": "#b040ff", "head_yaw": "#ffa000",
                 "head_pitch": "#2090ff", "head_roll": "#30d050", "gesture": "#e0d020"}


@pytest.fixture(scope="module")
def page(comfy):
    with browser_page(comfy.url) as p:
        yield p


def _node_id(page, node_type: str) -> int:
    return page.evaluate("(t) => app.graph._nodes.find(n => n.type === t).id", node_type)


def _bring_into_view(page, node_id: int) -> None:
    """Put the node near the top-left of the canvas at zoom 1, clear of the side bar that
    overlays the canvas' left edge, so its DOM widgets are on screen and unobstructed."""
    page.evaluate("""(id) => {
        const n = app.graph.getNodeById(id);
        n.pos = [140, 60];
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


def _drag(page, a, b, steps: int = 6) -> None:
    page.mouse.move(*a)
    page.mouse.down()
    page.mouse.move(*b, steps=steps)
    page.mouse.up()


def _fresh_load(page, url: str, stub_ours: bool) -> dict:
    """Load the frontend in a new context of the same browser and record what it did; with
    stub_ours our scripts are served empty (the stock frontend's own behaviour)."""
    ctx = page.context.browser.new_context(viewport={"width": 1600, "height": 1000})
    try:
        p = ctx.new_page()
        rec = {"errors": [], "requests": [], "failed": []}
        p.on("console", lambda m: m.type == "error" and rec["errors"].append(m.text))
        p.on("pageerror", lambda e: rec["errors"].append(f"{e.name}: {e.message}"))
        p.on("request", lambda r: rec["requests"].append(r.url))
        p.on("response", lambda r: r.status >= 400 and rec["failed"].append(r.url))
        p.on("requestfailed", lambda r: rec["failed"].append(r.url))
        if stub_ours:
            p.route(re.compile(r".*/vlogger_[a-z_]+\.js(\?.*)?$"),
                    lambda r: r.fulfill(body="export {};", content_type="application/javascript"))
        p.goto(url, wait_until="domcontentloaded", timeout=120_000)
        p.wait_for_function("() => window.app && app.graph && app.canvas && "
                            "Object.keys(LiteGraph.registered_node_types).length > 50", timeout=120_000)
        p.wait_for_timeout(3000)                      # late errors (settings, registry lookups)
        rec["extensions"] = p.evaluate("() => app.extensions.map(e => e.name)")
        return rec
    finally:
        ctx.close()


def _normalise(msg: str) -> str:
    """A console message without its stack, addresses and line numbers, to compare two loads."""
    first = msg.splitlines()[0] if msg else msg
    return re.sub(r"https?://\S+|\d+", "#", first)


def test_extension_loads_once_without_console_errors(comfy, page):
    """Each of our scripts is fetched once and each extension registered once (the web folder
    must be registered once: pyproject's [tool.comfy] web on top of WEB_DIRECTORY loads every
    script twice), nothing of ours fails to load, and the console shows no error that the
    stock frontend (our scripts served empty) does not show too: the stock frontend logs its
    own on a fresh user folder (404s for user.css / userdata, offline registry lookups, a
    TypeError in its workflow tabs)."""
    ours = _fresh_load(page, comfy.url, stub_ours=False)
    stock = _fresh_load(page, comfy.url, stub_ours=True)
    for name in OUR_JS:
        hits = [u for u in ours["requests"] if u.split("?")[0].endswith("/" + name)]
        assert len(hits) == 1, f"{name} fetched {len(hits)} times: {hits}"
    for name in OUR_EXTENSIONS:
        assert ours["extensions"].count(name) == 1, (name, ours["extensions"])
    assert not [e for e in stock["extensions"] if e.startswith("VLOGGER")]   # the stub did stub
    assert [u for u in ours["failed"] if "ComfyUI-VLOGGER" in u or "vlogger" in u.lower()] == []
    extra = {_normalise(e) for e in ours["errors"]} - {_normalise(e) for e in stock["errors"]}
    assert extra == set(), (extra, ours["errors"])


def test_fit_editor_drag_wheel_handles_drive_the_next_fit(comfy, page, tmp_path):
    open_workflow_file(page, WORKFLOWS / "fit_reference.json")
    fid = _node_id(page, "VLOGGER_FitReference")
    prompt0 = graph_to_api(page)
    values0 = next(n["widgets_values"] for n in serialize_graph(page)["nodes"] if n["id"] == fid)
    first = comfy.wait(queue_from_ui(page))                    # comfy.wait reads /history/<id>
    assert first.error is None, first.error
    fit0 = first.outputs[str(fid)]["vlogger_fit"][0]
    assert len(fit0["outline"]) > 50 and len(fit0["landmarks"]) > 20, fit0.keys()
    assert fit0["overrides"] == {"scale": 1.0, "offset_x": 0.0, "offset_y": 0.0, "rotation": 0.0, "fov": 0.0}
    page.wait_for_function("(id) => { const e = app.graph.getNodeById(id).vloggerFitEditor;"
                           " return e && e.img.complete && e.img.naturalWidth > 0; }", arg=fid, timeout=30_000)
    # the editor is no input: it changes neither the saved widget values nor the prompt
    values1 = next(n["widgets_values"] for n in serialize_graph(page)["nodes"] if n["id"] == fid)
    assert values1 == values0
    assert graph_to_api(page) == prompt0
    _bring_into_view(page, fid)
    canvas = page.locator(".vlogger-fit-editor canvas").first
    box = canvas.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 200, box
    s = float(page.evaluate("() => document.querySelector('.vlogger-fit-editor').dataset.cssScale"))
    before = _widgets(page, fid)
    # drag inside the picture, away from the handles (the body's chest)
    x0, y0 = box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.75
    dx, dy = 40, 24
    _drag(page, (x0, y0), (x0 + dx, y0 + dy))
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

    # the square handle scales by the ratio of distances from the face centre; the knob turns
    page.wait_for_function("(id) => app.graph.getNodeById(id).vloggerFitEditor.data.overrides.scale !== 1",
                           arg=fid, timeout=30_000)
    page.wait_for_timeout(300)
    box = canvas.bounding_box()
    hd = page.evaluate("() => JSON.parse(document.querySelector('.vlogger-fit-editor').dataset.handles)")
    at = lambda p: (box["x"] + p[0], box["y"] + p[1])        # noqa: E731
    c, h = np.array(hd["center"]), np.array(hd["scale"])
    _drag(page, at(h), at(c + (h - c) * 0.8))
    mid = _widgets(page, fid)
    assert mid["scale"] / after["scale"] == pytest.approx(0.8, rel=0.03)
    assert (mid["offset_x"], mid["offset_y"]) == (after["offset_x"], after["offset_y"])
    hd = page.evaluate("() => JSON.parse(document.querySelector('.vlogger-fit-editor').dataset.handles)")
    _drag(page, at(hd["turn"]), at(np.add(hd["turn"], [40, 0])))
    end = _widgets(page, fid)
    assert end["rotation"] - mid["rotation"] == pytest.approx(20.0, abs=1.0)   # 0.5 deg per px
    assert end["scale"] == mid["scale"]
    shot = _shot(canvas)
    Image.fromarray(shot).save(tmp_path / "fit_editor_handles.png")
    third = comfy.wait(queue_from_ui(page))
    assert third.error is None, third.error
    fit2 = third.outputs[str(fid)]["vlogger_fit"][0]
    assert fit2["overrides"]["rotation"] == pytest.approx(end["rotation"], abs=1e-6)
    assert fit2["overrides"]["scale"] == pytest.approx(end["scale"], abs=1e-6)
    # turned about its vertical axis, the body's outline is no longer the same
    assert fit2["outline"] != fit1["outline"]


def test_motion_view_draws_tracks_and_plays_the_speech(comfy, page, tmp_path):
    open_workflow_file(page, WORKFLOWS / "motion_from_speech.json")
    pid = _node_id(page, "VLOGGER_MotionSampler")
    prompt0 = graph_to_api(page)
    saved0 = {n["id"]: n.get("widgets_values") for n in serialize_graph(page)["nodes"]}
    res = comfy.wait(queue_from_ui(page))
    assert res.error is None, res.error
    data = res.outputs[str(pid)]["vlogger_motion"][0]
    assert data["frames"] > 10 and set(data["curves"]) >= set(MOTION_COLORS) - {"wave"}
    assert all(len(v) == -(-data["frames"] // data["step"]) for v in data["curves"].values())
    assert data["audio"]["type"] == "temp" and data["audio"]["filename"].endswith(".wav")
    wav = comfy.fetch(data["audio"])                            # the browser's /view URL works
    assert wav[:4] == b"RIFF" and len(wav) > 16000
    assert res.outputs[str(_node_id(page, "VLOGGER_MotionPreview"))]["vlogger_motion"][0]["frames"] == data["frames"]
    page.wait_for_function("(id) => !!app.graph.getNodeById(id).vloggerMotionView", arg=pid, timeout=30_000)
    # the view is no input (values may differ: the seed is randomised after each run)
    assert {k: sorted(v["inputs"]) for k, v in graph_to_api(page).items()} == \
        {k: sorted(v["inputs"]) for k, v in prompt0.items()}
    saved1 = {n["id"]: n.get("widgets_values") for n in serialize_graph(page)["nodes"]}
    for k in saved0:    # nor a saved value (the sampler's seed may have been randomised after the run)
        assert len(saved1[k] or []) == len(saved0[k] or []), (k, saved0[k], saved1[k])
    _bring_into_view(page, pid)
    page.wait_for_timeout(500)
    view = page.locator(".vlogger-motion-view").first
    shot = _shot(view.locator("canvas"))
    Image.fromarray(shot).save(tmp_path / "motion_view.png")
    shutil.copy(tmp_path / "motion_view.png", REPO / "docs" / "images" / "motion_view.png")
    counts = {k: _count(shot, c, 30) for k, c in MOTION_COLORS.items()}
    assert all(n > 40 for n in counts.values()), counts
    # the waveform is drawn in the top lane, the curves below it
    rows = np.nonzero((np.abs(shot.astype(int) - [0x9a, 0x9a, 0x9a]).max(-1) <= 10).any(1))[0]
    assert rows.max() < shot.shape[0] / 4, rows.max()
    audio = "(id) => { const a = app.graph.getNodeById(id).vloggerMotionView.audio;" \
            " return {paused: a.paused, t: a.currentTime, src: a.src, d: a.duration}; }"
    page.wait_for_function("(id) => app.graph.getNodeById(id).vloggerMotionView.audio.readyState >= 1",
                           arg=pid, timeout=30_000)
    # click-to-seek: the middle of the timeline is the middle of the speech
    cb = view.locator("canvas").bounding_box()
    page.mouse.click(cb["x"] + cb["width"] * 0.5, cb["y"] + cb["height"] * 0.6)
    seeked = page.evaluate(audio, pid)
    seconds = max(data["duration"], data["waveform"]["seconds"])
    assert seeked["paused"] and seeked["t"] == pytest.approx(seconds / 2, abs=0.1), seeked
    # play: the audio element runs from there; pause stops it
    view.locator(".vlogger-motion-play").click()
    page.wait_for_timeout(1200)
    playing = page.evaluate(audio, pid)
    assert not playing["paused"] and playing["t"] > seeked["t"] + 0.2, playing
    assert "type=temp" in playing["src"] and playing["d"] == pytest.approx(data["waveform"]["seconds"], abs=0.1)
    shot2 = _shot(view.locator("canvas"))
    Image.fromarray(shot2).save(tmp_path / "motion_view_playing.png")
    view.locator(".vlogger-motion-play").click()
    assert page.evaluate(audio, pid)["paused"]


def test_motion_timeline_payload_reads_the_motion():
    """The motion view's data (no server): a known head turn, blink and jaw-open come out in
    degrees / 0..1 on the right frames; long motions are decimated; the waveform is min/max."""
    import math

    import torch

    from vlogger_core.motion.params import (
        ARKIT52,
        Motion,
        axis_angle_to_matrix,
        matrix_to_rot6d,
    )
    from vlogger_core.motion.plot import motion_timeline

    m = Motion.neutral(100, 25.0)
    head = m.joints.index("head")
    m.rot6d[40:60, head] = matrix_to_rot6d(axis_angle_to_matrix(torch.tensor([0.0, math.radians(12), 0.0])))
    m.expression[10:14, ARKIT52.index("eyeBlinkLeft")] = 1.0
    m.expression[10:14, ARKIT52.index("eyeBlinkRight")] = 1.0
    m.expression[70:80, ARKIT52.index("jawOpen")] = 1.0
    wave = torch.sin(torch.arange(64000) / 16000 * 2 * math.pi * 220) * 0.5
    d = motion_timeline(m, wave, 16000)
    c = {k: np.array(v) for k, v in d["curves"].items()}
    assert d["fps"] == 25.0 and d["frames"] == 100 and d["step"] == 1 and d["duration"] == 4.0
    assert c["head_yaw"][45] == pytest.approx(12, abs=0.1) and abs(c["head_yaw"][20]) < 1e-3
    assert abs(c["head_pitch"][45]) < 0.1 and abs(c["head_roll"][45]) < 0.1
    assert c["blink"][11] == pytest.approx(1.0) and c["blink"][30] == 0
    assert c["mouth"][75] > c["mouth"][30] + 0.3
    assert c["gesture"].max() == 0                      # arms never move
    assert d["waveform"]["seconds"] == 4.0 and len(d["waveform"]["min"]) == 1000
    assert max(d["waveform"]["max"]) == pytest.approx(0.5, abs=0.01)
    assert min(d["waveform"]["min"]) == pytest.approx(-0.5, abs=0.01)
    long = motion_timeline(Motion.neutral(10_001, 25.0), None, max_points=4000)
    assert long["step"] == 3 and len(long["curves"]["mouth"]) == 3334 and "waveform" not in long
