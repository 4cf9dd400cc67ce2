"""Shared fixtures: ONE real ComfyUI server per test session, with this pack in custom_nodes."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO))

from comfyui_server import ComfyClient, ComfyServer, load_api_workflow  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")


class Comfy(ComfyClient):
    """A client bound to the session's server, with its folders."""

    def __init__(self, server: ComfyServer):
        super().__init__(server.url)
        self.server = server
        self.input_dir = server.input_dir
        self.output_dir = server.output_dir
        self.models_dir = server.models_dir

    def workflow(self, name: str) -> dict:
        return load_api_workflow(name)


_SERVER: ComfyServer | None = None

TINY_SD_CHECKPOINT = "tiny-random-sd1.safetensors"


def make_tiny_models(models_dir: Path) -> Path:
    """TINY RANDOM video/SR model folders (noise, never results) in models/vlogger/video and a
    tiny SD1-format checkpoint in models/checkpoints, so the shipped diffusion workflow and the
    video tests run through the real server without downloads."""
    from make_tiny_video_model import make_all

    video_dir = models_dir / "vlogger" / "video"
    if not (video_dir / "tiny-random-sd" / "config.json").exists():
        make_all(video_dir, sd_checkpoint=models_dir / "checkpoints" / TINY_SD_CHECKPOINT)
    return video_dir


@pytest.fixture(scope="session")
def comfy_server():
    global _SERVER
    server = ComfyServer()
    make_tiny_models(server.models_dir)   # before start, so the loaders' lists include them
    server.start()
    _SERVER = server
    yield server
    server.stop()
    _SERVER = None
    server.remove()


@pytest.fixture(scope="session")
def comfy(comfy_server) -> Comfy:
    return Comfy(comfy_server)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failing test that used the server, attach the server log to the report."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _SERVER is not None and "comfy" in getattr(item, "fixturenames", ()):
        rep.sections.append(("ComfyUI server log (tail)", _SERVER.log(12000)))
