"""Live mode in real time on this CPU: speech streamed in 20 ms chunks at its own pace into a
LiveSession (the engine the live page's WebSocket runs, vlogger_core/live), stepped as the server
steps it (when a chunk arrives, and at least every 20 ms), each frame JPEG-encoded as the server
sends it.

Figures (256x256, 24 fps; 2 minutes of the shipped speech repeated with pauses):
- first_frame_ms: from the first audio chunk to the first frame out (goal <= 200; the look-ahead
  alone is lookahead_ms);
- sustained_fps: rendered frames out per second of wall clock over the whole stream (goal >= 24;
  frames_dropped: frames sent with their audio but no picture because the machine fell behind);
- lag_ms_start / lag_ms_end: median over the first / last 10 s of (frame out - the moment its
  audio span had arrived); growth = end - start (goal <= 100: no growing lag);
- audio_video_offset_ms: the lag at which the frames' mouth opening best follows the loudness of
  the audio those frames carry (cross-correlation within +-250 ms; goal <= 40 in absolute value);
- cpu_share: process CPU seconds / wall seconds / cores, and the same for 512x512 over 30 s
  (report only, no goal);
- cpu_s_per_stream_s_256 / _512: CPU seconds per second of stream with every frame rendered,
  pushed as fast as the engine takes it (less sensitive to a busy machine than the wall clock).
The machine is shared: load_average_before / after say how busy it was.
"""
from __future__ import annotations

import os
import time
from io import BytesIO

import numpy as np
import torch
from _pipeline import example_photo, example_speech, load_models
from PIL import Image

from vlogger_core.body.reference import fit_reference
from vlogger_core.live.engine import LiveEngine
from vlogger_core.live.motion_stream import SR, LiveSettings
from vlogger_core.live.session import LiveSession
from vlogger_core.motion.closure import DEFAULT_PATH as CLOSURE_PATH
from vlogger_core.motion.params import Motion
from vlogger_core.motion.sampling import SampleSettings, mouth_opening
from vlogger_core.render import rasterizer
from vlogger_core.render.talking_video import TalkingVideoRenderer

CHUNK_S = 0.02
TICK_S = 0.02


def _jpeg(image: np.ndarray) -> int:
    buf = BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=85)
    return len(buf.getvalue())


def av_offset_ms(motion: Motion, wave: np.ndarray, fps: int, search_ms: float = 250) -> float:
    """The lag (ms, + = mouth after the sound) that best matches mouth opening to loudness."""
    mouth = mouth_opening(motion).numpy().astype(np.float64)
    n = len(mouth)
    spf = SR / fps
    env = np.array([np.sqrt(np.mean(wave[int(i * spf):int((i + 1) * spf)] ** 2) + 1e-12) for i in range(n)])
    m = (mouth - mouth.mean()) / (mouth.std() + 1e-9)
    e = (env - env.mean()) / (env.std() + 1e-9)
    best, best_r = 0, -2.0
    k = int(round(search_ms / 1000 * fps))
    for lag in range(-k, k + 1):
        a, b = (m[lag:], e[:n - lag]) if lag >= 0 else (m[:n + lag], e[-lag:])
        r = float(np.mean(a * b))
        if r > best_r:
            best, best_r = lag, r
    return best * 1000 / fps


def stream(model, renderer, wave: torch.Tensor, fps: int = 24) -> dict:
    sample = SampleSettings(add_blinks=True, lip_closure=1.0 if CLOSURE_PATH.exists() else 0.0)
    engine = LiveEngine(model, renderer, LiveSettings(fps=fps, sample=sample))
    session = LiveSession(engine)
    pcm = wave.numpy()
    chunk = int(CHUNK_S * SR)
    n_chunks = -(-len(pcm) // chunk)
    n_frames = int(len(pcm) * fps // SR) - int(np.ceil(engine.lookahead * fps)) - 1
    out_t, idx, motions, audio = [], [], [], []
    cpu0, t0 = time.process_time(), time.monotonic()
    session.start(t0)
    sent = pictures = 0
    while len(out_t) < n_frames:
        now = time.monotonic()
        due = min(n_chunks, int((now - t0) / CHUNK_S) + 1)      # chunk k is recorded by (k+1) x 20 ms
        while sent < due:
            session.feed(pcm[sent * chunk:(sent + 1) * chunk])
            sent += 1
        frames = session.step(now)
        if frames:
            motions.append(engine.last_motion)
        for f in frames:
            if f.image is not None:
                _jpeg(f.image)
                pictures += 1
            out_t.append(time.monotonic() - t0)
            idx.append(f.index)
            audio.append(f.audio)
        if now - t0 > len(pcm) / SR + 60:
            break
        # as the server steps (nodes/live_routes.py, LiveConnection.produce): when the next chunk
        # arrives, or TICK_S after this step's start if none comes before
        wake = now + TICK_S if sent >= n_chunks else min(now + TICK_S, t0 + sent * CHUNK_S)
        time.sleep(max(0.0, wake - time.monotonic()))
    wall = time.monotonic() - t0
    cpu = time.process_time() - cpu0
    out_t, idx = np.array(out_t), np.array(idx)
    ready = (idx + 1) / fps + CHUNK_S      # the chunk holding a span's last sample has arrived
    lag = (out_t - ready) * 1000
    ten = 10 * fps
    m0 = motions[0]
    motion = Motion(m0.fps, m0.expression_set, torch.cat([m.expression for m in motions]),
                    torch.cat([m.rot6d for m in motions]), list(m0.joints))
    carried = np.concatenate(audio)
    span = out_t[-1] - out_t[0]
    return {"first_frame_ms": round(out_t[0] * 1000, 1),
            "sustained_fps": round((pictures - 1) / span, 2) if span > 0 else None,
            "frames_dropped": session.dropped,
            "lag_ms_start": round(float(np.median(lag[:ten])), 1),
            "lag_ms_end": round(float(np.median(lag[-ten:])), 1),
            "lag_ms_max": round(float(lag.max()), 1),
            "audio_video_offset_ms": round(av_offset_ms(motion, carried, fps), 1),
            "frames": int(len(out_t)), "stream_s": round(len(pcm) / SR, 1), "wall_s": round(wall, 1),
            "cpu_share": round(cpu / wall / (os.cpu_count() or 1), 3),
            "silence_filled_s": round(session.silence_samples / SR, 2),
            "lookahead_ms": round(engine.lookahead * 1000, 1), "lip_closure": sample.lip_closure}


def cpu_per_stream_second(model, renderer, wave: torch.Tensor, fps: int = 24) -> float:
    """CPU seconds the engine spends per second of stream (20 ms chunks pushed as fast as it
    takes them, every frame rendered and JPEG-encoded): < 1 is what real time needs on a free core."""
    sample = SampleSettings(add_blinks=True, lip_closure=1.0 if CLOSURE_PATH.exists() else 0.0)
    engine = LiveEngine(model, renderer, LiveSettings(fps=fps, sample=sample))
    chunk = int(CHUNK_S * SR)
    cpu0 = time.process_time()
    for i in range(0, len(wave), chunk):
        for f in engine.push(wave[i:i + chunk]):
            _jpeg(f.image)
    return round((time.process_time() - cpu0) / (len(wave) / SR), 3)


def run(seconds: float = 120.0, seconds_512: float = 30.0) -> dict:
    body, model = load_models()
    rasterizer.warm_up()
    fit = fit_reference(example_photo(), body)
    out = {"load_average_before": round(os.getloadavg()[0], 2), "cores": os.cpu_count()}
    r256 = TalkingVideoRenderer(body, fit, 256, 256)
    stream(model, r256, example_speech(3.0))                        # warm-up (JIT, caches)
    res = stream(model, r256, example_speech(seconds))
    out.update(res)
    r512 = TalkingVideoRenderer(body, fit, 512, 512)
    res512 = stream(model, r512, example_speech(seconds_512))
    out.update({f"{k}_512": v for k, v in res512.items() if k not in ("lookahead_ms", "lip_closure")})
    out["cpu_s_per_stream_s_256"] = cpu_per_stream_second(model, r256, example_speech(20.0))
    out["cpu_s_per_stream_s_512"] = cpu_per_stream_second(model, r512, example_speech(20.0))
    out["lag_growth_ms"] = round(out["lag_ms_end"] - out["lag_ms_start"], 1)
    out["load_average_after"] = round(os.getloadavg()[0], 2)
    return out
