"""The pack installed like a user's: ComfyUI 0.3.75's torch and requirements, then ONLY this
pack's requirements.txt, line by line as ComfyUI-Manager installs it (numpy 2, no mediapipe, no
test tools). scripts/setup_plain.sh builds that environment in .venv-plain/; these tests run from
the main venv's pytest and start a real ComfyUI with .venv-plain's python. They check the
install itself (pip check, nothing of ComfyUI's downgraded or removed) and that the pack loads
there and makes the same fit and the same kind of video as in the main environment.

Skipped only when .venv-plain does not exist and VLOGGER_REQUIRE_PLAIN is unset; scripts/test.sh
builds it and sets VLOGGER_REQUIRE_PLAIN=1, so CI never skips them."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from comfyui_server import ComfyClient, ComfyServer, load_api_workflow
from packaging.version import InvalidVersion, Version
from PIL import Image, ImageDraw
from test_workflows_api import (
    Run,
    assert_talking_video,
    check_fit_reference,
    preview_audio,
)

REPO = Path(__file__).resolve().parent.parent
PLAIN = REPO / ".venv-plain"
PLAIN_PY = PLAIN / "bin" / "python"
REQUIRE_PLAIN = "VLOGGER_REQUIRE_PLAIN"
SETUP = "bash scripts/setup_plain.sh"

if not PLAIN.exists() and os.environ.get(REQUIRE_PLAIN) != "1":
    pytest.skip(f"no .venv-plain ({SETUP} builds it; scripts/test.sh does and sets {REQUIRE_PLAIN}=1)",
                allow_module_level=True)

# what the pack itself brings (so the freeze comparison cannot pass on an empty install)
PACK_ADDS = {"smplx", "diffusers", "peft", "accelerate", "numba", "opencv-python-headless", "ai-edge-litert"}
MOUTH = slice(31, 51)       # iBUG-68 points 48..67 among the body's 51 face landmarks (17..67)


@pytest.fixture(scope="module")
def plain() -> Path:
    """.venv-plain, complete and built from the current requirements.txt."""
    if not PLAIN_PY.exists():
        pytest.fail(f"{PLAIN_PY} does not exist ({REQUIRE_PLAIN}=1): run {SETUP}", pytrace=False)
    if not (PLAIN / ".vlogger-plain").exists():
        pytest.fail(f"{PLAIN} is incomplete (its build stopped): run {SETUP}", pytrace=False)
    installed = (PLAIN / "pack-requirements.txt").read_text()
    if installed != (REPO / "requirements.txt").read_text():
        pytest.fail(f"{PLAIN} was built from an older requirements.txt: run {SETUP}", pytrace=False)
    return PLAIN


def plain_python(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(PLAIN_PY), *args], check=False, capture_output=True, text=True, timeout=600,
                          cwd=str(REPO), env={**os.environ, "PYTHONNOUSERSITE": "1"})


def read_freeze(text: str) -> dict[str, str]:
    """pip freeze -> {normalised name: version, or the whole line for a direct reference}."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, version = line.split("==", 1) if "==" in line else (line.split(" @ ")[0], line)
            out[re.sub(r"[-_.]+", "-", name).lower()] = version
    return out


def older(now: str, then: str) -> bool:
    """Whether version `now` is older than `then` (direct references: whether it changed)."""
    try:
        return Version(now) < Version(then)
    except InvalidVersion:
        return now != then


def test_plain_pip_check_is_clean(plain):
    r = plain_python("-m", "pip", "check")
    assert r.returncode == 0, f"pip check in {plain}:\n{r.stdout}{r.stderr}"
    assert "No broken requirements" in r.stdout, r.stdout


def test_pack_downgrades_or_removes_nothing_comfyui_installed(plain):
    before = read_freeze((plain / "freeze-comfyui.txt").read_text())
    after = read_freeze((plain / "freeze-pack.txt").read_text())
    assert {"torch", "numpy", "transformers", "av"} <= before.keys(), sorted(before)  # ComfyUI's
    assert PACK_ADDS <= after.keys() - before.keys(), sorted(PACK_ADDS - after.keys())
    removed = sorted(before.keys() - after.keys())
    assert not removed, f"installing the pack removed {removed} (see {plain}/install-pack.log)"
    downgraded = {k: (v, after[k]) for k, v in before.items() if older(after[k], v)}
    assert not downgraded, f"installing the pack downgraded {downgraded} (see {plain}/install-pack.log)"
    # and nothing was installed there since (the test tools live in the main venv only)
    now = read_freeze(plain_python("-m", "pip", "freeze", "--all").stdout)
    assert now == after, {k: (after.get(k), now.get(k)) for k in now.keys() | after.keys()
                          if now.get(k) != after.get(k)}


def test_plain_has_numpy_2_and_no_mediapipe_or_test_tools(plain):
    r = plain_python("-c", "import importlib.util as u, json, numpy, ai_edge_litert.interpreter; "
                           "print(json.dumps({'numpy': numpy.__version__, 'absent': [m for m in "
                           "('mediapipe', 'pytest', 'playwright', 'pytest_timeout') if u.find_spec(m) is None]}))")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert Version(got["numpy"]).major >= 2, got
    assert got["absent"] == ["mediapipe", "pytest", "playwright", "pytest_timeout"], got
    r = plain_python("-c", "import mediapipe")
    assert r.returncode != 0 and "No module named 'mediapipe'" in r.stderr, r.stderr


class PlainComfy(ComfyClient):
    def __init__(self, server: ComfyServer):
        super().__init__(server.url)
        self.server = server
        self.output_dir = server.output_dir


@pytest.fixture(scope="module")
def plain_comfy(plain):
    # numba's on-disk cache is per numba version: the plain one keeps its own
    server = ComfyServer(python=PLAIN_PY, env={"NUMBA_CACHE_DIR": str(plain / "numba-cache")})
    try:
        server.start(timeout=300)
        yield PlainComfy(server)
    finally:
        server.stop()
        server.remove()


def run_workflow(client, name: str, probes: dict | None = None) -> Run:
    result = client.run({**load_api_workflow(name), **(probes or {})})
    log = client.server.log(8000)
    assert result.error is None and result.status == "success", f"{name}: {json.dumps(result.error)[:3000]}\n{log}"
    return Run(client, result)


def fit_data(run: Run, node: str = "3") -> dict:
    (data,) = run.result.outputs[node]["vlogger_fit"]      # what FitReference shows its editor
    return data


def test_plain_server_loads_the_pack(plain_comfy, comfy):
    names = {k for k in plain_comfy.object_info() if k.startswith("VLOGGER_")}
    main = {k for k in comfy.object_info() if k.startswith("VLOGGER_")}
    assert main and names == main, f"missing in the plain install: {sorted(main - names)}"
    log = plain_comfy.server.log(10 ** 7)
    for bad in ("IMPORT FAILED", "Cannot import", "Traceback", "landmark detector is unavailable"):
        assert bad not in log, f"{bad!r} in the plain server's log:\n{log[-6000:]}"
    # the server's libraries come from .venv-plain, not the main venv
    maps = Path(f"/proc/{plain_comfy.server.proc.pid}/maps").read_text()
    assert f"{PLAIN}/lib/" in maps and f"{REPO / '.venv'}/lib/" not in maps


@pytest.fixture(scope="module")
def plain_fit(plain_comfy) -> Run:
    """fit_reference run once on the plain server, first (a cached node reports no UI data)."""
    return run_workflow(plain_comfy, "fit_reference")


def test_plain_fit_reference_uses_the_landmark_detector(plain_fit):
    check_fit_reference(plain_fit)                     # the same check as in the main environment
    fit = fit_data(plain_fit)
    assert fit["detector"] == "landmarks", f"the fit used {fit['detector']!r}, not the landmark detector"
    # the same fit as the main environment makes (numpy 1.26, mediapipe installed): face
    # landmarks of the fitted body, in photo pixels
    from vlogger_core.body.model import DEFAULT_BODY, load_body
    from vlogger_core.body.overlay import fit_editor_data
    from vlogger_core.body.reference import fit_reference
    body = load_body(DEFAULT_BODY, "cpu")
    photo = np.asarray(Image.open(REPO / "examples" / "astronaut.png").convert("RGB"))
    main = fit_editor_data(fit_reference(photo, body, "auto"), body)
    assert main["detector"] == "landmarks", main["detector"]
    diff = np.linalg.norm(np.subtract(fit["landmarks"], main["landmarks"]), axis=1)
    assert diff.mean() < 1.0, f"plain vs main fit: face landmarks {diff.mean():.2f} px apart"


def _patch_span(frames: np.ndarray, y0: int, y1: int, x0: int, x1: int) -> float:
    """Mean over the patch's pixels of their brightest-minus-darkest value over time."""
    p = frames[:, y0:y1, x0:x1].astype(np.int16)
    return float((p.max(0) - p.min(0)).max(-1).mean())


def test_plain_talking_video_is_the_same_kind(plain_fit, plain_comfy):
    # the video's fit (node 3) is fit_reference's, which the test above checks
    video_wf, fit_wf = load_api_workflow("talking_video"), load_api_workflow("fit_reference")
    for n in ("1", "2", "3"):           # photo, body, fit: the same nodes, so ComfyUI reuses the fit
        assert video_wf[n] | {"_meta": None} == fit_wf[n] | {"_meta": None}, n
    fit = fit_data(plain_fit)
    run = run_workflow(plain_comfy, "talking_video", {"900": preview_audio("4")})
    video, speech = run.video("8"), run.audio("900")
    # the main environment's check: 24 fps, 256x256, the speech's duration within 0.2 s, moving
    assert_talking_video(video, speech)
    frames = video.frames
    H, W = frames.shape[1:3]
    s = W / fit["width"]
    assert fit["width"] == fit["height"] and H == W, "the shipped photo and the video are square"
    # the mouth region (the fitted mouth landmarks' box, padded) changes over time ...
    lips = np.asarray(fit["landmarks"])[MOUTH] * s
    (x0, y0), (x1, y1) = lips.min(0), lips.max(0)
    pad = 0.25 * max(x1 - x0, y1 - y0)
    box = [int(max(0, y0 - pad)), int(min(H, y1 + pad)), int(max(0, x0 - pad)), int(min(W, x1 + pad))]
    mouth = _patch_span(frames, *box)
    assert mouth > 25, f"the mouth region {box} barely changes: {mouth:.1f}"
    # ... while the background corners away from the body stay still
    body = Image.new("L", (W, H))
    ImageDraw.Draw(body).polygon([(x * s, y * s) for x, y in fit["outline"]], fill=1)
    body = np.asarray(body, bool)
    c = W // 8
    corners = {"top-left": (0, c, 0, c), "top-right": (0, c, W - c, W),
               "bottom-left": (H - c, H, 0, c), "bottom-right": (H - c, H, W - c, W)}
    free = {k: b for k, b in corners.items() if not body[b[0]:b[1], b[2]:b[3]].any()}
    assert len(free) >= 2, f"the fitted body covers most corners: {sorted(set(corners) - set(free))}"
    spans = {k: _patch_span(frames, *b) for k, b in free.items()}
    assert max(spans.values()) < 3, f"background corners change over the video: {spans}"
