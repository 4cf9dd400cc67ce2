"""Peak resident memory of the streaming talking-video path: 1 minute vs 10 minutes at 256x256.

Each length runs in a fresh process (peak RSS is per process). Prints peak_mb_1min_256 and
peak_mb_10min_256; the goal is the second at most 100 MB above the first (flat memory).
"""
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, resource, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, {here!r}); sys.path.insert(0, {root!r})
from _pipeline import example_photo, example_speech, load_models, make_video
body, mm = load_models()
wave = example_speech({seconds})
with tempfile.TemporaryDirectory() as d:
    t = make_video(Path(d) / "m.mp4", body, mm, example_photo(), wave, "256")
print(json.dumps({{"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "seconds": t["total"]}}))
"""


def run_child(code: str) -> dict:
    """Run `code` in a fresh Python process (its own peak RSS) and return the JSON object it
    prints on its last line."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(seconds: float) -> dict:
    return run_child(CHILD.format(here=str(HERE), root=str(HERE.parent), seconds=seconds))


def run() -> dict:
    one, ten = measure(60.0), measure(600.0)
    return {"peak_mb_1min_256": round(one["peak_mb"], 1), "peak_mb_10min_256": round(ten["peak_mb"], 1),
            "difference_mb": round(ten["peak_mb"] - one["peak_mb"], 1),
            "seconds_1min": round(one["seconds"], 1), "seconds_10min": round(ten["seconds"], 1)}
