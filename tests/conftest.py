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
from make_tiny_video_model import make_test_models  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# scripts/test.sh installs mediapipe and sets this: there, a test marked needs_mediapipe fails
# when mediapipe cannot be imported, so the main fit path never drops out of the suite silently.
REQUIRE_MEDIAPIPE = "VLOGGER_REQUIRE_MEDIAPIPE"


def mediapipe_importable() -> bool:
    try:
        import mediapipe as mp
    except Exception:       # absent, or installed but broken (e.g. under numpy 2): the pack falls back
        return False
    return hasattr(mp, "solutions")


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_mediapipe: the test uses mediapipe's landmarks: skipped "
                                       f"without mediapipe, failed instead when {REQUIRE_MEDIAPIPE}=1")


def pytest_runtest_setup(item):
    if item.get_closest_marker("needs_mediapipe") is None or mediapipe_importable():
        return
    why = "mediapipe (optional extra) not installed: pip install mediapipe==0.10.21"
    if os.environ.get(REQUIRE_MEDIAPIPE) == "1":
        pytest.fail(f"{why} ({REQUIRE_MEDIAPIPE}=1: scripts/test.sh installs it)", pytrace=False)
    pytest.skip(why)


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


@pytest.fixture(scope="session")
def comfy_server():
    global _SERVER
    server = ComfyServer()
    # TINY RANDOM video models (noise, never results) before start, so the loaders list them
    make_test_models(server.models_dir)
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
