#!/usr/bin/env python3
"""Stream a WAV to the pack's live WebSocket and save the frames that come back (docs/live.md).

    python examples/live_client.py --server http://127.0.0.1:8188 --photo astronaut.png \
        examples/speech.wav --out live_frames

Standard library only (asyncio and a minimal RFC 6455 client: the handshake, masked frames out,
frames in), so a program that speaks (an assistant streaming its TTS) can copy it without
installing anything. The WAV must be PCM16; it is sent mono at 16 kHz (other rates are resampled
here by linear interpolation, channels averaged), in `--chunk-ms` pieces at real time
(`--fast`: all at once; the server paces it), until the frames cover the WAV and `--tail`
seconds after it. Writes out/frame_000000.jpg ... and out/frames.json
(index, time, arrival, the audio each frame carries); with --audio-out, the audio the frames
carried as a WAV (the stream's own timeline: the speech after the idle lead-in).
"""
from __future__ import annotations

import argparse
import array
import asyncio
import base64
import json
import os
import struct
import sys
import time
import urllib.parse
import wave

SR = 16000
HEADER = struct.Struct("<4sIdII")   # magic b"VLF1", index, time (s), jpeg bytes, pcm16 samples


def read_wav_16k(path: str) -> bytes:
    """PCM16 mono 16 kHz bytes of a PCM16 WAV (channels averaged, rate linearly resampled)."""
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2:
            raise SystemExit(f"{path}: only 16-bit PCM WAV files are read (got {8 * w.getsampwidth()}-bit)")
        ch, rate, n = w.getnchannels(), w.getframerate(), w.getnframes()
        data = array.array("h", w.readframes(n))
    if sys.byteorder == "big":
        data.byteswap()
    mono = [sum(data[i:i + ch]) / ch for i in range(0, len(data), ch)] if ch > 1 else list(data)
    if rate != SR:
        out_n = int(len(mono) * SR / rate)
        res = []
        for j in range(out_n):
            x = j * rate / SR
            i = int(x)
            f = x - i
            b = mono[min(i + 1, len(mono) - 1)]
            res.append(mono[i] * (1 - f) + b * f)
        mono = res
    out = array.array("h", (max(-32768, min(32767, int(round(v)))) for v in mono))
    if sys.byteorder == "big":
        out.byteswap()
    return out.tobytes()


class WebSocket:
    """Just enough of RFC 6455 for this protocol: text and binary messages, close, ping/pong."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.close_code: int | None = None
        self.close_reason = ""

    @classmethod
    async def connect(cls, url: str) -> "WebSocket":
        u = urllib.parse.urlsplit(url)
        port = u.port or (443 if u.scheme == "wss" else 80)
        ssl = u.scheme == "wss" or None
        reader, writer = await asyncio.open_connection(u.hostname, port, ssl=ssl)
        key = base64.b64encode(os.urandom(16)).decode()
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        writer.write((f"GET {path} HTTP/1.1\r\nHost: {u.hostname}:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        status = await reader.readline()
        if b" 101 " not in status:
            raise ConnectionError(f"the server refused the WebSocket: {status.decode(errors='replace').strip()}")
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        return cls(reader, writer)

    async def _send(self, opcode: int, payload: bytes) -> None:
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        self.writer.write(head + mask + _mask(payload, mask))
        await self.writer.drain()

    async def send_json(self, obj: dict) -> None:
        await self._send(0x1, json.dumps(obj).encode())

    async def send_bytes(self, data: bytes) -> None:
        await self._send(0x2, data)

    async def close(self, code: int = 1000) -> None:
        try:
            await self._send(0x8, struct.pack(">H", code))
        except (ConnectionError, RuntimeError):
            pass

    async def receive(self):
        """The next message: str (text), bytes (binary) or None once the server closed."""
        parts, first_op = [], None
        while True:
            try:
                b0, b1 = await self.reader.readexactly(2)
            except asyncio.IncompleteReadError:
                return None
            op, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", await self.reader.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", await self.reader.readexactly(8))[0]
            payload = await self.reader.readexactly(n)
            if op == 0x8:
                self.close_code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
                self.close_reason = payload[2:].decode(errors="replace")
                return None
            if op == 0x9:
                await self._send(0xA, payload)
                continue
            if op == 0xA:
                continue
            if op != 0x0:
                first_op = op
            parts.append(payload)
            if b0 & 0x80:
                data = b"".join(parts)
                return data.decode() if first_op == 0x1 else data


def _mask(payload: bytes, mask: bytes) -> bytes:
    """The payload XOR the repeated 4-byte mask (client frames are masked)."""
    if not payload:
        return b""
    m = (mask * (len(payload) // 4 + 1))[:len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(m, "big")).to_bytes(len(payload), "big")


def parse_frame(data: bytes) -> dict:
    magic, index, t, jpeg_n, pcm_n = HEADER.unpack_from(data)
    if magic != b"VLF1":
        raise ValueError("not a VLOGGER frame")
    jpeg = data[HEADER.size:HEADER.size + jpeg_n]
    pcm = data[HEADER.size + jpeg_n:HEADER.size + jpeg_n + 2 * pcm_n]
    return {"index": index, "time": t, "jpeg": jpeg, "pcm": pcm}


async def stream(args) -> dict:
    base = args.server.rstrip("/")
    url = base.replace("https://", "wss://").replace("http://", "ws://") + "/vlogger/live"
    pcm = read_wav_16k(args.wav)
    os.makedirs(args.out, exist_ok=True)
    ws = await WebSocket.connect(url)
    await ws.send_json({"type": "start", "photo": args.photo, "size": args.size, "fps": args.fps,
                        "sample_rate": SR, "seed": args.seed})
    while True:
        msg = await ws.receive()
        if msg is None:
            raise SystemExit(f"closed before ready ({ws.close_code}: {ws.close_reason})")
        if isinstance(msg, str):
            m = json.loads(msg)
            if m["type"] == "error":
                raise SystemExit(f"error: {m['message']} Fix: {m.get('fix', '')}")
            if m["type"] == "ready":
                ready = m
                break
    frames, audio_out = [], bytearray()
    t_start = time.monotonic()
    step = int(SR * args.chunk_ms / 1000) * 2
    speech_s = len(pcm) / 2 / SR

    async def sender():
        for i in range(0, len(pcm), step):
            await ws.send_bytes(pcm[i:i + step])
            if not args.fast:
                await asyncio.sleep(max(0.0, t_start + (i + step) / 2 / SR - time.monotonic()))
    send_task = asyncio.create_task(sender())
    # until the frames cover the speech and `tail` seconds after it (on the stream's timeline),
    # or `timeout` seconds of wall clock (a server slower than real time)
    deadline = t_start + speech_s + args.tail + args.timeout
    last_time = -1.0
    while time.monotonic() < deadline and last_time < speech_s + args.tail:
        try:
            msg = await asyncio.wait_for(ws.receive(), timeout=max(0.05, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            break
        if msg is None:
            break
        if isinstance(msg, str):
            m = json.loads(msg)
            if m["type"] == "error":
                print(f"error: {m['message']}", file=sys.stderr)
            continue
        f = parse_frame(msg)
        if f["jpeg"]:        # empty: a picture the server dropped to keep up (its audio is here)
            with open(os.path.join(args.out, f"frame_{f['index']:06d}.jpg"), "wb") as fh:
                fh.write(f["jpeg"])
        audio_out += f["pcm"]
        last_time = f["time"]
        frames.append({"index": f["index"], "time": f["time"], "arrival": time.monotonic() - t_start,
                       "samples": len(f["pcm"]) // 2, "picture": bool(f["jpeg"])})
    await send_task
    await ws.send_json({"type": "stop"})
    while await ws.receive() is not None:
        pass
    ws.writer.close()
    with open(os.path.join(args.out, "frames.json"), "w") as fh:
        json.dump({"ready": ready, "frames": frames}, fh)
    if args.audio_out:
        with wave.open(args.audio_out, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(SR)
            w.writeframes(bytes(audio_out))
    return {"frames": len(frames), "seconds": round(time.monotonic() - t_start, 2), "out": args.out}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("wav", help="a 16-bit PCM WAV file")
    p.add_argument("--server", default="http://127.0.0.1:8188", help="the ComfyUI server")
    p.add_argument("--photo", default="astronaut.png", help="a photo in ComfyUI's input folder")
    p.add_argument("--out", default="live_frames", help="folder for the frames")
    p.add_argument("--audio-out", default="", help="also write the audio the frames carried (WAV)")
    p.add_argument("--size", type=int, default=256, choices=(256, 512))
    p.add_argument("--fps", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk-ms", type=float, default=20.0, help="audio per message")
    p.add_argument("--fast", action="store_true", help="send all audio at once (the server paces it)")
    p.add_argument("--tail", type=float, default=1.5, help="seconds of frames to receive after the audio (idle)")
    p.add_argument("--timeout", type=float, default=60.0, help="extra seconds to wait for a slow server")
    print(json.dumps(asyncio.run(stream(p.parse_args(argv)))))


if __name__ == "__main__":
    main()
