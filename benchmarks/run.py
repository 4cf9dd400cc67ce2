"""Run one benchmark: `python benchmarks/run.py NAME` (from the repo root, in .venv).

benchmarks/NAME.py defines run() -> dict; its figures are printed as ONE JSON object on the
last line (anything the benchmark logs goes before it).
"""
import importlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def main() -> None:
    names = sorted(p.stem for p in HERE.glob("*.py") if p.stem != "run" and not p.stem.startswith("_"))
    if len(sys.argv) != 2 or sys.argv[1] not in names:
        sys.exit(f"usage: python benchmarks/run.py NAME   (NAME in: {', '.join(names)})")
    result = importlib.import_module(sys.argv[1]).run()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
