"""`python benchmarks/run.py all --markdown FILE` (core, no server): the cheapest benchmark (motion,
a few seconds) through the same path the full run takes, and the file it writes."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RUN = REPO / "benchmarks" / "run.py"
_spec = importlib.util.spec_from_file_location("benchmarks_run", RUN)
run_py = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_py)


def _cpu_model() -> str:
    return next(l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name"))


@pytest.fixture(scope="module")
def motion_run(tmp_path_factory):
    md = tmp_path_factory.mktemp("bench") / "benchmarks.md"
    p = subprocess.run([sys.executable, str(RUN), "all", "--only", "motion", "--markdown", str(md)],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1]), md.read_text()


def test_every_benchmark_file_is_run_by_all():
    files = {p.stem for p in RUN.parent.glob("*.py") if p.stem != "run" and not p.stem.startswith("_")}
    assert files == set(run_py.BENCHMARKS)


def test_the_last_line_holds_the_machine_and_the_figures(motion_run):
    out, _ = motion_run
    assert list(out["benchmarks"]) == ["motion"]            # --only: nothing else ran
    m, r = out["machine"], out["benchmarks"]["motion"]
    assert m["cores"] == os.cpu_count() and m["cpu"] == _cpu_model() and m["python"] == sys.version.split()[0]
    assert len(m["load_average_at_start"]) == 3 and len(r["load_average_before"]) == 3
    f = r["figures"]
    assert f["frames"] == 60 * 24 and f["realtime_factor"] > 1 and f["realtime_factor_cfg2"] < f["realtime_factor"]


def test_the_markdown_has_the_machine_then_the_row(motion_run):
    out, md = motion_run
    f = out["benchmarks"]["motion"]["figures"]
    assert md.index(f"| CPU | {_cpu_model()} |") < md.index("| `motion` |")
    assert f"| cores | {os.cpu_count()} " in md and "| commit | " in md and "| RAM | " in md
    row = next(l for l in md.splitlines() if l.startswith("| `motion` |"))
    assert f"`realtime_factor` **{f['realtime_factor']}**" in row
    assert ("| yes |" if f["realtime_factor"] >= 30 else "| **no** |") in row
    before, after = out["benchmarks"]["motion"]["load_average_before"][0], out["benchmarks"]["motion"]["load_average_after"][0]
    assert f"| {before} -> {after} |" in row
    raw = re.search(r"```json\n(.*?)\n```", md, re.S).group(1)
    assert json.loads(raw)["motion"]["figures"] == f                 # the raw JSON is the same run's


def test_unknown_names_are_refused():
    p = subprocess.run([sys.executable, str(RUN), "all", "--only", "motion,nope"], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "unknown benchmark(s) nope" in p.stderr, p.stderr
