"""What a CUDA run adds to the report: its achieved FLOP rate, its share of the GPU's peak (MFU), the kernels'
share of the step, and the cells whose GPU waited on the host."""

from __future__ import annotations

import pandas as pd

from loopbench.core.types import RunResult

HOST_BOUND_BUSY = 0.8  # a GPU whose kernels fill less of the step than this waited on the host for the rest


def device_work(r: RunResult) -> dict[str, float]:
    """A CUDA run's achieved TFLOP/s (counted FLOPs over the median step), its share of the GPU's peak in the
    precision's number format (MFU), and the kernels' share of the step (GPU busy); nothing for a CPU run."""
    w, step = r.device_work, r.step_time_median_s
    if not w or not step:
        return {}
    achieved = w["flops_per_step"] / step
    out = {"TFLOP/s": achieved / 1e12}
    if w.get("peak_flops"):
        out[f"MFU % (of {w['peak_format']} peak)"] = 100 * achieved / w["peak_flops"]
    if w.get("kernel_s_per_step") is not None:
        out["GPU busy %"] = 100 * min(w["kernel_s_per_step"] / step, 1.0)
    return out


def gpu_notes(table: pd.DataFrame) -> list[str]:
    """What the CUDA columns mean, and the cells whose GPU waited on the host (busy below HOST_BOUND_BUSY): there
    the framework's host-side cost per step shows in full; elsewhere it hides behind queued GPU work."""
    if "TFLOP/s" not in table:
        return []
    out = [
        "On CUDA: `TFLOP/s` is one warm-up step's floating-point operations, counted by torch's FlopCounterMode, "
        "over the median step; `MFU` is that against the GPU's dense data-sheet peak in the number format named; "
        f"`GPU busy` is the same step's kernel time (torch.profiler) over the median step: below "
        f"{HOST_BOUND_BUSY:.0%} the GPU waited on the host.",
        "",
    ]
    if "GPU busy %" in table:
        slow = table[table["GPU busy %"] < 100 * HOST_BOUND_BUSY]
        rows = slow[["task", "device", "precision", "impl", "GPU busy %"]].itertuples(index=False)
        out += [f"- host-bound (GPU busy {b:.0f}% of the step): `{t}` {d} {p} {i}" for t, d, p, i, b in rows]
        out += [""] if len(slow) else []
    return out
