"""Start ComfyUI (the .comfyui tree, with this pack linked), queue the default workflow
(workflows/api/talking_video.json) on the shipped photo and speech, and print the MP4's path.

    .venv/bin/python scripts/run_example.py [--photo FILE] [--speech FILE] [--workflow NAME]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comfyui_server import COMFY_DIR, ComfyClient, ComfyServer, load_api_workflow  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from queue_workflow import set_inputs  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--photo", help="a photo of a person (default: examples/astronaut.png)")
    ap.add_argument("--speech", help="a speech file (default: examples/speech.wav)")
    ap.add_argument("--workflow", default="talking_video", help="a workflows/api/ file stem")
    ap.add_argument("--serve", action="store_true",
                    help="then keep the server running and print the live page's address (docs/live.md); Ctrl-C stops")
    args = ap.parse_args()

    server = ComfyServer(base_dir=str(COMFY_DIR)).start()
    try:
        client = ComfyClient(server.url)
        prompt = load_api_workflow(args.workflow)
        photo = client.upload(args.photo) if args.photo else None
        speech = client.upload(args.speech) if args.speech else None
        set_inputs(prompt, photo=photo, speech=speech)
        result = client.run(prompt, timeout=3600)
        if result.error:
            sys.exit("the workflow failed: " + json.dumps(result.error, indent=1)[:4000])
        videos = [f for f in result.files() if f["filename"].endswith(".mp4")]
        if not videos:
            sys.exit(f"the workflow wrote no MP4; outputs: {json.dumps(result.outputs)[:2000]}")
        f = videos[0]
        path = Path(server.base_dir, f.get("type", "output"), f.get("subfolder", ""), f["filename"])
        print(f"[vlogger] done in {result.seconds:.1f} s", file=sys.stderr)
        print(path.resolve())
        if args.serve:
            print(f"[vlogger] live page: {server.url}/extensions/ComfyUI-VLOGGER/live/index.html "
                  "(or the menu VLOGGER > Live avatar in the ComfyUI page); Ctrl-C stops the server",
                  file=sys.stderr, flush=True)
            try:
                server.proc.wait()
            except KeyboardInterrupt:
                pass
    except Exception:
        print(server.log(4000), file=sys.stderr)
        raise
    finally:
        server.stop()


if __name__ == "__main__":
    main()
