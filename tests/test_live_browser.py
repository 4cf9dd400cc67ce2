"""The live page in headless Chromium with a fake microphone fed with the shipped speech WAV
(Chromium's --use-file-for-fake-audio-capture): the page shows frames that change at the mouth
while the WAV plays, at >= 20 fps, and the audio it plays is the WAV's; the frontend's command
opens the page."""
from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
from comfyui_browser import CHROMIUM, CHROMIUM_ARGS, browser_page
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parent.parent
SPEECH = REPO / "examples" / "speech.wav"
PACK = "ComfyUI-VLOGGER"       # the folder name the test server links the pack under
PAGE = f"/extensions/{PACK}/live/index.html"
SR = 16000


def _envelope(x: np.ndarray, hop: int = 160) -> np.ndarray:
    n = len(x) // hop
    return np.sqrt((x[:n * hop].reshape(n, hop) ** 2).mean(1) + 1e-12)


def _best_alignment(played: np.ndarray, src: np.ndarray) -> tuple[float, int]:
    """The highest normalised correlation of a loudness envelope `b` inside `a`, over every
    offset (10 ms steps)."""
    return _find(_envelope(played), _envelope(src))


def _find(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    b = (b - b.mean()) / (b.std() + 1e-9)
    best, at = -1.0, 0
    for k in range(0, len(a) - len(b) + 1):
        w = a[k:k + len(b)]
        r = float(np.mean((w - w.mean()) / (w.std() + 1e-9) * b))
        if r > best:
            best, at = r, k
    return best, at


def _found_in_order(played: np.ndarray, src: np.ndarray, second: int = 100) -> tuple[list, int]:
    """Each voiced second of the WAV looked up on its own in the played audio: (correlation,
    offset) per second, and where the WAV starts. Seconds, not the whole clip, so a slow machine's
    mic capture that stalls for a moment (a gap in the echo) costs one second, not the match."""
    a, b = _envelope(played), _envelope(src)
    found = []
    for s in range(0, len(b) - second + 1, second):
        chunk = b[s:s + second]
        if chunk.max() < 0.02:          # a silent second matches anything
            continue
        r, at = _find(a, chunk)
        found.append((round(r, 3), at - s))
    start = int(np.median([at for _, at in found])) if found else 0
    return found, start


@pytest.fixture
def live_page(comfy):
    """(function scope: closed before the next test opens its own Playwright)"""
    args = CHROMIUM_ARGS + ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                            f"--use-file-for-fake-audio-capture={SPEECH}%noloop",
                            "--autoplay-policy=no-user-gesture-required"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            page = browser.new_context(viewport={"width": 1000, "height": 700}).new_page()
            page.errors = []
            page.on("pageerror", lambda e: page.errors.append(str(e)))
            page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
            page.on("response", lambda r: r.status >= 400 and page.errors.append(f"{r.status} {r.url}"))
            page.goto(comfy.url + PAGE, wait_until="load", timeout=60_000)
            yield page
        finally:
            browser.close()


def test_microphone_talks_in_the_page(comfy, live_page):
    page = live_page
    page.wait_for_function("() => [...document.getElementById('photo').options].some(o => o.value === 'astronaut.png')",
                           timeout=60_000)
    page.select_option("#photo", "astronaut.png")
    page.click("#start")
    page.wait_for_function("() => window.vloggerLive.ready !== null", timeout=300_000)
    page.wait_for_function("() => window.vloggerLive.shown > 24", timeout=120_000)     # idle frames
    idle_shown = page.evaluate("() => window.vloggerLive.shown")
    page.click("#mic")
    with wave.open(str(SPEECH)) as w:
        src = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768
        assert w.getframerate() == SR
    seconds = len(src) / SR
    page.wait_for_timeout(int((seconds + 2.5) * 1000))
    live = page.evaluate("""() => { const l = window.vloggerLive; return {
        shown: l.shown, shownAt: l.shownAt, mouth: l.mouthDelta, bg: l.backgroundDelta,
        played: l.played.flat(), mic: l.micChunks, sent: l.sent, resyncs: l.resyncs, errors: l.errors,
        closed: l.closed}; }""")
    assert live["errors"] == [] and live["closed"] is None, (live["errors"], live["closed"])
    assert live["mic"] > 0 and live["sent"] >= 0.9 * len(src), (live["mic"], live["sent"])
    # frames keep coming at >= 20 fps while the WAV plays
    t = np.array(live["shownAt"][idle_shown:]) / 1000
    t = t[t - t[0] < seconds]
    fps = (len(t) - 1) / (t[-1] - t[0])
    assert fps >= 20, fps
    # the audio the page played is the WAV (found in it with its loudness contour)
    played = np.array(live["played"], np.float32)
    found, at = _found_in_order(played, src)
    good = [r for r, _ in found if r > 0.8]
    assert len(found) >= 5 and len(good) >= 0.75 * len(found), (
        found, _best_alignment(played, src), len(played) / SR, len(src) / SR, live["resyncs"])
    offsets = [o for r, o in found if r > 0.8]          # in the WAV's order (a gap only delays)
    assert all(b >= a - 10 for a, b in zip(offsets, offsets[1:])), found
    # the mouth changes while it plays, far more than a background corner does
    start = max(0, int(at / 100 * 24) - 5)          # the frame where the speech starts (10 ms hops)
    mouth = np.array(live["mouth"])[start:start + int(seconds * 24)]
    bg = np.array(live["bg"])[start:start + int(seconds * 24)]
    assert len(mouth) > 5 * 24
    assert mouth.mean() > 1.0 and mouth.mean() > 4 * bg.mean() + 0.2, (mouth.mean(), bg.mean())
    assert page.errors == [], page.errors


def test_menu_command_opens_the_live_page(comfy):
    with browser_page(comfy.url) as page:
        ids = page.evaluate("() => app.extensionManager.command.commands.map(c => c.id)")
        assert "VLOGGER.OpenLive" in ids
        with page.context.expect_page(timeout=60_000) as opened:
            page.evaluate("() => app.extensionManager.command.execute('VLOGGER.OpenLive')")
        new = opened.value
        new.wait_for_load_state("load")
        assert new.url.endswith(PAGE), new.url
        assert new.title() == "VLOGGER live"


def test_a_runs_fit_can_be_picked_in_the_page(comfy, live_page):
    """After a Fit Reference run with fit-editor settings, the page offers that fit and starts
    the session with the run's photo and settings (read from the WebSocket's start message)."""
    import json
    prompt = comfy.workflow("fit_reference")
    prompt["3"]["inputs"].update(offset_x=-0.05, rotation=7.0)
    res = comfy.run(prompt, timeout=300)
    assert res.error is None, res.error
    page = live_page
    sent = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(payload)))
    page.reload(wait_until="load")
    page.wait_for_function("() => [...document.getElementById('photo').options].some(o => o.value === 'fit:0')",
                           timeout=60_000)
    label = page.evaluate("() => [...document.getElementById('photo').options].find(o => o.value === 'fit:0').text")
    assert "astronaut.png" in label and "offset_x -0.05" in label and "rotation 7" in label, label
    page.select_option("#photo", "fit:0")
    page.click("#start")
    page.wait_for_function("() => window.vloggerLive.ready !== null", timeout=300_000)
    start = next(json.loads(p) for p in sent if isinstance(p, str) and '"start"' in p)
    assert start["photo"] == "astronaut.png" and start["offset_x"] == -0.05 and start["rotation"] == 7.0, start
    page.click("#stop")
    assert page.errors == [], page.errors
