"""How much memory a device has free, for the checks that refuse work before it allocates."""
from __future__ import annotations

import os

import torch


def available_gb(device: torch.device | str = "cpu") -> float:
    """GB free on `device`: a GPU's as CUDA reports it; for the CPU the system's available RAM
    (free + reclaimable cache, as /proc/meminfo's MemAvailable; psutil where it is installed)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0] / 1e9
    try:
        import psutil
        return psutil.virtual_memory().available / 1e9
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 1e9


# An IMAGE batch (and the work around it: the video writer, ComfyUI's cache of the node's output,
# everything else the server holds) must fit in this share of the memory that is free.
BATCH_SHARE = 0.5


def image_batch_bytes(frames: int, height: int, width: int, channels: int = 3) -> int:
    """Bytes of a float32 IMAGE batch [frames, height, width, channels]."""
    return int(frames) * int(height) * int(width) * int(channels) * 4


def batch_fits(nbytes: float, device: torch.device | str = "cpu", share: float = BATCH_SHARE
               ) -> tuple[bool, float]:
    """(whether `nbytes` fits in `share` of what is free on `device`, the GB free)."""
    free = available_gb(device)
    return nbytes <= share * free * 1e9, free


def fitting_frames(frames: int, nbytes: float, free_gb: float, share: float = BATCH_SHARE) -> int:
    """How many of `frames` frames (taking `nbytes` in all) would fit in `share` of `free_gb`."""
    return max(0, int(frames * share * free_gb * 1e9 / max(nbytes, 1)))
