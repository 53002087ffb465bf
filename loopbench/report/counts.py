"""The task cells in instructions: what each Lightning variant adds per step, counted, beside what the probe predicts.

A task cell's counts run its implementations one after another in one process under valgrind, one torch
thread, a few steps after warm-up (the task's COUNT): the same kernels on the same data in every
implementation (parity is bitwise), so the difference is the framework's own work per step, on any
machine with these versions. The probe's counted delta (same shape: one optimizer or two) predicts it;
where the two differ by more than TOLERANCE of the plain step, the task pays something the probe does not
have, and the table says so. The counted ratio is a ratio of work, not of time: a Trainer's instructions
(Python, mostly) run at another rate than a convolution's, and caches and the allocator are not counted.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

import implementations
from loopbench.analysis.grouping import placement
from loopbench.core.trainers import COMPARED, PLAIN
from loopbench.core.types import RunResult

TOLERANCE = 0.005  # counted and predicted ratios within half a percent of the plain step: the probe explains it


def counted(results: list[RunResult]) -> dict[tuple[str, str, str], dict[str, float]]:
    """{(task, where, precision): {impl: instructions per step}} of the tasks' counts (the mean of repeats)."""
    found: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    for r in results:
        c = r.config
        counted = c.get("clock") == "instructions" and r.ok and r.instructions_per_step
        if counted and c["task"] not in implementations.PROBES:
            key = (c["task"], placement(c["device"], c.get("processes", 1), c.get("lightning")), c["precision"])
            found.setdefault(key, {}).setdefault(c["impl"], []).append(r.instructions_per_step)
    return {k: {i: sum(n) / len(n) for i, n in v.items()} for k, v in found.items()}


def probe_delta(probes: dict[str, Any] | None, device: str, task: str, impl: str) -> float | None:
    """The probe's counted delta (instructions per step over the plain loop's) in the task's shape."""
    a = (probes or {}).get(device.split(",")[0])
    shape = implementations.spec(task).HARNESS.probe_shape
    c = (a or {}).get("instructions", {}).get("shapes", {}).get(shape, {}).get(impl, {})
    return c.get("delta")


def table(results: list[RunResult], probes: dict[str, Any] | None) -> pd.DataFrame:
    """Per task cell and Lightning variant: the counts, the counted ratio, the probe's prediction, the verdict."""
    rows = []
    for (task, device, precision), impls in counted(results).items():
        plain = impls.get(PLAIN)
        for impl in COMPARED:
            if plain is None or impl not in impls:
                continue
            delta, predicted = impls[impl] - plain, probe_delta(probes, device, task, impl)
            row = {
                "task": task,
                "device": device,
                "precision": precision,
                "impl": impl,
                "plain M/step": plain / 1e6,
                "delta M/step": delta / 1e6,
                "counted ratio": impls[impl] / plain,
                "probe's delta M/step": None if predicted is None else predicted / 1e6,
                "probe predicts": None if predicted is None else (plain + predicted) / plain,
            }
            row["verdict"] = verdict(row)
            rows.append(row)
    return pd.DataFrame(rows)


def verdict(row: dict[str, Any]) -> str:
    if row["probe predicts"] is None:
        return "–"
    gap = row["counted ratio"] - row["probe predicts"]
    if abs(gap) <= TOLERANCE:
        return "agrees"
    return "counted above" if gap > 0 else "counted below"


def headline_cells(counts: pd.DataFrame, task: str, device: str, precision: str, compared: list[str]) -> dict[str, str]:
    """The headline table's `counted` columns for one cell: a ratio per compared implementation (`L / Ld / F`),
    `–` where not counted."""
    if counts.empty:
        return {}
    mine = counts[(counts.task == task) & (counts.device == device) & (counts.precision == precision)]
    if mine.empty:
        return {}
    ratios = {row.impl: f"{row['counted ratio']:.3f}x" for _, row in mine.iterrows()}
    verdicts = {row.impl: row["verdict"] for _, row in mine.iterrows()}
    short = " / ".join(COMPARED[i][1] for i in compared)
    return {
        f"instructions, 1 thread ({short})": " / ".join(ratios.get(i, "–") for i in compared),
        f"counted vs probe ({short})": " / ".join(verdicts.get(i, "–") for i in compared),
    }


INTRO = (
    "Each task cell counted under valgrind's callgrind, one torch thread, a few steps after warm-up, every "
    "implementation on the same data (the trained bits are the same): `delta` is what the Lightning variant "
    "adds per step, in instructions, on any machine with these versions; `probe predicts` is (plain + the "
    "probe's counted delta) / plain in the task's shape. `agrees`: within "
    f"{TOLERANCE:.1%} of the plain step. A ratio of instructions is not one of time: the Trainer's Python runs "
    "at another rate than the kernels, and caches and allocation are not counted."
)
