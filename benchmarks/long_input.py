"""Long and odd inputs through a real ComfyUI server, as an artist would feed them.

- peak_mb_12min_default: the server's peak RSS (VmHWM of its process) after a 12-minute speech
  file went through the default workflow (workflows/api/talking_video.json: LoadSpeech ->
  MotionSampler -> RenderFrames -> SaveVideo), with what happened (finished, or refused and
  how fast) and the server's peak before it (after start-up and a normal 5 s run).
- seconds_refuse_60min_default: the same for a 1-hour file (must be refused in under 1 s or
  finish in flat memory).
- text_5000_*: 5,000 characters through talking_video_from_text (finished or refused, seconds,
  the server's peak RSS).
- seconds_resample_44101: 2 s of audio recorded at 44,101 Hz (coprime with 16 kHz) resampled to
  16 kHz by vlogger_core.media.resample (torchaudio took 54 s and 12 GB for this), plus 7,993 Hz
  and 192 kHz, and the process's peak RSS growth for them.
Each long case runs in a fresh server so its peak is its own.
"""
from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from comfyui_server import ComfyClient, ComfyServer, PromptRejected, load_api_workflow  # noqa: E402

SENTENCE = ("The quick brown fox jumps over the lazy dog, and then it rests a while in the warm "
            "afternoon sun. ")


def _peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _long_wav(path: Path, seconds: float) -> None:
    """The shipped example speech repeated to `seconds`, 16 kHz 16-bit, written in blocks."""
    import soundfile as sf

    from vlogger_core.media import read_audio
    wave, sr = read_audio(ROOT / "examples" / "speech.wav", rate=16000, mono=True)
    block = wave.numpy()
    total = int(seconds * 16000)
    with sf.SoundFile(str(path), "w", 16000, 1, "PCM_16") as f:
        done = 0
        while done < total:
            part = block[: total - done]
            f.write(part)
            done += len(part)


def _run(client: ComfyClient, prompt: dict, timeout: float = 3600) -> dict:
    t0 = time.time()
    try:
        pid = client.queue(prompt)
    except PromptRejected as e:
        return {"outcome": "rejected at /prompt", "seconds": round(time.time() - t0, 3),
                "message": json.dumps(e.body)[:300]}
    res = client.wait(pid, timeout)
    out = {"seconds": round(time.time() - t0, 3)}
    if res.error is None:
        out["outcome"] = "finished"
    else:
        out["outcome"] = f"refused by {res.error.get('node_type')}"
        out["message"] = str(res.error.get("exception_message", ""))[:300]
    return out


def _case(build) -> dict:
    """A fresh server: a normal 5 s run first (the baseline peak), then the case."""
    server = ComfyServer().start()
    try:
        client = ComfyClient(server.url)
        warm = load_api_workflow("talking_video")
        _run(client, warm, 900)
        base = _peak_mb(server.proc.pid)
        out = _run(client, build(server), 7200)
        out["server_peak_mb"] = round(_peak_mb(server.proc.pid), 1)
        out["server_peak_mb_before"] = round(base, 1)
        return out
    finally:
        server.stop()
        server.remove()


def _long_speech(minutes: float):
    def build(server):
        name = f"long_{minutes:g}min.wav"
        _long_wav(server.input_dir / name, minutes * 60)
        prompt = load_api_workflow("talking_video")
        prompt["4"]["inputs"]["audio"] = name
        return prompt
    return build


def _long_text(chars: int):
    def build(server):
        prompt = load_api_workflow("talking_video_from_text")
        prompt["4"]["inputs"]["text"] = (SENTENCE * (chars // len(SENTENCE) + 1))[:chars]
        return prompt
    return build


def _resample() -> dict:
    import torch

    from vlogger_core.media import resample
    out = {}
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for rate in (44101, 7993, 192000):
        t = torch.arange(int(2.0 * rate)) / rate
        wave = 0.3 * torch.sin(2 * torch.pi * 440 * t)
        t0 = time.perf_counter()
        got = resample(wave, rate, 16000)
        out[f"seconds_resample_{rate}"] = round(time.perf_counter() - t0, 4)
        assert abs(got.shape[-1] - 32000) <= 1, got.shape
    out["resample_peak_growth_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before, 1)
    return out


def run() -> dict:
    from vlogger_core.memory import available_gb

    out = _resample()
    out["free_gb_at_start"] = round(available_gb(), 1)
    m12 = _case(_long_speech(12))
    out["peak_mb_12min_default"] = m12["server_peak_mb"]
    out["case_12min_default"] = m12
    m60 = _case(_long_speech(60))
    out["seconds_refuse_60min_default"] = m60["seconds"] if m60["outcome"] != "finished" else None
    out["case_60min_default"] = m60
    t5k = _case(_long_text(5000))
    out["text_5000_outcome"] = t5k["outcome"]
    out["text_5000_seconds"] = t5k["seconds"]
    out["text_5000_peak_mb"] = t5k["server_peak_mb"]
    out["case_text_5000"] = t5k
    return out


if __name__ == "__main__":
    print(json.dumps(run()))
