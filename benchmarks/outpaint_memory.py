"""Peak memory of a 60-second vs a 10-second temporally outpainted video, streamed to MP4.

Each length runs in its own process (peak RSS is per process): TINY RANDOM models (video 32x32,
N=8, overlap 4, then one SR stage 32->64 with window overlap 1; 2 DDIM steps each; timing and
memory only, the pictures are noise), controls rendered lazily per window, the stream
(vlogger_core.diffusion.stream) written straight to the streaming MP4 writer. Flat memory means
the 60 s peak is about the 10 s peak, not 6x its growth over the baseline.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FPS = 24


class LazyControls:
    """Controls made on demand per slice (as a renderer would), never all frames at once."""

    def __init__(self, total: int, channels: int, size: int):
        self.total, self.channels, self.size = total, channels, size

    def __len__(self):
        return self.total

    def __getitem__(self, sl: slice):
        import torch
        a, b, _ = sl.indices(self.total)
        g = torch.Generator().manual_seed(a)
        return torch.rand(b - a, self.channels, self.size, self.size, generator=g)


def child(seconds: int) -> dict:
    import torch
    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    from make_tiny_video_model import (
        randomize_trained_parts,
        tiny_pixel_spec,
        tiny_sr_spec,
    )

    from vlogger_core.diffusion.model import build_video_model
    from vlogger_core.diffusion.stream import diffusion_frames
    from vlogger_core.diffusion.super_resolution import SuperResolutionModel
    from vlogger_core.media import StreamingMP4Writer

    torch.manual_seed(0)
    model = build_video_model(tiny_pixel_spec(num_frames=8, size=32)).eval()
    randomize_trained_parts(model)
    sr = SuperResolutionModel(tiny_sr_spec(in_size=32, num_frames=4)).eval()
    randomize_trained_parts(sr)
    total = seconds * FPS
    controls = LazyControls(total, 3 + model.spec.num_parts + 3, 32)
    ref = torch.rand(3, 32, 32)
    base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    written = 0
    with tempfile.TemporaryDirectory() as d:
        with StreamingMP4Writer(os.path.join(d, "v.mp4"), FPS, 64, 64) as writer:
            for frames in diffusion_frames(model, ref, controls, overlap=4, steps=2, seed=0, sr_stages=[sr],
                                           sr_steps=2, sr_window_overlap=1):
                writer.write(frames.permute(0, 2, 3, 1))
                written += frames.shape[0]
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"frames": written, "seconds_run": round(time.perf_counter() - t, 2),
            "rss_before_mb": round(base_kb / 1024, 1), "peak_rss_mb": round(peak_kb / 1024, 1)}


def _spawn(seconds: int) -> dict:
    out = subprocess.run([sys.executable, __file__, str(seconds)], capture_output=True, text=True, check=True,
                         cwd=str(Path(__file__).resolve().parent.parent),
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def run() -> dict:
    short, long = _spawn(10), _spawn(60)
    grow = lambda r: r["peak_rss_mb"] - r["rss_before_mb"]  # noqa: E731
    return {
        "peak_rss_mb_10s": short["peak_rss_mb"], "peak_rss_mb_60s": long["peak_rss_mb"],
        "growth_mb_10s": round(grow(short), 1), "growth_mb_60s": round(grow(long), 1),
        "peak_ratio_60s_vs_10s": round(long["peak_rss_mb"] / short["peak_rss_mb"], 3),
        "frames_10s": short["frames"], "frames_60s": long["frames"],
        "run_s_10s": short["seconds_run"], "run_s_60s": long["seconds_run"],
        "model": "tiny-random video 32x32 N=8 overlap 4 + SR 32->64; 2 DDIM steps each (memory/timing only)",
    }


if __name__ == "__main__":
    print(json.dumps(child(int(sys.argv[1]))))
