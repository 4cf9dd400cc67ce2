#!/usr/bin/env bash
# A second, PLAIN environment, installed the way a user's ComfyUI gets this pack through
# ComfyUI-Manager, for tests/test_plain_install.py:
#   .venv-plain/ with ComfyUI 0.3.75's torch (the versions scripts/setup.sh put in .venv) and its
#   requirements.txt (the .comfyui tree setup.sh extracted), then ONLY this pack's requirements.txt,
#   one line at a time as ComfyUI-Manager runs it (`pip install <line>`): no test tools, no mediapipe.
# Records, beside the venv, what the test compares:
#   freeze-comfyui.txt (pip freeze before the pack), freeze-pack.txt (after), pip-check.txt,
#   install-pack.log (pip's output for the pack), pack-requirements.txt (the file installed).
# Idempotent: kept while its stamp matches what it would install; otherwise rebuilt from scratch
# (the "before" freeze must be ComfyUI's alone). Needs scripts/setup.sh to have run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PLAIN="$ROOT/.venv-plain"
COMFY="$ROOT/.comfyui"
PY="$PLAIN/bin/python"
MAIN_PY="$ROOT/.venv/bin/python"
FORMAT="plain-v1"        # bump when this script changes what it installs
log() { echo "[setup-plain] $*" >&2; }
pip_quiet() { grep -v "^WARNING: Location" || true; }
export PIP_DISABLE_PIP_VERSION_CHECK=1
t0=$SECONDS

if [ ! -f "$COMFY/requirements.txt" ] || [ ! -x "$MAIN_PY" ]; then
  log "no .comfyui/ or .venv/: run scripts/setup.sh first"; exit 1
fi
# torch as ComfyUI has it: the versions setup.sh installed into .venv (written down once, there)
torch_pins="$("$MAIN_PY" -m pip freeze 2>/dev/null | grep -E "^(torch|torchvision|torchaudio)==" | sort | tr '\n' ' ')"
[ "$(wc -w <<<"$torch_pins")" = 3 ] || { log "torch/torchvision/torchaudio missing in .venv: run scripts/setup.sh"; exit 1; }

stamp="$( { echo "$FORMAT $torch_pins"; cat "$COMFY/requirements.txt" requirements.txt; } | sha256sum | cut -c1-16)"
if [ "$(cat "$PLAIN/.vlogger-plain" 2>/dev/null)" = "$stamp" ]; then
  log "up to date: $PLAIN"
  exit 0
fi

log "building $PLAIN from scratch ($torch_pins+ ComfyUI's requirements, then the pack's)"
rm -rf "$PLAIN"
python3.11 -m venv "$PLAIN"
# 1. What ComfyUI's own install gives: its torch, then its requirements.txt.
# shellcheck disable=SC2086
"$PY" -m pip install -q $torch_pins 2>&1 | pip_quiet
"$PY" -m pip install -q -r "$COMFY/requirements.txt" 2>&1 | pip_quiet
"$PY" -m pip freeze --all > "$PLAIN/freeze-comfyui.txt"
log "ComfyUI's environment: $(wc -l < "$PLAIN/freeze-comfyui.txt") packages ($((SECONDS - t0)) s)"

# 2. The pack, as ComfyUI-Manager installs it: each requirement line on its own.
cp requirements.txt "$PLAIN/pack-requirements.txt"
: > "$PLAIN/install-pack.log"
while IFS= read -r line || [ -n "$line" ]; do
  req="$(sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' <<<"$line")"
  if [ -z "$req" ] || [ "${req:0:1}" = "#" ]; then continue; fi
  echo "## pip install $req" >> "$PLAIN/install-pack.log"
  if ! "$PY" -m pip install "$req" >> "$PLAIN/install-pack.log" 2>&1; then
    tail -n 30 "$PLAIN/install-pack.log" >&2
    log "pip install '$req' failed (log: $PLAIN/install-pack.log)"; exit 1
  fi
done < requirements.txt
"$PY" -m pip freeze --all > "$PLAIN/freeze-pack.txt"
"$PY" -m pip check > "$PLAIN/pip-check.txt" 2>&1 || log "pip check is not clean: $(cat "$PLAIN/pip-check.txt")"
"$PY" -c "import numpy; print('[setup-plain] numpy', numpy.__version__)" >&2
echo "$stamp" > "$PLAIN/.vlogger-plain"
log "ready: $PLAIN in $((SECONDS - t0)) s ($(diff "$PLAIN/freeze-comfyui.txt" "$PLAIN/freeze-pack.txt" | grep -c '^>' || true) packages added or changed by the pack)"
