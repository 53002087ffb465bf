"""What one training step asks of a GPU: its floating-point operations, counted by torch's FlopCounterMode from the
operators that really ran (not estimated from the model's shape), and its kernels' busy time, from torch.profiler
over the same step. Measured on one warm-up step, so the counters never touch a timed one.

Achieved FLOP/s is the count over the timed steps' median; the kernels' share of that median says whether the
GPU waited on the host (a host-bound step: the framework's per-step cost shows in full) or the host hid behind it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode


class OneStep:
    """Counters around the code between two `run.step` calls: `start()` after one, `stop()` after the next."""

    def __init__(self, device: torch.device):
        self.device = device
        self._flops = FlopCounterMode(display=False)
        self._profiler: Any = None

    def start(self) -> None:
        self._flops.__enter__()
        if self.device.type == "cuda":
            profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA])
            try:
                profiler.__enter__()
                self._profiler = profiler
            except RuntimeError:  # no CUPTI in this build or image: the FLOPs still count, the busy share is None
                self._profiler = None

    def stop(self) -> dict[str, float | None]:
        """{"flops_per_step", "kernel_s_per_step"} of the step just ended (kernel time: None off CUDA)."""
        kernel_s = None
        if self._profiler is not None:
            torch.cuda.synchronize(self.device)
            self._profiler.__exit__(None, None, None)
            kernel_s = kernel_seconds(self._profiler.events())
        self._flops.__exit__(None, None, None)
        return {"flops_per_step": float(self._flops.get_total_flops()), "kernel_s_per_step": kernel_s}


def kernel_seconds(events: Any) -> float:
    """The device's busy time: the summed durations of the profile's device events (kernels and copies)."""
    device_types = {torch.autograd.DeviceType.CUDA}
    return sum(e.time_range.elapsed_us() for e in events if e.device_type in device_types) / 1e6


# Dense (no sparsity) tensor-core peaks from the vendors' data sheets, in FLOP/s, by GPU name and by the number
# format the matrix products run in. 32-true runs its matrix products in float32 unless TF32 is allowed for them.
PEAK_FLOPS: dict[str, dict[str, float]] = {
    "H100 80GB HBM3": {"fp32": 67e12, "tf32": 494.7e12, "bf16": 989.4e12, "fp16": 989.4e12},  # SXM5
    "H200": {"fp32": 67e12, "tf32": 494.7e12, "bf16": 989.4e12, "fp16": 989.4e12},
    "A100-SXM4-80GB": {"fp32": 19.5e12, "tf32": 156e12, "bf16": 312e12, "fp16": 312e12},
    "A100-SXM4-40GB": {"fp32": 19.5e12, "tf32": 156e12, "bf16": 312e12, "fp16": 312e12},
}
FORMATS = {"16-mixed": "fp16", "bf16-mixed": "bf16"}


def peak_flops(gpu: str | None, precision: str, tf32_matmul: bool) -> tuple[str, float] | None:
    """(number format, its peak FLOP/s) for a GPU named like torch names it ("NVIDIA H100 80GB HBM3"), or None."""
    fmt = FORMATS.get(precision, "tf32" if tf32_matmul else "fp32")
    name = (gpu or "").removeprefix("NVIDIA ").strip()
    known = next((peaks for key, peaks in PEAK_FLOPS.items() if name.startswith(key)), None)
    return (fmt, known[fmt]) if known else None
