"""The collectives report: per task, implementation and Lightning release, the collectives of one data-parallel
training step, from the process group's own record (loopbench.measure.collectives), and the same cells as a job
of two torchrun agents.

Per row: the calls per step of each collective (the same on every repeat, or the row says otherwise), the time
inside them per step over the repeats (mean, t interval), as a share of the profiled step, and parity against the
plain loop of the same release and launch. Pure functions of saved results, like the rest of the report.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pandas as pd

from loopbench.analysis import stats
from loopbench.analysis.grouping import release_of
from loopbench.analysis.parity import compare_cell
from loopbench.core.store import compact, save_results
from loopbench.core.trainers import PLAIN
from loopbench.core.types import RunResult
from loopbench.report import markdown, study


def _key(r: RunResult) -> tuple[str, str, str, int]:
    return r.config["task"], r.config["impl"], release_of(r), r.config.get("nodes", 1)


def _calls(runs: list[RunResult]) -> str:
    seen = {json.dumps(r.collectives.get("calls_per_step", {}), sort_keys=True) for r in runs}
    text = "; ".join(
        ", ".join(f"{name.split(':', 1)[1]} {n:g}" for name, n in json.loads(s).items()) or "none" for s in sorted(seen)
    )
    return text if len(seen) == 1 else f"differ between runs: {text}"


def _interval(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.3g}" if values else "–"
    d = stats.robust_difference(values)
    return f"{d.delta:.3g} [{d.low:.3g}, {d.high:.3g}]"


def _parity(ref: list[RunResult], mine: list[RunResult]) -> str:
    if not ref or not mine or ref[0] is mine[0]:
        return "–"
    return compare_cell(ref[0], mine[0]).verdict


def _as_one_node(two: list[RunResult], one: list[RunResult]) -> str:
    """Whether the two-node job's ranks trained what the local launcher's ranks trained (losses and weights)."""
    if not two or not one:
        return "–"
    same = [(a["weights_digest"], a["losses"]) for a in two[0].ranks] == [
        (b["weights_digest"], b["losses"]) for b in one[0].ranks
    ]
    return "bitwise" if same else "differs"


def table(results: list[RunResult]) -> pd.DataFrame:
    """One row per task, implementation, release and number of nodes."""
    groups: dict[tuple[str, str, str, int], list[RunResult]] = {}
    for r in sorted(results, key=lambda r: r.config.get("repeat", 0)):
        groups.setdefault(_key(r), []).append(r)
    rows = []
    for (task, impl, release, nodes), runs in sorted(groups.items()):
        ok = [r for r in runs if r.ok and r.collectives]
        plain = [r for r in groups.get((task, PLAIN, release, nodes), []) if r.ok]
        names = sorted({name for r in ok for name in r.collectives["time_s_per_step"]})
        each = {n.split(":", 1)[1]: [r.collectives["time_s_per_step"].get(n, 0.0) * 1e3 for r in ok] for n in names}
        share = [sum(r.collectives["time_s_per_step"].values()) / r.step_time_median_s * 100 for r in ok]
        rows.append(
            {
                "task": task,
                "implementation": impl,
                "pytorch-lightning": release if impl != PLAIN else f"({release})",
                "nodes x processes": f"{nodes} x {runs[0].config.get('processes', 1)}",
                "runs": f"{len(ok)}/{len(runs)} ok" if len(ok) < len(runs) else str(len(runs)),
                "collectives per step": _calls(ok) if ok else "–",
                "time in each, ms per step": "; ".join(f"{n} {_interval(v)}" for n, v in each.items()) or "–",
                "share of the step %": _interval(share),
                "profiled step ms": statistics.median(r.step_time_median_s * 1e3 for r in ok) if ok else None,
                "parity vs plain": _parity(plain, ok),
                "vs one node": _as_one_node(ok, groups.get((task, impl, release, 1), [])) if nodes > 1 else "–",
            }
        )
    return pd.DataFrame(rows)


def summary(results: list[RunResult]) -> dict[str, Any]:
    failed = [f"{r.run_config.label}: {r.status}: {r.message}" for r in results if not r.ok]
    return {"rows": json.loads(table(results).to_json(orient="records")), "failed": failed}


def write(results: list[RunResult], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "collectives.json").write_text(json.dumps(summary(results), indent=1) + "\n")
    save_results(compact(results), out / "results.json.gz")
    method = [
        "Every run records, over its timed window (after the warm-up), each collective that its process group ran "
        "(torch's profiler: `gloo:all_reduce`, `gloo:broadcast`, ...), whoever asked for it: DDP's reducer (the "
        "gradients, the buffers), the framework, or the loop. The rows give rank 0's record. A collective's time runs "
        "from its start to its completion on the backend's thread: a blocking one (a broadcast whose result the "
        "step reads) is time the step waits, the slowest process's arrival included; DDP's gradient all-reduce "
        "overlaps the backward. The profiler costs time of its own, so `profiled step` is longer than a timed run's "
        "step, and the share (all collectives together) is of that step. Time: mean over the repeats with a t "
        "interval (the median, with an order-statistic interval, from 6 repeats). The plain loop does "
        "not import Lightning: its rows, one per release's batch of processes, are the same code run beside each.",
        "",
        "`2 x 1` rows: the installed release's cells as a job of two torchrun agents on this machine (c10d "
        "rendezvous on 127.0.0.1, one process and one thread on each), started by `--launcher torchrun`'s code "
        "path; `vs one node`: each rank's losses and weights against the local launcher's run of the same cell.",
        "",
    ]
    failed = summary(results)["failed"]
    body = [markdown(table(results), ".4g"), "", "## What failed", "",
            *(f"- {line}" for line in failed or ["Nothing: every run ended."]), ""]  # fmt: skip
    installed_first = sorted(results, key=lambda r: r.config.get("lightning") is not None)  # the header's release
    text = study("Data parallel: the collectives of each step, per release, and two torchrun nodes", installed_first,
                 body, method)  # fmt: skip
    path = out / "REPORT.md"
    path.write_text(text)
    return path
