"""The needs_mediapipe marker (tests/conftest.py): a marked test skips where mediapipe cannot be
imported, but fails under scripts/test.sh (VLOGGER_REQUIRE_MEDIAPIPE=1), which installs it.
Each case is a pytest subprocess on a one-test file with the suite's conftest as plugin."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
MARKED = '''
import pytest

@pytest.mark.needs_mediapipe
def test_landmarks():
    import mediapipe
    assert mediapipe.solutions
'''


def _pytest(tmp_path: Path, require: bool, hide_mediapipe: bool) -> subprocess.CompletedProcess:
    (tmp_path / "test_marked.py").write_text(MARKED)
    hide = "sys.modules['mediapipe'] = None; " if hide_mediapipe else ""   # as if not installed
    code = (f"import sys; {hide}sys.path.insert(0, {str(TESTS)!r}); import pytest; "
            f"sys.exit(pytest.main(['-q', '-rs', '-p', 'no:cacheprovider', '-p', 'conftest', "
            f"{str(tmp_path / 'test_marked.py')!r}]))")
    env = {k: v for k, v in os.environ.items() if k != "VLOGGER_REQUIRE_MEDIAPIPE"}
    if require:
        env["VLOGGER_REQUIRE_MEDIAPIPE"] = "1"
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)


def test_without_mediapipe_a_marked_test_skips(tmp_path):
    r = _pytest(tmp_path, require=False, hide_mediapipe=True)
    assert r.returncode == 0 and "1 skipped" in r.stdout, r.stdout + r.stderr
    assert "pip install mediapipe==0.10.21" in r.stdout, r.stdout


def test_without_mediapipe_a_marked_test_fails_when_required(tmp_path):
    r = _pytest(tmp_path, require=True, hide_mediapipe=True)
    assert r.returncode == 1 and "1 error" in r.stdout and "skipped" not in r.stdout, r.stdout + r.stderr
    assert "VLOGGER_REQUIRE_MEDIAPIPE=1" in r.stdout, r.stdout


@pytest.mark.needs_mediapipe
def test_with_mediapipe_a_marked_test_runs_when_required(tmp_path):
    r = _pytest(tmp_path, require=True, hide_mediapipe=False)
    assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout + r.stderr
