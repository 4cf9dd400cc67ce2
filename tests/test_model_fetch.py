"""Model fetch with the REAL huggingface_hub client against a local HTTP server that serves files in
the hub's layout (HF_ENDPOINT), never the internet: files land in ComfyUI's model folders, an
interrupted download resumes, a corrupt file is refused, offline says so clearly."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vlogger_core.bridge.model_fetch import MODEL_SETS

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "fetch_models.py"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class Hub:
    """A tiny hub: HEAD / GET {repo}/resolve/{revision}/{path} with the headers the client reads
    (X-Repo-Commit, X-Linked-Etag = the sha256, X-Linked-Size), byte ranges, and faults on request."""

    def __init__(self, files: dict[tuple[str, str], bytes]):
        self.files = dict(files)
        self.cut_first_get: set[str] = set()     # paths whose first GET stops halfway
        self.bad_etag: set[str] = set()          # paths announced with a wrong sha256
        self.requests: list[tuple[str, str, str | None]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _find(self):
                parts = self.path.split("?")[0].lstrip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return None, None
                repo, path = "/".join(parts[:2]), "/".join(parts[4:])
                return path, hub.files.get((repo, path))

            def _headers(self, path, data, status=200, start=0):
                sha = hashlib.sha256(data).hexdigest()
                if path in hub.bad_etag:
                    sha = hashlib.sha256(b"something else").hexdigest()
                self.send_response(status)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{sha}"')
                self.send_header("X-Linked-Etag", f'"{sha}"')
                self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(data) - start))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()

            def _missing(self):
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("X-Error-Message", "Entry not found")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_HEAD(self):
                path, data = self._find()
                hub.requests.append(("HEAD", self.path, None))
                if data is None:
                    return self._missing()
                self._headers(path, data)

            def do_GET(self):
                path, data = self._find()
                rng = self.headers.get("Range")
                hub.requests.append(("GET", self.path, rng))
                if data is None:
                    return self._missing()
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                self._headers(path, data, 206 if start else 200, start)
                body = data[start:]
                if path in hub.cut_first_get:
                    hub.cut_first_get.discard(path)
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(2)       # the connection drops mid-file
                    return
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def downloads(self) -> list[tuple[str, str, str | None]]:
        return [q for q in self.requests if q[0] == "GET" and "/resolve/" in q[1]]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def payload(name: str, size: int) -> bytes:
    return (hashlib.sha256(name.encode()).digest() * (size // 32 + 1))[:size]


@pytest.fixture
def hub():
    files = {(f.repo_id, f.path): payload(f.path, 300_000 + 1000 * i)
             for i, f in enumerate(MODEL_SETS["sd15_openpose"])}
    # larger than the client's 10 MB download chunk, so a cut download has written some of it
    files[("someone/vlogger-video", "unet/model.safetensors")] = payload("custom", 24 << 20)
    h = Hub(files)
    yield h
    h.close()


def run_fetch(args, endpoint: str, tmp: Path, offline: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "1" if offline else "0",
           "HF_HOME": str(tmp / "hf_home"), "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_ETAG_TIMEOUT": "5",
           "HF_HUB_DOWNLOAD_TIMEOUT": "10"}
    env.pop("HF_TOKEN", None)
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_workflow_files_land_in_the_model_folders(hub, tmp_path):
    models = tmp_path / "models"
    r = run_fetch(["sd15_openpose", "--models-dir", str(models)], hub.url, tmp_path)
    assert r.returncode == 0, r.stderr
    for f in MODEL_SETS["sd15_openpose"]:
        p = models / f.folder / f.name
        assert p.read_bytes() == hub.files[(f.repo_id, f.path)], p
    assert not any(models.rglob(".vlogger_download")), "the staging folder was left behind"
    assert "100%" in r.stdout and r.stdout.count("ok ") == 2, r.stdout
    # a second run keeps the complete files: HEAD requests only, no download
    before = len(hub.downloads())
    r = run_fetch(["sd15_openpose", "--models-dir", str(models)], hub.url, tmp_path)
    assert r.returncode == 0 and len(hub.downloads()) == before


def test_an_interrupted_download_resumes(hub, tmp_path):
    models = tmp_path / "models"
    path = "unet/model.safetensors"
    hub.cut_first_get.add(path)
    args = ["--file", f"someone/vlogger-video/{path}", "--folder", "vlogger_video", "--models-dir", str(models)]
    first = run_fetch(args, hub.url, tmp_path)
    target = models / "vlogger_video" / "model.safetensors"
    if first.returncode != 0:      # the client gave up: the partial file waits, nothing is in place
        assert "resumes" in first.stderr and not target.exists(), first.stderr
        assert list(models.rglob("*.incomplete")), "the partial download was not kept"
        r = run_fetch(args, hub.url, tmp_path)
        assert r.returncode == 0, r.stderr
    ranges = [q[2] for q in hub.downloads() if q[2]]
    assert ranges and int(ranges[-1].split("=")[1].split("-")[0]) > 0, hub.requests
    assert target.read_bytes() == hub.files[("someone/vlogger-video", path)]


def test_a_corrupt_file_is_refused(hub, tmp_path):
    models = tmp_path / "models"
    f = MODEL_SETS["sd15_openpose"][1]
    hub.bad_etag.add(f.path)
    r = run_fetch(["sd15_openpose", "--models-dir", str(models)], hub.url, tmp_path)
    assert r.returncode == 2 and "corrupt" in r.stderr and "sha256" in r.stderr, r.stderr
    assert not (models / f.folder / f.name).exists()


def test_offline_and_unreachable_say_what_to_do(hub, tmp_path):
    models = tmp_path / "models"
    r = run_fetch(["wan_s2v", "--models-dir", str(models)], hub.url, tmp_path, offline=True)
    assert r.returncode == 2 and "offline" in r.stderr, r.stderr
    assert "wan2.2_s2v_14B_fp8_scaled.safetensors" in r.stderr and "diffusion_models" in r.stderr
    assert not [q for q in hub.requests if "/resolve/" in q[1]], "offline, the client still asked the hub"
    dead = Hub({})
    url = dead.url
    dead.close()                       # nothing listens there any more
    r = run_fetch(["wan_s2v", "--models-dir", str(models)], url, tmp_path)
    assert r.returncode == 2 and "cannot reach" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = run_fetch(["--file", "someone/vlogger-video/nothing.safetensors", "--models-dir", str(models)],
                  hub.url, tmp_path)
    assert r.returncode == 2 and "is not on" in r.stderr, r.stderr
    r = run_fetch(["--file", "someone/vlogger-video/model.ckpt", "--models-dir", str(models)], hub.url, tmp_path)
    assert r.returncode == 2 and "safetensors" in r.stderr, r.stderr


def test_the_node_says_offline_through_the_server(comfy):
    """The test server runs with HF_HUB_OFFLINE=1: the node reports it, naming the node and what to do."""
    result = comfy.run({"1": {"class_type": "VLOGGER_FetchModels",
                              "inputs": {"workflow": "sd15_openpose", "file": "owner/repository/model.safetensors",
                                         "folder": "checkpoints"}}})
    assert result.error is not None, result.outputs
    msg = json.dumps(result.error)
    assert "[VLOGGER_FetchModels]" in msg and "offline" in msg and "v1-5-pruned-emaonly-fp16" in msg, msg[:2000]
