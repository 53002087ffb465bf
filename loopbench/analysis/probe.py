"""What a Trainer costs per optimizer step, from the overhead probe's runs: the per-round deltas and their
intervals, the ladder of Trainer features, the instruction counts, and whether the targets were met.

A pure function of the runs, so the command line and the report compute it the same way. The method
(rounds, the drift rule, the intervals) is in docs/method.md.
"""

from __future__ import annotations

import statistics
from typing import Any

import implementations
from loopbench.analysis import inplace, rounds, targets
from loopbench.analysis.stats import Difference, robust_difference
from loopbench.core.trainers import DEFAULTS, LADDER, LADDER_IMPLS, LEAN, PLAIN
from loopbench.core.types import RunResult

PROBE = "overhead_probe"
SHAPES = ("auto", "manual")
STEP_MEANS = {"auto": "one optimizer step", "manual": "one batch: two optimizer steps"}
HEADLINE_IMPLS = tuple(implementations.IMPLS)  # the default matrix's: plain, the lean and the default Trainer, Fabric
ENV_KEYS = ("cpu", "cpu_flags", "gpu", "torch", "pytorch_lightning", "commit")


def _shape(r: RunResult) -> str:
    return r.config["overrides"].get("shape", "auto")


def _times(r: RunResult) -> tuple[float, float, float]:
    """(median step, window mean per step, host median step) in us."""
    measured = r.task_config["steps"] - r.warmup_steps
    host = r.host_step_time_median_s or r.step_time_median_s
    return r.step_time_median_s * 1e6, r.window_s / measured * 1e6, host * 1e6


def _timed(results: list[RunResult], shape: str) -> list[RunResult]:
    return [r for r in results if r.config["task"] == PROBE and _shape(r) == shape
            and r.config.get("clock", "time") == "time"]  # fmt: skip


def round_deltas(results: list[RunResult], shape: str) -> tuple[dict, dict, list[str]]:
    """({impl: {round: (delta median, delta mean, delta host)}}, {impl: [times per segment]}, [left out])."""
    runs = _timed(results, shape)
    found, left_out = rounds.pairs(runs, shape, one_thread=True)
    deltas = {
        impl: {p.round: tuple(_times(p.mine)[m] - rounds.of_plain(p, lambda r, m=m: _times(r)[m]) for m in range(3))
               for p in ps}
        for impl, ps in found.items()
    }  # fmt: skip
    times: dict[str, list[tuple]] = {}
    for r in runs:
        if r.ok and not rounds.disturbed(r, one_thread=True):
            times.setdefault(r.config["impl"], []).append(_times(r))
    return deltas, times, left_out


def _difference(values: list[float]) -> Difference | None:
    return robust_difference(values) if len(values) >= 2 else None


def _entry(d: Difference | None, amortized: Difference | None) -> dict[str, Any]:
    if d is None:
        return {"delta_us": None, "pairs": 0}
    out = {"delta_us": d.delta, "delta_low_us": d.low, "delta_high_us": d.high, "pairs": d.pairs}
    if amortized is not None:
        out |= {
            "mean_delta_us": amortized.delta,
            "mean_delta_low_us": amortized.low,
            "mean_delta_high_us": amortized.high,
        }
    return out


def summarize(results: list[RunResult], shape: str) -> dict[str, Any]:
    """{impl: {"us_per_step", "mean_us_per_step", "host_us_per_step", "runs", and for Lightning variants the
    delta to the plain loop with its interval}}. On CUDA the step times are the device's and the host's time
    is its own; on a CPU the two are the same clock."""
    deltas, times, _ = round_deltas(results, shape)
    if PLAIN not in times:
        return {}
    found, _ = rounds.pairs(_timed(results, shape), shape, one_thread=True)
    out: dict[str, Any] = {}
    for impl in [i for i in LADDER_IMPLS if i in times] + [i for i in times if i not in LADDER_IMPLS]:
        values = times[impl]
        out[impl] = {
            "us_per_step": statistics.median(v[0] for v in values),
            "mean_us_per_step": statistics.median(v[1] for v in values),
            "host_us_per_step": statistics.median(v[2] for v in values),
            "runs": len(values),
        }
        if impl != PLAIN:
            mine = deltas.get(impl, {})
            out[impl] |= _entry(_difference([d[0] for d in mine.values()]), _difference([d[1] for d in mine.values()]))
            host = _difference([d[2] for d in mine.values()])
            out[impl]["host_delta_us"] = host.delta if host else None
            out[impl] |= _in_place(inplace.trainer_time(found.get(impl, [])))
    return out


def _in_place(t: dict[str, Any] | None) -> dict[str, Any]:
    """The in-place split beside the paired delta, in us: the Trainer's own time outside the model's work, and
    how much slower the model's own work ran beside the Trainer (the two add up to the delta)."""
    if t is None:
        return {}
    us = {k.removesuffix("_s") + "_us": v * 1e6 if v is not None else None for k, v in t.items() if k.endswith("_s")}
    return {f"in_place_{k}": v for k, v in us.items()}


def predicted_ratio(step_s: float, host_step_s: float | None, delta_us: float) -> float:
    """The Lightning / plain step-time ratio the probe predicts for a task whose plain step takes `step_s`.

    The Trainer adds `delta_us` of host work per step. A step lasts as long as the slower of the device's
    work and the host's (`host_step_s`, the plain loop's host time per step): on a CPU the two are one
    clock, so the whole delta shows; on CUDA the host runs ahead of the GPU while it needs less time per
    step than the device, and the delta is hidden behind GPU work until it no longer fits (ratio 1.0).
    """
    host = (host_step_s or step_s) + delta_us * 1e-6
    return max(step_s, host) / step_s


def ladder(results: list[RunResult], shape: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Each rung's cost over its base (per round: the difference of their deltas to the plain loop), and the
    rungs' sum beside the default Trainer's cost."""
    deltas, _, _ = round_deltas(results, shape)
    deltas[PLAIN] = {k: (0.0, 0.0, 0.0) for v in deltas.values() for k in v}

    def rung(impl: str, base: str, m: int) -> list[float]:
        common = sorted(deltas.get(impl, {}).keys() & deltas.get(base, {}).keys())
        return [deltas[impl][k][m] - deltas[base][k][m] for k in common]

    rows = [
        {"shape": shape, "feature": r.feature, "impl": r.impl, "base": r.base}
        | _entry(_difference(rung(r.impl, r.base, 0)), _difference(rung(r.impl, r.base, 1)))
        for r in LADDER
        if r.impl in deltas and r.base in deltas
    ]
    needed = {DEFAULTS} | {i for r in LADDER for i in (r.impl, r.base)}
    repeats = sorted(set.intersection(*(set(deltas.get(i, {})) for i in needed)))
    if len(rows) < len(LADDER) or len(repeats) < 2:
        return rows, None
    sums = [sum(deltas[r.impl][k][0] - deltas[r.base][k][0] for r in LADDER) for k in repeats]
    totals = [deltas[DEFAULTS][k][0] for k in repeats]
    s, total, remainder = (
        robust_difference(v) for v in (sums, totals, [t - u for t, u in zip(totals, sums, strict=True)])
    )
    return rows, {
        "shape": shape,
        "sum_us": s.delta,
        "sum_low_us": s.low,
        "sum_high_us": s.high,
        "defaults_delta_us": total.delta,
        "remainder_us": remainder.delta,
        "remainder_low_us": remainder.low,
        "remainder_high_us": remainder.high,
        "pairs": len(repeats),
    }


def instruction_counts(results: list[RunResult], shape: str, times: dict[str, Any]) -> dict[str, Any]:
    """{impl: {"per_step", "delta" (over the plain loop's), "per_us" (per microsecond of its measured time)}}."""
    found: dict[str, list[float]] = {}
    for r in results:
        if r.ok and r.config["task"] == PROBE and _shape(r) == shape and r.instructions_per_step:
            found.setdefault(r.config["impl"], []).append(r.instructions_per_step)
    counted = {impl: statistics.fmean(n) for impl, n in found.items()}  # one count, or the mean of a few
    out = {}
    for impl, n in counted.items():
        out[impl] = {"per_step": n, "delta": n - counted[PLAIN] if PLAIN in counted else None, "counts": found[impl]}
        if impl in times:
            out[impl]["per_us"] = n / times[impl]["us_per_step"]
    return out


def half_width(v: dict[str, Any]) -> float | None:
    """Half the interval's width as a fraction of the delta (None without an interval)."""
    if v.get("delta_us") in (None, 0):
        return None
    return (v["delta_high_us"] - v["delta_low_us"]) / 2 / abs(v["delta_us"])


def precise(a: dict[str, Any], target: float) -> bool:
    """Is every headline delta (the lean and the default Trainer, each shape, each release) within `target`?"""
    if "releases" in a:
        return all(precise(one, target) for one in a["releases"].values())
    widths = [half_width(v[i]) for v in a["shapes"].values() for i in (LEAN, DEFAULTS) if i in v]
    return bool(widths) and all(w is not None and w <= target for w in widths)


def answer(results: list[RunResult], device: str) -> dict[str, Any]:
    """The JSON-ready answer from the probe's runs: per shape the variants, the ladder and instruction counts."""
    timed = [r for r in results if r.config.get("clock", "time") == "time"]
    ok = [r for r in timed if r.ok]
    shapes = [s for s in SHAPES if any(_shape(r) == s for r in ok)]
    left_out = [line for s in shapes for line in round_deltas(results, s)[2]]
    out: dict[str, Any] = {
        "device": device,
        "threads": 1,
        "method": "rounds" if any(r.config.get("slot", 0) for r in ok) else "fresh processes",
        "rounds": len({r.config["repeat"] for r in ok}),
        "statistic": "median of per-round deltas, 95% order-statistic interval (6 rounds or more; else mean, t)",
        "step_means": {s: STEP_MEANS[s] for s in shapes},
        "steps": ok[0].task_config.get("steps") if ok else None,
        "warmup_steps": ok[0].warmup_steps if ok else None,
        "shapes": {s: summarize(results, s) for s in shapes},
        "ladder": [],
        "ladder_totals": {},
        "failed": [
            f"{r.run_config.label} ({r.config['impl']}): {r.status}: {r.message}"
            for r in results
            if not r.ok and r.status != "unsupported"
        ],
        "env": {k: ok[0].env.get(k) for k in ENV_KEYS} if ok else {},
        "cpu_steal_max": max((r.cpu_steal_fraction or 0.0 for r in ok), default=None),
        "disturbed": [
            f"{_shape(r)} round {r.config['repeat']} {r.config['impl']}: {r.cpu_share:.0%} of a CPU"
            for r in ok
            if rounds.disturbed(r, one_thread=True)
        ],
        "left_out": left_out,
        "instructions": {
            "shapes": {s: c for s in shapes if (c := instruction_counts(results, s, summarize(results, s)))},
            "unavailable": next(
                (r.message for r in results if r.config.get("clock") == "instructions" and r.status == "unsupported"),
                None,
            ),
        },
    }
    for impls in out["shapes"].values():
        for v in impls.values():
            if "delta_us" in v:
                v["half_width"] = half_width(v)
    for s in shapes:
        rows, total = ladder(results, s)
        out["ladder"] += rows
        if total:
            out["ladder_totals"][s] = total
    out["targets"] = targets.verdict(out)
    return out


# what, with the code, decides a count (the progress bar: the default Trainer's, rich's or tqdm's, runs every step)
COUNTED_WITH = ("python", "torch", "pytorch_lightning", "lightning_commit", "progress_bar")
MACHINE = ("cpu", "cpu_count", "cpu_flags", "gpu", "platform")


def counts_answer(results: list[RunResult]) -> dict[str, Any]:
    """The counted probe's answer: each variant's instructions per step and its extra over the plain loop's, per
    shape, with the versions that decide a count and the machine (which does not) beside them."""
    ok = [r for r in results if r.ok and r.instructions_per_step]
    shapes = [s for s in SHAPES if any(_shape(r) == s for r in ok)]
    env = ok[0].env if ok else {}
    return {
        "kind": "instruction counts",
        "probe": PROBE,
        "steps_counted": (ok[0].task_config["steps"] - ok[0].warmup_steps) if ok else None,
        "step_means": {s: STEP_MEANS[s] for s in shapes},
        "counted_with": {k: env.get(k) for k in COUNTED_WITH},
        "machine": {k: env.get(k) for k in MACHINE},
        "instructions": {"shapes": {s: instruction_counts(results, s, {}) for s in shapes}},
        "failed": [f"{r.run_config.label} ({r.config['impl']}): {r.status}: {r.message}" for r in results if not r.ok],
    }


def by_release(results: list[RunResult], device: str) -> dict[str, Any]:
    """The answer; where the runs hold several Lightning releases, {"releases": {version as imported: answer}}."""
    groups: dict[str | None, list[RunResult]] = {}
    for r in results:
        groups.setdefault(r.config.get("lightning"), []).append(r)
    if len(groups) == 1:
        return answer(results, device)
    out = {}
    for runs in groups.values():
        a = answer(runs, device)
        out[a["env"].get("pytorch_lightning") or "?"] = a
    return {"device": device, "releases": out}
