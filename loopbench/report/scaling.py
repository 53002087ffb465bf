"""The report's data-parallel section: throughput at each process count, and what Lightning costs at each."""

from __future__ import annotations

import pandas as pd

from loopbench.analysis.grouping import placement

INTRO = (
    'Each task in N processes (`--processes`): plain `DistributedDataParallel` against `Trainer(strategy="ddp")`, '
    "global batch N x batch size, the slowest process's step time. `samples/s` is global throughput (medians over "
    "repeats); `efficiency xN` is samples/s at N over N times samples/s in one process; `vs plain` is the "
    "implementation's step-time ratio to the plain loop at that N, as in the overhead table. On a CPU the N "
    "processes share the machine's cores (OMP_NUM_THREADS = cores / N each, as torchrun and Lightning set it) "
    "while one process uses them all: efficiency there says what data parallel costs on the same cores, not "
    "what more devices would give."
)


def scaling(table: pd.DataFrame, ov: pd.DataFrame) -> pd.DataFrame:
    """From the report's summary and overhead tables: one row per task, device, precision and implementation
    that ran at one process and at more."""
    if table.empty or "processes" not in table or table["processes"].nunique() < 2:
        return pd.DataFrame()
    base = table["device"].str.replace(r" x\d+", "", regex=True)  # "cpu x2, pl 2.5.6" -> "cpu, pl 2.5.6"
    ratios = {(r["task"], r["device"], r["precision"], r["impl"]): r["label"] for _, r in ov.iterrows()}
    rows = []
    for (task, device, precision, impl), g in table.assign(base=base).groupby(
        ["task", "base", "precision", "impl"], sort=False
    ):
        by_n = {int(r["processes"]): r for _, r in g.iterrows()}
        if 1 not in by_n or len(by_n) < 2:
            continue
        one = by_n[1]["samples/s"]
        row = {"task": task, "device": device, "precision": precision, "impl": impl, "samples/s x1": one}
        for n, r in sorted(by_n.items()):
            if n > 1:
                row[f"samples/s x{n}"] = r["samples/s"]
                row[f"efficiency x{n}"] = r["samples/s"] / (n * one) if one and pd.notna(r["samples/s"]) else None
        for n in sorted(by_n):
            if impl != "pytorch":
                where, _, release = device.partition(", pl ")
                row[f"vs plain x{n}"] = ratios.get((task, placement(where, n, release or None), precision, impl), "–")
        rows.append(row)
    return pd.DataFrame(rows)
