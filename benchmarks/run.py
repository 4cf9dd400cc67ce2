"""Run the benchmarks (from the repo root, in .venv).

    python benchmarks/run.py NAME
        benchmarks/NAME.py defines run() -> dict; its figures are printed as ONE JSON object on
        the last line (anything the benchmark logs goes before it).
    python benchmarks/run.py all [--only a,b] [--markdown docs/benchmarks.md]
        every benchmark (or those named) one after the other, each in its own process (so one's
        memory does not raise the next one's peak RSS); writes the machine (CPU, cores, load
        before and after each benchmark, RAM, versions, commit, date), one table row per
        benchmark with its goal, and the raw JSON as markdown; prints one JSON object last.
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))


def _all_at_most(r: dict, limits: dict) -> bool:
    return all(r.get(k) is not None and r[k] <= v for k, v in limits.items())


# name -> (headline figures, the goal in words, goal met?); the order `all` runs them in
BENCHMARKS = {
    "render": (("ms_per_frame_raster_256", "ms_per_frame_raster_512", "ms_per_frame_pose_raster_256"),
               "rasterize + shade <= 5 ms/frame at 256 (<= 15 at 512); pose + rasterize + shade <= 15 ms/frame",
               lambda r: _all_at_most(r, {"ms_per_frame_raster_256": 5, "ms_per_frame_raster_512": 15,
                                          "ms_per_frame_pose_raster_256": 15})),
    "fit": (("detector", "ms_per_image_512", "face_landmark_diff_px", "fit_face_error_px"),
            "default detector 'landmarks' (no mediapipe needed); face, pose and hands <= 100 ms per 512 px photo; "
            "face landmarks within 1 px of mediapipe 0.10.21's (where installed)",
            lambda r: r["detector"] == "landmarks" and _all_at_most(r, {"ms_per_image_512": 100})
            and (r.get("face_landmark_diff_px") is None or r["face_landmark_diff_px"] < 1)),
    "motion": (("realtime_factor", "realtime_factor_cfg2", "frames"),
               "realtime_factor >= 30 (60 s of speech, 24 fps, 25 steps)",
               lambda r: r["realtime_factor"] >= 30),
    "e2e": (("seconds_10s_256", "seconds_10s_512", "split_256", "split_512"),
            "photo + 10 s speech -> MP4 in <= 5 s at 256, <= 10 s at 512",
            lambda r: _all_at_most(r, {"seconds_10s_256": 5, "seconds_10s_512": 10})),
    "body_motion": (("shoulder_motion_pct", "background_change", "seconds_10s_512"),
                    "the default 512 video's seen shoulders move: shoulder_motion_pct >= 1.0, with "
                    "background_change < 2 levels of 255; seconds_10s_512 <= 10",
                    lambda r: (r["shoulder_motion_pct"] or 0) >= 1.0 and r["background_change"] is not None
                    and r["background_change"] < 2 and r["seconds_10s_512"] <= 10),
    "fit_large_photo": (("peak_rss_mb", "extra_mb", "seconds"),
                        "a 6000x6000 photo: fit + overlay + editor data, memory over its input <= 1.5 GB",
                        lambda r: r["extra_mb"] <= 1500),
    "long_input": (("peak_mb_12min_default", "seconds_refuse_60min_default", "seconds_resample_44101",
                    "text_5000_outcome", "text_5000_peak_mb"),
                   "long speech in the default workflow refused in < 1 s (or flat memory): 1-hour file refused "
                   "in <= 1 s; 44,101 Hz resample of 2 s <= 1 s",
                   lambda r: r["seconds_refuse_60min_default"] is not None and r["seconds_refuse_60min_default"] <= 1
                   and r["seconds_resample_44101"] <= 1),
    "memory": (("peak_mb_1min_256", "peak_mb_10min_256", "difference_mb"),
               "peak RSS for 10 min <= 1 min + 100 MB (flat)",
               lambda r: r["difference_mb"] <= 100),
    "video_step": (("step_ratio", "full_step_s", "base_step_s"),
                   "full video model step / frozen base step <= 1.5",
                   lambda r: r["step_ratio"] <= 1.5),
    "outpaint_memory": (("peak_rss_mb_10s", "peak_rss_mb_60s", "growth_mb_10s", "growth_mb_60s"),
                        "flat: growth over the loaded models for 60 s under 2x that for 10 s (linear would be 6x)",
                        lambda r: r["growth_mb_60s"] < 2 * max(r["growth_mb_10s"], 1.0)),
    "quality": (("lip_gap_r", "bilabial_closed", "pause_closed", "shoulder_motion_pct", "background_change",
                 "seconds_10s_512", "photo_lip_gap"),
                "on the OUTPUT frames at 512 (default detector 'landmarks', held-out TTS): lip_gap_r >= 0.85, "
                "bilabial_closed >= 0.8, pause_closed >= 0.9, shoulder_motion_pct >= 1.0 with background_change < 2, "
                "seconds_10s_512 <= 10",
                lambda r: r["lip_gap_r"] >= 0.85 and r["bilabial_closed"] >= 0.8 and r["pause_closed"] >= 0.9
                and (r["shoulder_motion_pct"] or 0) >= 1.0 and r["background_change"] is not None
                and r["background_change"] < 2 and r["seconds_10s_512"] <= 10),
    "reenact": (("mouth_r", "blink_r", "head_mae_deg", "ms_per_frame"),
                "drive the shipped photo with examples/talking_astronaut.mp4 (true motion known): mouth_r >= 0.8, "
                "blink_r >= 0.8, head_mae_deg <= 1.5",
                lambda r: r["mouth_r"] >= 0.8 and r["blink_r"] >= 0.8 and r["head_mae_deg"] <= 1.5),
    "reenact_long": (("peak_mb_1min", "peak_mb_30min", "growth_mb", "ms_per_frame"),
                     "a 30-minute driving video (REENACT_LONG_MINUTES) reenacted from its file: peak RSS "
                     "<= the 1-minute one + 100 MB (flat)",
                     lambda r: r["growth_mb"] <= 100),
    "bridge": (("pose_ms_per_frame", "face_ms_per_frame", "depth_ms_per_frame", "growth_mb"),
               "driving videos at 640 x 640: pose <= 50 ms/frame; 2 min of speech window by window: "
               "growth_mb <= 50 (flat)",
               lambda r: r["pose_ms_per_frame"] <= 50 and r["growth_mb"] <= 50),
    "training": (("prep_seconds_per_frame", "motion_finetune_s_per_step", "motion_finetune_loss_first_last",
                  "video_stage1_s_per_step", "video_stage2_s_per_step", "lora_s_per_step"),
                 "figures, no goal", None),
    "tts": (("deterministic", "ms_per_sentence", "ms_added_per_call", "growth_kb_per_call"),
            "the same sentence after other voices is sample-identical (deterministic); a fresh espeak-ng per "
            "call adds <= 20 ms to a live-page sentence",
            lambda r: r["deterministic"] and r["ms_added_per_call"] <= 20),
    "live": (("first_frame_ms", "sustained_fps", "lag_growth_ms", "audio_video_offset_ms", "cpu_share",
              "sustained_fps_512"),
             "256x256 at 24 fps, speech streamed in 20 ms chunks for 2 min: first_frame_ms <= 200, "
             "sustained_fps >= 24, lag_ms_end - lag_ms_start <= 100, |audio_video_offset_ms| <= 40 (512: report)",
             lambda r: r["first_frame_ms"] <= 200 and r["sustained_fps"] >= 24 and r["lag_growth_ms"] <= 100
             and abs(r["audio_video_offset_ms"]) <= 40),
}


def run_one(name: str) -> None:
    print(json.dumps(importlib.import_module(name).run()), flush=True)


def _text(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _meminfo_gb(key: str) -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                   if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import torch
    commit = _text(["git", "rev-parse", "--short", "HEAD"]) or "unknown"
    if _text(["git", "status", "--porcelain", "--untracked-files=no"]):
        commit += " (with uncommitted changes)"
    return {
        "cpu": cpu, "cores": os.cpu_count(), "cores_usable": len(os.sched_getaffinity(0)),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "ram_gb": _meminfo_gb("MemTotal"), "ram_available_gb": _meminfo_gb("MemAvailable"),
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(), "torch": torch.__version__, "numpy": _version("numpy"),
        "commit": commit, "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def run_in_subprocess(name: str) -> dict:
    """`run.py NAME` in a fresh process: its figures, the load average around it, the time it took."""
    load_before, t = [round(x, 2) for x in os.getloadavg()], time.perf_counter()
    p = subprocess.run([sys.executable, str(HERE / "run.py"), name], cwd=REPO, stdout=subprocess.PIPE, text=True)
    entry = {"load_average_before": load_before, "load_average_after": [round(x, 2) for x in os.getloadavg()],
             "wall_s": round(time.perf_counter() - t, 1)}
    lines = p.stdout.strip().splitlines()
    for line in lines[:-1]:                 # what the benchmark logged, kept out of our last line
        print(line, file=sys.stderr)
    try:
        entry["figures"] = json.loads(lines[-1]) if p.returncode == 0 else None
    except (IndexError, json.JSONDecodeError):
        entry["figures"] = None
    if entry["figures"] is None:
        entry["error"] = f"exit code {p.returncode}; stderr above"
    return entry


def _cell(value) -> str:
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def markdown(info: dict, results: dict) -> str:
    m = info
    lines = [
        "# Benchmark figures", "",
        "Written by `python benchmarks/run.py all --markdown docs/benchmarks.md` (rerun it to regenerate; do "
        "not edit by hand). Each benchmark ran in its own process, one after the other, on this machine:", "",
        "| machine | |", "|---|---|",
        f"| CPU | {m['cpu']} |",
        f"| cores | {m['cores']} ({m['cores_usable']} usable by this process) |",
        f"| GPU | {m['gpu']} |",
        f"| RAM | {m['ram_gb']} GB ({m['ram_available_gb']} GB available at start) |",
        f"| OS | {m['os']} |",
        f"| Python / torch / numpy | {m['python']} / {m['torch']} / {m['numpy']} |",
        f"| commit | {m['commit']} |",
        f"| date | {m['date']} |",
        f"| load average (1, 5, 15 min) at start | {', '.join(map(str, m['load_average_at_start']))} |", "",
        "| benchmark | figures | goal | goal met | load average (1 min) before -> after | run time |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        keys, goal, met = BENCHMARKS[name]
        f = r["figures"]
        if f is None:
            figures, verdict = f"**failed** ({r['error']})", "no"
        else:
            figures = "; ".join(f"`{k}` **{_cell(f[k])}**" for k in keys if k in f)
            verdict = "-" if met is None else ("yes" if met(f) else "**no**")
        lines.append(f"| `{name}` | {figures} | {goal} | {verdict} | {r['load_average_before'][0]} -> "
                     f"{r['load_average_after'][0]} | {r['wall_s']} s |")
    lines += ["", "Every figure each benchmark printed (`python benchmarks/run.py NAME` prints the same "
                  "object for one):", "", "```json", "{", ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in results.items()),
              "}", "```", ""]
    return "\n".join(lines)


def run_all(only: list[str] | None, markdown_path: str | None) -> int:
    names = only or list(BENCHMARKS)
    info = machine()
    results = {}
    for name in names:
        print(f"[benchmarks] {name} ...", file=sys.stderr, flush=True)
        results[name] = run_in_subprocess(name)
    if markdown_path:
        Path(markdown_path).parent.mkdir(parents=True, exist_ok=True)
        Path(markdown_path).write_text(markdown(info, results))
    print(json.dumps({"machine": info, "benchmarks": results, "markdown": markdown_path}), flush=True)
    return 0 if all(r["figures"] is not None for r in results.values()) else 1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("name", choices=[*BENCHMARKS, "all"], help="a benchmark, or all of them")
    p.add_argument("--only", help="with all: a comma-separated subset, e.g. motion,render")
    p.add_argument("--markdown", help="with all: write the figures as markdown to this file")
    a = p.parse_args()
    if a.name != "all":
        if a.only or a.markdown:
            p.error("--only and --markdown go with 'all'")
        return run_one(a.name)
    only = [n.strip() for n in a.only.split(",") if n.strip()] if a.only else None
    unknown = sorted(set(only or ()) - set(BENCHMARKS))
    if unknown:
        p.error(f"--only: unknown benchmark(s) {', '.join(unknown)} (known: {', '.join(BENCHMARKS)})")
    sys.exit(run_all(only, a.markdown))


if __name__ == "__main__":
    main()
