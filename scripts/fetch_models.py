"""Download the model files a shipped workflow needs into a ComfyUI models folder (huggingface_hub).

    python scripts/fetch_models.py wan_animate                      # into ../../models (this pack in custom_nodes)
    python scripts/fetch_models.py wan_s2v --models-dir /path/to/ComfyUI/models
    python scripts/fetch_models.py --file someone/vlogger-video/model.safetensors --folder vlogger/video
    python scripts/fetch_models.py --list

Resumes interrupted downloads, checks every file's sha256 against the hub's, and moves a file
into its folder only when complete. HF_ENDPOINT picks a mirror, HF_TOKEN logs in; offline it
says so and prints where to get each file by hand. Same core as the VLOGGER Fetch Models node.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vlogger_core.bridge.model_fetch import (  # noqa: E402
    MODEL_SETS,
    FetchError,
    fetch,
    model_set,
    parse_file,
)


def default_models_dir() -> Path | None:
    """ComfyUI/models when this pack sits in ComfyUI/custom_nodes/<pack>."""
    cand = REPO.parent.parent / "models"
    return cand if (REPO.parent.name == "custom_nodes" and cand.is_dir()) else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workflow", nargs="?", choices=sorted(MODEL_SETS), help="a shipped workflow's model list")
    ap.add_argument("--models-dir", type=Path, default=None, help="ComfyUI's models folder")
    ap.add_argument("--file", help="one file instead: owner/repo/path/in/repo.safetensors[@revision]")
    ap.add_argument("--folder", default="checkpoints", help="the model folder for --file (e.g. vlogger/video)")
    ap.add_argument("--list", action="store_true", help="list the files of every workflow and exit")
    a = ap.parse_args(argv)
    if a.list:
        for name, files in MODEL_SETS.items():
            print(name)
            for f in files:
                print(f"  models/{f.folder}/{f.name}  <- {f.url()}")
        return 0
    if not a.workflow and not a.file:
        ap.error("name a workflow or give --file")
    models = a.models_dir or default_models_dir()
    if models is None:
        ap.error("give --models-dir (ComfyUI's models folder): this pack is not inside ComfyUI/custom_nodes")
    try:
        files = [parse_file(a.file, a.folder)] if a.file else model_set(a.workflow)
        dirs = {f.folder: models / f.folder for f in files}
        last = [-1]

        def progress(done, total):
            pct = int(100 * done / total) if total else 100
            if pct >= last[0] + 5 or done == total:
                last[0] = pct
                print(f"{pct:3d}% ({done / 1e6:.1f} of {total / 1e6:.1f} MB)", flush=True)

        for p in fetch(files, dirs, progress):
            print(f"ok {p}")
    except FetchError as e:
        print(f"error: {e.message}\nfix: {e.fix}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
