"""What a Trainer costs per optimizer step, measured where it is large, and so that drift cannot fake it.

The overhead probe (`implementations/overhead_probe`) does almost no compute, so a step's time is
mostly the framework's. On a shared VM the machine's speed drifts by 15-25% within seconds, and fresh
processes of one variant sit on levels up to 25% apart: whole runs compared one after another measure
the drift as much as the Trainer. So the probe is measured in **rounds**: one process (forked from a
server that has the imports done) runs short segments of the plain loop around every variant,
P V1 P V2 ... P (the variants reversed every other round), each segment 40 warm-up and 512 timed
steps, a fraction of a second. A variant's delta in a round is its median step minus the mean of the
plain segments just before and after it, which ran within a second of it in the same process. A
round in which one of those segments' halves differ by more than 50% was hit by drift: that
variant's pair is left out there, and named. Over rounds, the delta is the median of the per-round
deltas with a distribution-free 95% interval (order statistics), and rounds are added until the
headline deltas' half-widths are within a target fraction, or a time budget ends: the answer says
which. Every round is a fresh process, so per-process levels are sampled too.

Instruction counts (loopbench.instructions, under valgrind) are the second measure: one count per
variant, the same on any machine; the answer gives each variant's instructions per step and per
microsecond of its measured time, so one can be read as the other.

The answer is a pure function of the runs, so the CLI and the report compute it the same way. Runs
saved before rounds existed (one fresh process per run, paired by repeat) still give their answer.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from typing import Any

from loopbench import rounds, targets
from loopbench.stats import Difference, robust_difference
from loopbench.trainers import DEFAULTS, LADDER, LADDER_IMPLS, LEAN, PLAIN
from loopbench.types import RunConfig, RunResult

PROBE = "overhead_probe"
SHAPES = ("auto", "manual")
STEP_MEANS = {"auto": "one optimizer step", "manual": "one batch: two optimizer steps"}
HEADLINE_IMPLS = (PLAIN, LEAN, DEFAULTS)
# What is measured of the probe: the whole ladder in the automatic shape, the headline variants in the other.
PROBE_IMPLS = {"auto": LADDER_IMPLS, "manual": HEADLINE_IMPLS}
SEGMENT_WARMUP, SEGMENT_STEPS = 40, 552  # 512 timed steps: 8 epochs of TRAIN_SIZE / 8 = 64 batches; ~0.15-1 s
TRAIN_SIZE = 512  # every segment crosses epoch ends, so what a Trainer does there (checkpoints) is in its mean
COUNT_WARMUP, COUNT_STEPS = 20, 84  # instruction counts: 64 counted steps, one epoch
MIN_ROUNDS, SUITE_ROUNDS = 12, 8  # the overhead command's rounds at least; the suite's probe (its rounds run while
# the probe's count runs beside them, ~70 s here: 8 rounds cost the bench no time)
SUITE_STEPS = 296  # the suite's probe segments: 256 timed steps, 4 epochs (the bench's 15 minutes)
TARGET = 0.05  # the overhead command adds rounds until each headline half-width is within 5% of its delta
ENV_KEYS = ("cpu", "cpu_flags", "gpu", "torch", "pytorch_lightning", "commit")


def plan(
    device: str,
    shape: str,
    count: int,
    steps: int | None = None,
    impls: tuple[str, ...] = LADDER_IMPLS,
    first: int = 0,
) -> list[RunConfig]:
    """Rounds `first` .. `first + count - 1`: P V1 P V2 ... P, the variants reversed every other round."""
    steps = steps or SEGMENT_STEPS
    warmup = min(SEGMENT_WARMUP, steps // 4)
    return [
        _probe_cell(device, shape, impl, steps, warmup, repeat=repeat, slot=slot)
        for repeat in range(first, first + count)
        for slot, impl in enumerate(rounds.sequence(impls, repeat), 1)
    ]


def count_plan(
    device: str, shape: str, impls: tuple[str, ...] = LADDER_IMPLS, counts: int = 1, again: tuple[str, ...] = ()
) -> list[RunConfig]:
    """One instruction count per variant (a count moves by well under 1%: one is the answer), then `counts - 1`
    more of the variants in `again` (all where empty): two counts of the same code show how far a count moves."""
    return [
        _probe_cell(device, shape, impl, COUNT_STEPS, COUNT_WARMUP, clock="instructions", repeat=k)
        for k in range(counts)
        for impl in (impls if k == 0 or not again else [i for i in impls if i in again])
    ]


def _probe_cell(device: str, shape: str, impl: str, steps: int, warmup: int, **where: Any) -> RunConfig:
    return RunConfig(PROBE, impl, device, "32-true", "quick", 0, steps, warmup, overrides=_overrides(shape), **where)


def _overrides(shape: str) -> dict[str, Any]:
    return {"shape": shape, "train_size": TRAIN_SIZE}


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


def _round_deltas(results: list[RunResult], shape: str) -> tuple[dict, dict, list[str]]:
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
    deltas, times, _ = _round_deltas(results, shape)
    if PLAIN not in times:
        return {}
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
    return out


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
    deltas, _, _ = _round_deltas(results, shape)
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
    left_out = [line for s in shapes for line in _round_deltas(results, s)[2]]
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
    out["targets"] = targets.check(out)
    return out


def measure(
    device: str,
    shapes: tuple[str, ...],
    min_rounds: int,
    budget_s: float,
    target: float,
    steps: int | None,
    count: bool,
    on_round: Callable[[int, dict[str, Any]], None] | None = None,
    impls: dict[str, tuple[str, ...]] = PROBE_IMPLS,
    versions: tuple[str | None, ...] = (None,),
    keep: Callable[[list[RunResult]], None] | None = None,
    counts: int = 2,
    count_impls: dict[str, tuple[str, ...]] | None = None,
) -> tuple[dict[str, Any], list[RunResult]]:
    """Rounds of every shape (and Lightning release: A B C / C B A over releases too) until `min_rounds` are
    done and the headline deltas are within `target`, or `budget_s` seconds have passed since the first; and
    (with `count`) `counts` instruction counts of each headline variant (one of every other variant). Returns
    the answer, with how it stopped, and the runs; `keep` gets each batch of runs as it ends (to save them).
    A count does not depend on load, so the counts run beside the rounds (which use one thread), one process
    per release, on the cores the rounds leave free; the answer waits for the last of them."""
    import os

    from loopbench.instructions import beside
    from loopbench.instructions import count as count_instructions
    from loopbench.launch.forked import run_forked_batch

    def counted(version: str | None) -> list[RunResult]:
        cells = [c for s in shapes for c in count_plan(device, s, (count_impls or impls)[s], counts, HEADLINE_IMPLS)]
        return count_instructions([dataclasses.replace(c, lightning=version) for c in cells], 1800)

    results: list[RunResult] = []
    with beside((os.cpu_count() or 1) - 1) as side:
        pending = [side.submit(counted, v) for v in versions] if count else []
        started, k = time.monotonic(), 0
        while True:
            for shape in shapes:
                for version in versions if k % 2 == 0 else versions[::-1]:
                    plan_k = plan(device, shape, 1, steps, impls[shape], k)
                    results += (got := run_forked_batch([dataclasses.replace(c, lightning=version) for c in plan_k]))
                    if keep:
                        keep(got)
            k += 1
            a = by_release(results, device)
            if on_round:
                on_round(k, a)
            if k >= min_rounds and (precise(a, target) or time.monotonic() - started >= budget_s):
                break
        stopped = "target met" if precise(a, target) else "time budget spent"
        elapsed = time.monotonic() - started
        for f in pending:
            results += (got := f.result())
            if keep:
                keep(got)
    a = by_release(results, device)
    a |= {"stopped": stopped, "target": target, "budget_s": budget_s, "timed_s": round(elapsed, 1)}
    return a, results


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
