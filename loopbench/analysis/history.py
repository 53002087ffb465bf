"""Lightning across its releases, from the runs: each release's answer, the changes between neighbours (round by
round, the difference of their deltas, with its distribution-free 95% interval; in instructions, beside what
a count moves by itself), and the parity rows. The method is in docs/releases.md.
"""

from __future__ import annotations

import itertools
import statistics
from typing import Any

from loopbench.analysis.grouping import release_order
from loopbench.analysis.parity import compare_cell
from loopbench.analysis.probe import PROBE, SHAPES, round_deltas
from loopbench.analysis.probe import answer as probe_answer
from loopbench.analysis.stats import robust_difference
from loopbench.core.trainers import DEFAULTS, LEAN, PLAIN
from loopbench.core.types import RunResult

HEADLINE = (LEAN, DEFAULTS)
COUNT_FLOOR = 0.005  # a count change smaller than 0.5% of the count is never called a change
PARITY_PRESET = "smoke"  # the parity runs' preset; the probe's rounds run "quick"


def _imported(r: RunResult) -> str:
    return r.env.get("pytorch_lightning") or "?"


def by_version(results: list[RunResult]) -> dict[str, list[RunResult]]:
    """The probe's runs by the release each really imported, oldest first."""
    groups: dict[str, list[RunResult]] = {}
    for r in results:
        if r.config["task"] == PROBE and r.ok and not _parity_run(r):
            groups.setdefault(_imported(r), []).append(r)
    return dict(sorted(groups.items(), key=lambda kv: release_order(kv[0])))


def _parity_run(r: RunResult) -> bool:
    return r.config["preset"] == PARITY_PRESET


def _counts(runs: list[RunResult], shape: str) -> dict[str, list[float]]:
    """{impl: its instruction counts per step} of one release's runs."""
    out: dict[str, list[float]] = {}
    for r in runs:
        if r.instructions_per_step and r.config["overrides"].get("shape", "auto") == shape:
            out.setdefault(r.config["impl"], []).append(r.instructions_per_step)
    return out


def count_noise(groups: dict[str, list[RunResult]], shape: str) -> float | None:
    """How far a count moves by itself: the largest difference between two counts of the same variant on the
    same release (each variant is counted twice), else the plain loop's spread over the releases' processes
    (the same code in each)."""
    counted = [_counts(runs, shape) for runs in groups.values()]
    repeats = [max(n) - min(n) for c in counted for n in c.values() if len(n) >= 2]
    if repeats:
        return max(repeats)
    plain = [statistics.fmean(c[PLAIN]) for c in counted if PLAIN in c]
    return max(plain) - min(plain) if len(plain) >= 2 else None


def changes(results: list[RunResult]) -> list[dict[str, Any]]:
    """For each adjacent pair of releases, shape and headline Trainer: the change of its per-step cost in time
    (paired by round, with its interval; `time_changed` when the interval excludes 0) and in instructions
    (`count_changed` when it moves by more than a count moves by itself, see count_noise, and COUNT_FLOOR)."""
    groups = by_version(results)
    out = []
    names = list(groups)
    for shape in SHAPES:
        noise = count_noise(groups, shape)
        deltas = {v: round_deltas(runs, shape)[0] for v, runs in groups.items()}
        counts = {v: {i: statistics.fmean(n) for i, n in _counts(runs, shape).items()} for v, runs in groups.items()}
        for old, new in itertools.pairwise(names):
            for impl in HEADLINE:
                a, b = deltas[old].get(impl, {}), deltas[new].get(impl, {})
                common = sorted(a.keys() & b.keys())
                if not common and impl not in counts[old]:
                    continue
                row: dict[str, Any] = {"shape": shape, "impl": impl, "old": old, "new": new, "pairs": len(common)}
                if len(common) >= 2:
                    d = robust_difference([b[k][0] - a[k][0] for k in common])
                    row |= {
                        "time_us": d.delta,
                        "time_low_us": d.low,
                        "time_high_us": d.high,
                        "time_changed": d.low > 0 or d.high < 0,
                    }
                ca, cb = counts[old], counts[new]
                if impl in ca and impl in cb and PLAIN in ca and PLAIN in cb:
                    before, after = ca[impl] - ca[PLAIN], cb[impl] - cb[PLAIN]  # the Trainer's own instructions
                    limit = max(noise or 0.0, COUNT_FLOOR * ca[impl])
                    row |= {
                        "count_old": before,
                        "count_new": after,
                        "count_change": after - before,
                        "count_percent": (after - before) / before * 100 if before else None,
                        "count_noise": noise,
                        "count_changed": abs(after - before) > limit,
                    }
                out.append(row)
    return out


def across_releases(results: list[RunResult], device: str) -> dict[str, Any]:
    """The JSON-ready history: the probe's answer per release (as imported), the changes, the parity checks."""
    groups = by_version(results)
    per_release = {v: probe_answer(runs, device) for v, runs in groups.items()}
    return {
        "device": device,
        "releases": per_release,
        "changes": changes(results),
        "count_noise": {s: count_noise(groups, s) for s in SHAPES},
        "parity": parity_rows(results),
        "failed": [
            f"{_imported(r) if r.env else r.config.get('lightning') or 'installed'} {r.run_config.label} "
            f"({r.config['impl']}): {r.status}: {r.message}"
            for r in results
            if not r.ok and r.status != "unsupported"
        ],
        "unsupported": sorted(
            {
                f"{r.config.get('lightning') or 'installed'} {r.config['impl']}: {r.message}"
                for r in results
                if r.status == "unsupported"
            }
        ),
    }


def parity_rows(results: list[RunResult]) -> list[dict[str, Any]]:
    """One row per release and cell: bitwise or not (the lean Trainer's run against the plain loop's)."""

    def key(r: RunResult) -> tuple:
        c = r.config
        return c["task"], c["precision"], c["overrides"].get("shape")

    runs = [r for r in results if _parity_run(r)]
    plain = {key(r): r for r in runs if r.config["impl"] == PLAIN}
    rows = []
    for r in runs:
        if r.config["impl"] == PLAIN:
            continue
        ref = plain.get(key(r))
        task, precision, shape = key(r)
        row = {
            "release": _imported(r) if r.ok else r.config.get("lightning"),
            "task": task,
            "shape": shape,
            "precision": precision,
        }
        if r.status == "unsupported":
            row["verdict"] = f"unsupported: {r.message}"
        elif not r.ok or ref is None or not ref.ok:
            bad = r if not r.ok else ref
            row["verdict"] = f"failed: {bad.status}: {bad.message}" if bad else "failed: no plain run"
        else:
            report = compare_cell(ref, r)
            row |= {"verdict": report.verdict, "holds": report.holds, "line": report.line()}
        rows.append(row)
    return rows
