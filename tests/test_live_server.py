"""The live WebSocket (/vlogger/live, nodes/live_routes.py) on the real server: the example client
streams a WAV and gets the frames with their audio; two pages are both served and a third is told
why not; a page that disconnects mid-stream frees its session; garbage closes the socket with a
reason; a photo with no person and a missing photo get an error message."""
import asyncio
import json
import subprocess
import sys
import time
import wave
from io import BytesIO
from pathlib import Path

import aiohttp
import numpy as np
import pytest
import requests
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
HEADER = 24


def ws_url(comfy) -> str:
    return comfy.url.replace("http://", "ws://") + "/vlogger/live"


def sessions(comfy) -> int:
    return requests.get(comfy.url + "/vlogger/live/photos", timeout=30).json()["sessions"]


def wait_sessions(comfy, n: int, timeout: float = 20.0) -> int:
    t = time.monotonic() + timeout
    while time.monotonic() < t and sessions(comfy) != n:
        time.sleep(0.2)
    return sessions(comfy)


async def _start(session, comfy, photo="astronaut.png", **extra):
    ws = await session.ws_connect(ws_url(comfy), max_msg_size=0)
    await ws.send_json({"type": "start", "photo": photo, "size": 256, "fps": 24, "sample_rate": 16000, **extra})
    return ws


async def _until(ws, kind: str, timeout: float = 300.0):
    """Messages until one of `kind` (returned) or the socket closes (None); frames counted."""
    frames = 0
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        msg = await ws.receive(timeout=end - time.monotonic())
        if msg.type == aiohttp.WSMsgType.TEXT:
            m = json.loads(msg.data)
            if m["type"] in (kind, "error"):
                return m
        elif msg.type == aiohttp.WSMsgType.BINARY:
            frames += 1
        else:
            return None
    raise TimeoutError(kind)


async def _frames(ws, n: int, timeout: float = 120.0) -> list[bytes]:
    out = []
    end = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < end:
        msg = await ws.receive(timeout=end - time.monotonic())
        if msg.type == aiohttp.WSMsgType.BINARY:
            out.append(msg.data)
        elif msg.type != aiohttp.WSMsgType.TEXT:
            break
    return out


def run(coro):
    return asyncio.run(coro)


def test_example_client_streams_a_wav(comfy, tmp_path):
    """examples/live_client.py (standard library only) streams the shipped speech in real time: the
    frames come back in order at 24 fps with their timestamps, and the audio they carry is the WAV's."""
    out = tmp_path / "frames"
    carried = tmp_path / "carried.wav"
    r = subprocess.run([sys.executable, str(REPO / "examples" / "live_client.py"), str(REPO / "examples" / "speech.wav"),
                        "--server", comfy.url, "--out", str(out), "--audio-out", str(carried), "--tail", "3"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    info = json.loads((out / "frames.json").read_text())
    frames = info["frames"]
    assert info["ready"]["fps"] == 24 and info["ready"]["lookahead_ms"] < 200
    idx = [f["index"] for f in frames]
    assert idx == list(range(len(idx))) and len(idx) >= 24 * 8         # ~9 s of speech
    assert all(abs(f["time"] - f["index"] / 24) < 1e-6 for f in frames)
    jpgs = sorted(out.glob("frame_*.jpg"))
    # every frame has its picture unless the machine fell behind (then every third keeps it)
    assert len(jpgs) >= len(frames) / 3 and sum(f["picture"] for f in frames) == len(jpgs)
    assert Image.open(jpgs[0]).size == (256, 256)
    # the frames' audio is the speech: find the WAV in it (the stream starts with the speech)
    with wave.open(str(REPO / "examples" / "speech.wav")) as w:
        src = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32)
        assert w.getframerate() == 16000 and w.getnchannels() == 1
    with wave.open(str(carried)) as w:
        got = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32)
    n = min(len(src), len(got)) - 1600
    a, b = src[:n], got[:n]
    corr = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))
    assert corr > 0.99, corr
    # frames differ over time (the mouth moves)
    arr = [np.asarray(Image.open(p), np.float32) for p in jpgs[len(jpgs) // 8:len(jpgs) // 2:max(1, len(jpgs) // 40)]]
    assert max(np.abs(arr[i + 1] - arr[i]).mean() for i in range(len(arr) - 1)) > 0.5


def test_two_pages_served_third_told_why(comfy):
    async def go():
        async with aiohttp.ClientSession() as s:
            a = await _start(s, comfy)
            b = await _start(s, comfy)
            ra, rb = await _until(a, "ready"), await _until(b, "ready")
            assert ra["type"] == rb["type"] == "ready", (ra, rb)
            fa, fb = await _frames(a, 12), await _frames(b, 12)
            assert len(fa) == len(fb) == 12, (len(fa), len(fb))   # both are served
            c = await s.ws_connect(ws_url(comfy))
            m = await c.receive_json(timeout=30)
            assert m["type"] == "error" and m["code"] == "busy" and "live sessions" in m["message"]
            closed = await c.receive(timeout=30)
            assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 1013 and "busy" in closed.extra
            for ws in (a, b):
                await ws.send_json({"type": "stop"})
                await ws.close()
    run(go())
    assert wait_sessions(comfy, 0) == 0


def test_disconnect_mid_stream_frees_the_session(comfy):
    async def go():
        async with aiohttp.ClientSession() as s:
            ws = await _start(s, comfy)
            assert (await _until(ws, "ready"))["type"] == "ready"
            pcm = (np.sin(np.arange(16000) / 16000 * 2 * np.pi * 220) * 8000).astype("<i2").tobytes()
            for i in range(0, len(pcm), 640):
                await ws.send_bytes(pcm[i:i + 640])
            assert len(await _frames(ws, 6)) == 6
            assert sessions(comfy) == 1
            # drop the connection without a close handshake (a tab closed, a cable pulled)
            ws._response.connection.transport.abort()
    run(go())
    assert wait_sessions(comfy, 0) == 0


@pytest.mark.parametrize("case", ["not_json", "no_type", "unknown_type", "audio_before_start", "odd_audio",
                                  "start_twice"])
def test_garbage_closes_with_a_reason(comfy, case):
    async def go():
        async with aiohttp.ClientSession() as s:
            ws = await s.ws_connect(ws_url(comfy))
            if case == "not_json":
                await ws.send_str("hello?")
            elif case == "no_type":
                await ws.send_str("[1, 2]")
            elif case == "audio_before_start":
                await ws.send_bytes(b"\x00\x01" * 100)
            else:
                await ws.send_json({"type": "start", "photo": "astronaut.png"})
                assert (await _until(ws, "ready"))["type"] == "ready"
                if case == "unknown_type":
                    await ws.send_json({"type": "dance"})
                elif case == "odd_audio":
                    await ws.send_bytes(b"\x00\x01\x02")
                else:
                    await ws.send_json({"type": "start", "photo": "astronaut.png"})
            err = await _until(ws, "error", timeout=60)
            assert err is not None and err["type"] == "error" and err["code"] == "protocol" and err["message"]
            while True:
                msg = await ws.receive(timeout=60)
                if msg.type != aiohttp.WSMsgType.BINARY:
                    break
            assert msg.type == aiohttp.WSMsgType.CLOSE, msg
            assert msg.data in (1003, 1008) and msg.extra, (msg.data, msg.extra)
    run(go())
    assert wait_sessions(comfy, 0) == 0


def test_photo_with_no_person_and_missing_photo(comfy):
    rng = np.random.default_rng(0)
    sky = np.linspace(0, 1, 256)[None, :, None] * np.array([0.3, 0.5, 0.9]) + rng.normal(0, 0.02, (256, 256, 3))
    buf = BytesIO()
    Image.fromarray((np.clip(sky, 0, 1) * 255).astype(np.uint8)).save(buf, "PNG")
    (Path(comfy.input_dir) / "live_no_person.png").write_bytes(buf.getvalue())

    async def go(photo):
        async with aiohttp.ClientSession() as s:
            ws = await _start(s, comfy, photo=photo)
            err = await _until(ws, "ready", timeout=120)
            closed = await ws.receive(timeout=60)
            return err, closed

    err, closed = run(go("live_no_person.png"))
    assert err["type"] == "error" and err["code"] == "bad_photo", err
    assert "person" in err["message"] and err["fix"]
    assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 1008
    err, _ = run(go("no_such_photo.png"))
    assert err["code"] == "bad_photo" and "no photo" in err["message"] and "upload" in err["fix"]
    err, _ = run(go("../../etc/passwd"))
    assert err["code"] == "bad_photo"
    assert wait_sessions(comfy, 0) == 0


def test_bad_rate_and_reset_and_say(comfy):
    """A rate other than 16 kHz is refused naming sample_rate; reset and say are answered."""
    async def go():
        async with aiohttp.ClientSession() as s:
            ws = await _start(s, comfy, sample_rate=44100)
            err = await _until(ws, "ready")
            assert err["code"] == "bad_sample_rate" and err["arg"] == "sample_rate"
            ws = await _start(s, comfy)
            assert (await _until(ws, "ready"))["type"] == "ready"
            await ws.send_json({"type": "say", "text": "Hello there. How are you?"})
            said = await _until(ws, "said", timeout=120)
            assert said["type"] == "said" and said["text"] == "Hello there."
            await ws.send_json({"type": "reset"})
            assert (await _until(ws, "reset"))["type"] == "reset"
            await ws.send_json({"type": "say", "text": ""})
            assert (await _until(ws, "error"))["code"] == "bad_text"
            await ws.send_json({"type": "stop"})
            closed = await ws.receive(timeout=60)
            while closed.type == aiohttp.WSMsgType.BINARY or closed.type == aiohttp.WSMsgType.TEXT:
                closed = await ws.receive(timeout=60)
            assert closed.data == 1000
    run(go())
    assert wait_sessions(comfy, 0) == 0


def test_a_runs_fit_is_offered_and_starts_the_same_fit(comfy):
    """A Fit Reference run (with fit-editor settings) is listed by the live page's photo route,
    newest first, and a session started with those settings gets the run's fit: the mouth box
    the server reports moves with the run's offset."""
    prompt = comfy.workflow("fit_reference")
    prompt["3"]["inputs"].update(scale=1.1, offset_x=0.07)
    res = comfy.run(prompt, timeout=300)
    assert res.error is None, res.error
    fits = requests.get(comfy.url + "/vlogger/live/photos", timeout=30).json()["fits"]
    assert fits, fits
    newest = fits[0]
    assert newest["photo"] == "astronaut.png" and newest["prompt_id"] == res.prompt_id, newest
    assert newest["settings"]["scale"] == 1.1 and newest["settings"]["offset_x"] == 0.07, newest

    async def ready(**settings):
        async with aiohttp.ClientSession() as s:
            ws = await _start(s, comfy, **settings)
            m = await _until(ws, "ready")
            await ws.close()
            return m
    plain = asyncio.run(ready())
    fitted = asyncio.run(ready(**newest["settings"]))
    assert plain["type"] == fitted["type"] == "ready", (plain, fitted)
    shift = (fitted["mouth_box"][0] + fitted["mouth_box"][2] - plain["mouth_box"][0] - plain["mouth_box"][2]) / 2
    assert 0.5 * 0.07 * 256 < shift < 1.5 * 0.07 * 256, (plain["mouth_box"], fitted["mouth_box"])
    assert wait_sessions(comfy, 0) == 0
