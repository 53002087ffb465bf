"""A run's memory: this process's resident set (its peak from when training starts) and CUDA's peak allocations."""

from __future__ import annotations

import os
import resource

import torch


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak_rss() -> bool:
    """Start the peak-RSS counter afresh (Linux: writing 5 to clear_refs resets VmHWM); False if not possible.

    Called when training starts, so that the transient peak of building the data set in the same process
    is not counted. What is resident then (imported libraries, the data) stays in the level.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """Peak resident set size since the last reset (VmHWM), else since the process started (ru_maxrss)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def reset_cuda_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def cuda_peaks(device: torch.device) -> dict[str, int | None]:
    if device.type != "cuda":
        return {"peak_cuda_allocated_bytes": None, "peak_cuda_reserved_bytes": None}
    return {
        "peak_cuda_allocated_bytes": torch.cuda.max_memory_allocated(device),
        "peak_cuda_reserved_bytes": torch.cuda.max_memory_reserved(device),
    }
