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
