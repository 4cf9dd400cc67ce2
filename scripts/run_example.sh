#!/usr/bin/env bash
# README command 1: set everything up (idempotent), start a real ComfyUI with this pack, queue
# the default workflow on the shipped photo + speech, and print the path of the MP4 it wrote.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
exec "$ROOT/.venv/bin/python" "$ROOT/scripts/run_example.py" "$@"
