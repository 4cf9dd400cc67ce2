"""Start a real ComfyUI server with this pack and talk to it over HTTP + websocket.

Used by the tests, the benchmarks and scripts/run_example.py. Standard library + requests +
websocket-client only.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
COMFY_DIR = REPO / ".comfyui"
PACK_LINK_NAME = "ComfyUI-VLOGGER"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    """A ComfyUI process on loopback with a temporary base directory holding this pack.

    `python`: the interpreter that runs ComfyUI (default: this one), e.g. another venv's
    `bin/python` to load the pack in that environment; `env`: variables added to its environment."""

    def __init__(self, base_dir: str | None = None, port: int | None = None, extra_args=(),
                 python: str | os.PathLike | None = None, env: dict[str, str] | None = None):
        self.python = str(python or sys.executable)
        self.extra_env = dict(env or {})
        self.port = port or free_port()
        self._own_base = base_dir is None
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="vlogger-comfy-"))
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen | None = None
        self.log_path = self.base_dir / "server.log"

    @property
    def input_dir(self) -> Path:
        return self.base_dir / "input"

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "output"

    @property
    def models_dir(self) -> Path:
        return self.base_dir / "models"

    def start(self, timeout: float = 120.0) -> "ComfyServer":
        if not (COMFY_DIR / "main.py").exists():
            raise RuntimeError(f"{COMFY_DIR} has no ComfyUI; run scripts/setup.sh first")
        for sub in ("custom_nodes", "input", "output", "models", "user"):
            (self.base_dir / sub).mkdir(parents=True, exist_ok=True)
        settings = self.base_dir / "user" / "default" / "comfy.settings.json"
        if not settings.exists():  # no first-run template dialog over the canvas
            settings.parent.mkdir(parents=True, exist_ok=True)
            settings.write_text(json.dumps({"Comfy.TutorialCompleted": True}))
        link = self.base_dir / "custom_nodes" / PACK_LINK_NAME
        if not link.exists():
            link.symlink_to(REPO)
        for f in (REPO / "examples").iterdir():  # the shipped example inputs
            if f.is_file() and f.suffix.lower() in (".png", ".jpg", ".wav", ".mp3", ".flac", ".mp4", ".npz", ".csv"):
                shutil.copy2(f, self.input_dir / f.name)
        cmd = [self.python, str(COMFY_DIR / "main.py"), "--cpu", "--listen", "127.0.0.1",
               "--port", str(self.port), "--base-directory", str(self.base_dir),
               "--disable-auto-launch", "--database-url", "sqlite:///:memory:",
               *self.extra_args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
        if self.python != sys.executable:   # as if that venv were activated
            bin_dir = Path(self.python).parent
            env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(bin_dir.parent))
        env.update(self.extra_env)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=str(COMFY_DIR), stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url + "/system_stats", timeout=2).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"ComfyUI did not answer within {timeout}s:\n{self.log()}")

    def log(self, tail: int = 20000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if getattr(self, "_log", None):
            self._log.close()

    def remove(self) -> None:
        if self._own_base:
            shutil.rmtree(self.base_dir, ignore_errors=True)


@dataclass
class RunResult:
    prompt_id: str
    outputs: dict = field(default_factory=dict)   # node id -> its UI outputs
    error: dict | None = None                      # execution_error message, if any
    status: str = ""
    seconds: float = 0.0

    def files(self, kind: str | None = None) -> list[dict]:
        """Every file the run reported (images, audio, video...), optionally of one kind."""
        out = []
        for node_out in self.outputs.values():
            for k, items in node_out.items():
                if kind and k != kind:
                    continue
                if isinstance(items, list):
                    out += [i for i in items if isinstance(i, dict) and "filename" in i]
        return out


class ComfyClient:
    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.client_id = uuid.uuid4().hex

    def object_info(self) -> dict:
        r = requests.get(self.url + "/object_info", timeout=60)
        r.raise_for_status()
        return r.json()

    def queue(self, prompt: dict) -> str:
        """POST /prompt. Raises PromptRejected with ComfyUI's node_errors on HTTP 400."""
        r = requests.post(self.url + "/prompt", json={"prompt": prompt, "client_id": self.client_id},
                          timeout=60)
        if r.status_code == 400:
            raise PromptRejected(r.json())
        r.raise_for_status()
        body = r.json()
        if body.get("node_errors"):  # ComfyUI runs the valid outputs and drops the rest
            raise PromptRejected(body)
        return body["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 900.0) -> RunResult:
        """Poll /history until the prompt finished (success or error)."""
        t0 = time.time()
        while time.time() - t0 < timeout:
            r = requests.get(f"{self.url}/history/{prompt_id}", timeout=30)
            h = r.json().get(prompt_id)
            if h and h.get("status", {}).get("completed") is not None and (
                    h["status"].get("status_str") in ("success", "error")):
                res = RunResult(prompt_id, h.get("outputs", {}), None, h["status"]["status_str"],
                                time.time() - t0)
                for name, msg in h["status"].get("messages", []):
                    if name == "execution_error":
                        res.error = msg
                    if name == "execution_interrupted":
                        res.error = {"interrupted": True, **msg}
                return res
            time.sleep(0.25)
        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout}s")

    def run(self, prompt: dict, timeout: float = 900.0) -> RunResult:
        return self.wait(self.queue(prompt), timeout)

    def fetch(self, file: dict) -> bytes:
        r = requests.get(self.url + "/view", params={
            "filename": file["filename"], "subfolder": file.get("subfolder", ""),
            "type": file.get("type", "output")}, timeout=120)
        r.raise_for_status()
        return r.content

    def upload(self, path: str | Path, overwrite: bool = True) -> str:
        """Upload a file into ComfyUI's input folder; returns the name to use in a prompt."""
        path = Path(path)
        with open(path, "rb") as f:
            r = requests.post(self.url + "/upload/image", files={"image": (path.name, f)},
                              data={"overwrite": "true" if overwrite else "false", "type": "input"},
                              timeout=120)
        r.raise_for_status()
        return r.json()["name"]

    def interrupt(self) -> None:
        requests.post(self.url + "/interrupt", timeout=30)


class PromptRejected(Exception):
    def __init__(self, body: dict):
        self.body = body
        super().__init__(json.dumps(body)[:4000])


def load_api_workflow(name: str) -> dict:
    """A shipped API-format workflow by file stem."""
    with open(REPO / "workflows" / "api" / f"{name}.json") as f:
        return json.load(f)
