"""Live mode's server side: the WebSocket /vlogger/live and the photo list the live page picks from.

Registered on ComfyUI's own aiohttp server (PromptServer.instance.routes) when the pack loads; the
protocol is in docs/live.md. Each socket is one session: a fitted photo, a LiveEngine
(vlogger_core/live) on a wall clock (LiveSession) stepped on a thread of its own as soon as audio
arrives and at least every TICK_S (silence, paced bursts), its frames sent as JPEG with their
audio. At most MAX_SESSIONS at once (env VLOGGER_LIVE_SESSIONS): more are told why and closed. A
socket that closes frees its session at once.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

import numpy as np
from aiohttp import WSMsgType, web

from vlogger_core.errors import VloggerError
from vlogger_core.live.engine import LiveEngine, to_float_pcm
from vlogger_core.live.motion_stream import SR, LiveSettings
from vlogger_core.live.session import LiveSession, QueueFull
from vlogger_core.motion.sampling import SampleSettings

log = logging.getLogger("VLOGGER")

ROUTE = "/vlogger/live"
PHOTOS_ROUTE = "/vlogger/live/photos"
MAX_SESSIONS = int(os.environ.get("VLOGGER_LIVE_SESSIONS", "2"))
TICK_S = 0.02
SIZES = (256, 512)
FRAME_MAGIC = b"VLF1"
FRAME_HEADER = struct.Struct("<4sIdII")        # magic, index, time (s), jpeg bytes, pcm samples
MAX_AUDIO_MSG = 16000 * 2 * 10                  # 10 s of PCM16 in one message
MAX_TEXT = 2000
IMAGE_EXT = (".png", ".jpg", ".jpeg", ".webp")
JPEG_QUALITY = 85


class ProtocolError(Exception):
    """The client broke the protocol: the socket is closed with `code` and this message."""

    def __init__(self, message: str, code: int = 1003):
        super().__init__(message)
        self.code = code


# --- shared, loaded once ---------------------------------------------------------------------
_LOCK = threading.Lock()
_ACTIVE: set = set()
_MODELS: dict = {}
_FITS: dict = {}


def _device():
    import comfy.model_management as mm
    return mm.get_torch_device()


def _models():
    with _LOCK:
        if not _MODELS:
            from vlogger_core.body.model import load_body
            from vlogger_core.motion.model import load_motion_model
            from vlogger_core.paths import SHIPPED_MODELS
            from vlogger_core.render import rasterizer
            _MODELS["body"] = load_body()
            _MODELS["motion"] = load_motion_model(str(SHIPPED_MODELS / "motion" / "vlogger_motion_default.safetensors"),
                                                  _device())
            rasterizer.warm_up()
        return _MODELS["body"], _MODELS["motion"]


def input_dir() -> Path:
    import folder_paths
    return Path(folder_paths.get_input_directory())


def list_photos() -> list[str]:
    root = input_dir()
    if not root.is_dir():
        return []
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.suffix.lower() in IMAGE_EXT and p.is_file() and not p.name.startswith("."))


def _photo_path(name) -> Path:
    if not isinstance(name, str) or not name.strip():
        raise ProtocolError("'photo' must name an image in ComfyUI's input folder", 1008)
    root = input_dir().resolve()
    path = (root / name).resolve()
    if root not in path.parents or not path.is_file():
        raise VloggerError(f"no photo '{name}' in the input folder", "photo",
                           "upload it (the page's Upload button or ComfyUI's /upload/image) or pick one from the list")
    if path.suffix.lower() not in IMAGE_EXT:
        raise VloggerError(f"'{name}' is not a PNG, JPEG or WebP image", "photo", "pick an image file")
    return path


def _fit(path: Path, overrides: dict):
    """The photo's fit (cached by file, its modification time and the overrides)."""
    from PIL import Image, UnidentifiedImageError

    from vlogger_core.body.reference import FitOverrides, fit_reference
    body, _ = _models()
    key = (str(path), path.stat().st_mtime_ns, json.dumps(overrides, sort_keys=True))
    with _LOCK:
        if key in _FITS:
            return _FITS[key]
    try:
        img = np.asarray(Image.open(path).convert("RGB"), np.float32) / 255
    except (UnidentifiedImageError, OSError) as e:
        raise VloggerError(f"cannot read the photo ({e})", "photo", "use a PNG, JPEG or WebP image") from None
    import torch
    fit = fit_reference(torch.from_numpy(img), body, overrides.pop("detector", "auto"),
                        FitOverrides(**overrides))
    with _LOCK:
        if len(_FITS) > 8:
            _FITS.clear()
        _FITS[key] = fit
    return fit


def mouth_box(body, fit, size: int) -> list[int]:
    """Where the lips are in the output frames [x0, y0, x1, y1] (for the page's statistics)."""
    from vlogger_core.body.overlay import project_fit
    uv = project_fit(fit, body)["vertices"].numpy() * size / max(fit.width, fit.height)
    if fit.width != fit.height:
        return [0, 0, size, size]
    lips = np.unique(body.faces[body.face_labels == body.part_id("lips")])
    (x0, y0), (x1, y1) = uv[lips].min(0), uv[lips].max(0)
    return [int(x0) - 2, int(y0) - 2, int(np.ceil(x1)) + 3, int(np.ceil(y1)) + 3]


def encode_frame(frame) -> bytes:
    from PIL import Image
    jpeg = b""
    if frame.image is not None:       # None: dropped to catch up (the audio still comes)
        buf = BytesIO()
        Image.fromarray(frame.image).save(buf, "JPEG", quality=JPEG_QUALITY)
        jpeg = buf.getvalue()
    pcm = (np.clip(frame.audio, -1, 1) * 32767).astype("<i2").tobytes()
    return FRAME_HEADER.pack(FRAME_MAGIC, frame.index, frame.time, len(jpeg), len(frame.audio)) + jpeg + pcm


def split_sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?;:])\s+|\n+", text.strip())
    return [p for p in (s.strip() for s in parts) if p]


# --- one socket ------------------------------------------------------------------------------
class LiveConnection:
    def __init__(self, ws: web.WebSocketResponse):
        self.ws = ws
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vlogger-live")
        self.tts_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vlogger-tts")
        self.session: LiveSession | None = None
        self.producer: asyncio.Task | None = None
        self.wake = asyncio.Event()      # audio arrived: step now (not at the next tick)
        self.closed = False
        self.sent = 0

    async def send_json(self, obj: dict) -> None:
        if not self.ws.closed:
            await self.ws.send_str(json.dumps(obj))

    async def error(self, code: str, message: str, fix: str = "", arg: str = "") -> None:
        await self.send_json({"type": "error", "code": code, "message": message, "fix": fix, "arg": arg})

    async def run(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.TEXT:
                    await self.on_text(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self.on_audio(msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
                if self.closed:
                    break
        except ProtocolError as e:
            await self.error("protocol", str(e))
            await self.ws.close(code=e.code, message=str(e)[:120].encode())
        finally:
            await self.stop()

    async def on_text(self, data: str) -> None:
        try:
            msg = json.loads(data)
        except ValueError:
            raise ProtocolError("text messages must be JSON objects (see docs/live.md)") from None
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            raise ProtocolError("a control message is a JSON object with a 'type'")
        kind = msg["type"]
        if kind == "start":
            if self.session is not None:
                raise ProtocolError("the session has started already (send 'stop' and open a new socket)", 1008)
            await self.start(msg)
        elif self.session is None:
            raise ProtocolError(f"'{kind}' before 'start': send start first", 1008)
        elif kind == "reset":
            self.session.reset()
            await self.send_json({"type": "reset", "time": self.session.stream_seconds})
        elif kind == "say":
            text = msg.get("text")
            if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
                await self.error("bad_text", f"'text' must be 1..{MAX_TEXT} characters", "type what to say")
                return
            asyncio.get_running_loop().create_task(self.say(text, msg.get("voice", "en-us")))
        elif kind == "stop":
            self.closed = True
            await self.ws.close(code=1000, message=b"stopped")
        elif kind == "ping":
            await self.send_json({"type": "pong", "time": self.session.stream_seconds, "sent": self.sent})
        else:
            raise ProtocolError(f"unknown message type '{kind}'")

    async def start(self, msg: dict) -> None:
        rate = msg.get("sample_rate", SR)
        if rate != SR:
            await self.error("bad_sample_rate", f"sample_rate {rate!r}: live mode takes {SR} Hz PCM16 mono",
                             f"resample to {SR} Hz before sending (the page asks its AudioContext for {SR} Hz)",
                             "sample_rate")
            raise ProtocolError(f"sample_rate must be {SR}", 1008)
        size = msg.get("size", 256)
        fps = msg.get("fps", 24)
        if size not in SIZES or not isinstance(fps, int) or not 1 <= fps <= 60:
            await self.error("bad_settings", f"size must be one of {list(SIZES)} and fps a whole number 1..60 "
                             f"(got size {size!r}, fps {fps!r})", "use size 256 and fps 24", "size")
            raise ProtocolError("bad size or fps", 1008)
        overrides = {k: msg[k] for k in ("scale", "offset_x", "offset_y", "rotation", "fov", "detector") if k in msg}
        await self.send_json({"type": "status", "message": "fitting the photo"})
        loop = asyncio.get_running_loop()
        try:
            engine, box = await loop.run_in_executor(self.pool, self._make_engine, msg.get("photo"), overrides,
                                                     size, fps, int(msg.get("seed", 0)))
        except VloggerError as e:
            await self.error("bad_photo" if e.arg in ("photo", "image", "detector") else "bad_start",
                             e.message, e.fix or "", e.arg or "")
            self.closed = True
            await self.ws.close(code=1008, message=b"cannot start: see the error message")
            return
        except TypeError as e:
            raise ProtocolError(f"bad start fields ({e})", 1008) from None
        self.session = LiveSession(engine)
        self.session.start()
        await self.send_json({"type": "ready", "fps": fps, "width": size, "height": size, "sample_rate": SR,
                              "lookahead_ms": round(engine.lookahead * 1000, 1), "mouth_box": box,
                              "frame_header": "<4sIdII magic 'VLF1', index, time s, jpeg bytes, pcm16 samples"})
        self.producer = loop.create_task(self.produce())

    def _make_engine(self, photo, overrides, size, fps, seed):
        from vlogger_core.motion.closure import DEFAULT_PATH
        from vlogger_core.render.talking_video import TalkingVideoRenderer
        body, model = _models()
        fit = _fit(_photo_path(photo), dict(overrides))
        renderer = TalkingVideoRenderer(body, fit, size, size)
        sample = SampleSettings(seed=seed, add_blinks=True,
                                lip_closure=1.0 if Path(DEFAULT_PATH).exists() else 0.0)
        return LiveEngine(model, renderer, LiveSettings(fps=fps, sample=sample), _device()), mouth_box(body, fit, size)

    def on_audio(self, data: bytes) -> None:
        if self.session is None:
            raise ProtocolError("audio before 'start': send start first", 1008)
        if len(data) % 2 or len(data) > MAX_AUDIO_MSG:
            raise ProtocolError(f"audio messages are PCM16 mono: an even number of bytes, at most {MAX_AUDIO_MSG}")
        try:
            self.session.feed(to_float_pcm(data))
        except QueueFull as e:
            raise ProtocolError(f"{e}: send audio at most about as fast as it plays", 1008) from None
        self.wake.set()

    async def say(self, text: str, voice) -> None:
        """TTS sentence by sentence: each sentence's audio goes on the stream as soon as it is spoken."""
        from vlogger_core.audio.tts import synthesize
        from vlogger_core.media import resample
        loop = asyncio.get_running_loop()
        for sentence in split_sentences(text):
            if self.closed or self.session is None:
                return
            try:
                wave, rate, _ = await loop.run_in_executor(
                    self.tts_pool, lambda s=sentence: synthesize(s, voice if isinstance(voice, str) else "en-us"))
                pcm = resample(wave, rate, SR).numpy()
                self.session.feed(np.concatenate([pcm, np.zeros(int(0.15 * SR), np.float32)]))
                self.wake.set()
            except VloggerError as e:
                await self.error("tts", e.message, e.fix or "", e.arg or "")
                return
            await self.send_json({"type": "said", "text": sentence})

    async def produce(self) -> None:
        """Step the session when audio arrives (a frame goes out in the step that completes its
        audio, not up to a tick later) and at least every TICK_S (silence, a paced burst)."""
        loop = asyncio.get_running_loop()
        try:
            while not self.closed and not self.ws.closed:
                self.wake.clear()            # audio that comes during this step wakes the next one
                started = time.monotonic()
                frames = await loop.run_in_executor(self.pool, self._step)
                for blob in frames:
                    await self.ws.send_bytes(blob)
                    self.sent += 1
                delay = started + TICK_S - time.monotonic()
                if delay <= 0 or self.wake.is_set():
                    await asyncio.sleep(0)
                    continue
                try:
                    await asyncio.wait_for(self.wake.wait(), delay)
                except asyncio.TimeoutError:
                    pass
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        except Exception as e:   # the engine failed: say so, close
            log.exception("VLOGGER live session failed")
            await self.error("engine", f"the live engine stopped: {e}")
            await self.ws.close(code=1011, message=b"engine error")

    def _step(self) -> list[bytes]:
        return [encode_frame(f) for f in self.session.step()]

    async def stop(self) -> None:
        self.closed = True
        if self.producer is not None:
            self.producer.cancel()
            try:
                await self.producer
            except (asyncio.CancelledError, Exception):
                pass
        self.session = None
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.tts_pool.shutdown(wait=False, cancel_futures=True)


async def live_socket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=MAX_AUDIO_MSG + 1024, heartbeat=30)
    await ws.prepare(request)
    conn = LiveConnection(ws)
    with _LOCK:
        full = len(_ACTIVE) >= MAX_SESSIONS
        if not full:
            _ACTIVE.add(conn)
    if full:
        await conn.error("busy", f"{MAX_SESSIONS} live sessions are running (the most this server serves at "
                         "once, each needs most of a CPU core)", "close another live page, or try again later")
        await ws.close(code=1013, message=b"busy: too many live sessions")
        return ws
    try:
        await conn.run()
    finally:
        with _LOCK:
            _ACTIVE.discard(conn)
    return ws


FIT_NODE = "VLOGGER_FitReference"
FIT_FIELDS = ("scale", "offset_x", "offset_y", "rotation", "fov", "detector")


def fits_from_runs(history: dict, limit: int = 12) -> list[dict]:
    """The fitted references of the server's recent runs, newest first: the photo each VLOGGER Fit
    Reference node read through Load Image and its fit settings (the fit editor's overrides), so
    the live page can start from the same fit as a run. `history` is ComfyUI's /history dict."""
    out, seen = [], set()
    for pid, entry in reversed(list(history.items())):
        try:
            prompt = entry["prompt"][2]
        except (KeyError, IndexError, TypeError):
            continue
        for node in prompt.values():
            if not isinstance(node, dict) or node.get("class_type") != FIT_NODE:
                continue
            inputs = node.get("inputs", {})
            link = inputs.get("image")
            src = prompt.get(str(link[0])) if isinstance(link, list) and link else None
            if not isinstance(src, dict) or src.get("class_type") != "LoadImage":
                continue
            photo = src.get("inputs", {}).get("image")
            settings = {k: inputs[k] for k in FIT_FIELDS
                        if isinstance(inputs.get(k), (int, float, str)) and not isinstance(inputs.get(k), bool)}
            key = json.dumps([photo, settings], sort_keys=True)
            if not isinstance(photo, str) or key in seen:
                continue
            seen.add(key)
            out.append({"photo": photo, "settings": settings, "prompt_id": str(pid)})
            if len(out) >= limit:
                return out
    return out


def _history() -> dict:
    try:
        from server import PromptServer
        return PromptServer.instance.prompt_queue.get_history(max_items=64)
    except (ImportError, AttributeError):       # outside ComfyUI: no runs to offer
        return {}


async def live_status(request: web.Request) -> web.Response:
    with _LOCK:
        n = len(_ACTIVE)
    return web.json_response({"photos": list_photos(), "fits": fits_from_runs(_history()), "sessions": n,
                              "max_sessions": MAX_SESSIONS})


def active_sessions() -> int:
    with _LOCK:
        return len(_ACTIVE)


def register(routes) -> None:
    routes.get(ROUTE)(live_socket)
    routes.get(PHOTOS_ROUTE)(live_status)


try:
    from server import PromptServer
    if getattr(PromptServer, "instance", None) is not None:
        register(PromptServer.instance.routes)
except ImportError:       # imported outside ComfyUI
    pass
