#!/usr/bin/env bash
# README command 2: set everything up (idempotent), then run the whole test suite.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
# the plain environment a user's ComfyUI-Manager install makes (tests/test_plain_install.py)
bash "$ROOT/scripts/setup_plain.sh"
cd "$ROOT"
# setup.sh installed mediapipe: its tests fail here instead of skipping (tests/conftest.py)
export VLOGGER_REQUIRE_MEDIAPIPE=1
# setup_plain.sh built .venv-plain: its tests fail here instead of skipping
export VLOGGER_REQUIRE_PLAIN=1
exec "$ROOT/.venv/bin/python" -m pytest tests "$@"
