"""Queue a VLOGGER workflow on a running ComfyUI over its HTTP API, wait, download the video.

What a person automating the pack starts from (standard library only):

    python examples/queue_workflow.py --server http://127.0.0.1:8188 \
        --photo me.jpg --speech hello.wav --out talking.mp4 [--workflow workflows/api/talking_video.json]

It uploads the photo and the speech into ComfyUI's input folder (POST /upload/image), points the
workflow's LoadImage / VLOGGER_LoadSpeech nodes at them, queues it (POST /prompt), polls
/history/<id> until it finished, and downloads the MP4 it wrote (GET /view).
"""
from __future__ import annotations

import argparse
import json
import mimetypes
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

DEFAULT_WORKFLOW = Path(__file__).resolve().parent.parent / "workflows" / "api" / "talking_video.json"


def set_inputs(prompt: dict, photo: str | None = None, speech: str | None = None,
               text: str | None = None) -> dict:
    """Point the workflow's input nodes at uploaded files (names in ComfyUI's input folder)."""
    for node in prompt.values():
        kind, inputs = node["class_type"], node["inputs"]
        if photo and kind == "LoadImage":
            inputs["image"] = photo
        if speech and kind == "VLOGGER_LoadSpeech":
            inputs["audio"] = speech
        if speech and kind == "LoadAudio":
            inputs["audio"] = speech
        if text and kind == "VLOGGER_TextToSpeech":
            inputs["text"] = text
    return prompt


def upload(server: str, path: Path) -> str:
    boundary = uuid.uuid4().hex
    ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{path.name}\"\r\n"
            f"Content-Type: {ctype}\r\n\r\n").encode() + path.read_bytes() + (
            f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"overwrite\"\r\n\r\ntrue"
            f"\r\n--{boundary}--\r\n").encode()
    req = urllib.request.Request(server + "/upload/image", data=body,
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)["name"]


def queue(server: str, prompt: dict) -> str:
    req = urllib.request.Request(server + "/prompt", data=json.dumps({"prompt": prompt}).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return json.load(r)["prompt_id"]
    except urllib.error.HTTPError as e:  # 400: ComfyUI says which node/input is wrong
        sys.exit(f"rejected: {e.read().decode()[:4000]}")


def wait(server: str, prompt_id: str, timeout: float = 3600) -> dict:
    t0 = time.time()
    while time.time() - t0 < timeout:
        with urllib.request.urlopen(f"{server}/history/{prompt_id}") as r:
            h = json.load(r).get(prompt_id)
        if h and h.get("status", {}).get("status_str") in ("success", "error"):
            if h["status"]["status_str"] == "error":
                errs = [m for n, m in h["status"].get("messages", []) if n == "execution_error"]
                sys.exit(f"failed: {json.dumps(errs, indent=1)[:4000]}")
            return h["outputs"]
        time.sleep(1)
    sys.exit("timed out")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", default="http://127.0.0.1:8188")
    ap.add_argument("--photo", type=Path)
    ap.add_argument("--speech", type=Path)
    ap.add_argument("--text", help="for workflows with VLOGGER_TextToSpeech")
    ap.add_argument("--workflow", type=Path, default=DEFAULT_WORKFLOW, help="an API-format workflow JSON")
    ap.add_argument("--out", type=Path, default=Path("vlogger.mp4"))
    a = ap.parse_args()
    prompt = json.loads(a.workflow.read_text())
    set_inputs(prompt, photo=upload(a.server, a.photo) if a.photo else None,
               speech=upload(a.server, a.speech) if a.speech else None, text=a.text)
    outputs = wait(a.server, queue(a.server, prompt))
    for node_out in outputs.values():
        for items in node_out.values():
            for f in items if isinstance(items, list) else []:
                if isinstance(f, dict) and str(f.get("filename", "")).endswith(".mp4"):
                    q = urllib.parse.urlencode({"filename": f["filename"], "subfolder": f.get("subfolder", ""),
                                                "type": f.get("type", "output")})
                    with urllib.request.urlopen(f"{a.server}/view?{q}") as r:
                        a.out.write_bytes(r.read())
                    print(a.out.resolve())
                    return
    sys.exit(f"no MP4 in the outputs: {json.dumps(outputs)[:2000]}")


if __name__ == "__main__":
    main()
