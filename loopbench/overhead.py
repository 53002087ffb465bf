"""What a Trainer costs per optimizer step, measured where it is large and noise is small.

The overhead probe (`implementations/overhead_probe`) does almost no compute, so a step's time is
mostly the framework's. Each variant runs in many short fresh processes in A B C / C B A order; each
Lightning run is paired with the run of its base (the plain loop, or the ladder rung below it) of the
same repeat, and the per-step difference gets a 95% t interval over the pairs. Two costs per step:
the median step (what every step pays) and the window's mean (which also spreads what happens
between steps, such as checkpoint writes at epoch ends, over the steps).

The answer is a pure function of the runs, so the CLI and the report compute it the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loopbench.stats import Difference, paired_difference
from loopbench.trainers import DEFAULTS, LADDER, LADDER_IMPLS, LEAN, PLAIN
from loopbench.types import RunConfig, RunResult

PROBE = "overhead_probe"
SHAPES = ("auto", "manual")
STEP_MEANS = {"auto": "one optimizer step", "manual": "one batch: two optimizer steps"}
HEADLINE_IMPLS = (PLAIN, LEAN, DEFAULTS)
PROBE_RUNS, PROBE_STEPS = 4, 1_500  # a suite's probe: runs per variant and steps per run (about 1.5 minutes)
# What a suite measures of the probe: the whole ladder in the automatic shape, the headline variants in the other.
PROBE_IMPLS = {"auto": LADDER_IMPLS, "manual": HEADLINE_IMPLS}
ENV_KEYS = ("cpu", "cpu_flags", "gpu", "torch", "pytorch_lightning", "commit")


def plan(
    device: str, shape: str, runs: int, steps: int | None, impls: tuple[str, ...] = LADDER_IMPLS
) -> list[RunConfig]:
    """`runs` fresh runs of each implementation, alternating A B C / C B A."""
    cells = []
    for repeat in range(runs):
        order = impls if repeat % 2 == 0 else tuple(reversed(impls))
        cells += [
            RunConfig(PROBE, impl, device, "32-true", "quick", 0, steps, overrides={"shape": shape}, repeat=repeat)
            for impl in order
        ]
    return cells


MIN_CPU_SHARE = 0.8  # a one-thread probe run that got less of a CPU than this was disturbed: its repeat is left out


def disturbed(r: RunResult) -> bool:
    """Was this probe run kept off the CPU (by the hypervisor or another process) for a fifth of its window?"""
    return r.cpu_share is not None and r.cpu_share < MIN_CPU_SHARE


def _per_repeat(results: list[RunResult], shape: str) -> dict[str, dict[int, tuple[float, float, float]]]:
    """{impl: {repeat: (median us/step, mean us/step, host median us/step)}} of one shape's successful runs,
    without the repeats in which any run was disturbed (a pair is only as good as its worse run)."""
    out: dict[str, dict[int, tuple[float, float, float]]] = {}
    runs = [r for r in results if r.config["task"] == PROBE and r.config["overrides"].get("shape", "auto") == shape]
    bad = {r.config["repeat"] for r in runs if disturbed(r)}
    for r in runs:
        if r.ok and r.config["repeat"] not in bad:
            measured = r.task_config["steps"] - r.warmup_steps
            host = r.host_step_time_median_s or r.step_time_median_s
            out.setdefault(r.config["impl"], {})[r.config["repeat"]] = (
                r.step_time_median_s * 1e6,
                r.window_s / measured * 1e6,
                host * 1e6,
            )
    return out


def _delta(runs: dict, impl: str, base: str, which: int = 0) -> Difference | None:
    repeats = sorted(runs.get(impl, {}).keys() & runs.get(base, {}).keys())
    if len(repeats) < 2:
        return None
    return paired_difference([(runs[base][k][which], runs[impl][k][which]) for k in repeats])


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
    """{impl: {"us_per_step", "mean_us_per_step", "host_us_per_step", and for Lightning variants the delta
    to the plain loop}}. On CUDA the step times are the device's and the host's time is its own; on a CPU
    the two are the same clock."""
    runs = _per_repeat(results, shape)
    if PLAIN not in runs:
        return {}
    out: dict[str, Any] = {}
    for impl in [i for i in LADDER_IMPLS if i in runs] + [i for i in runs if i not in LADDER_IMPLS]:
        values = list(runs[impl].values())
        out[impl] = {
            "us_per_step": sum(v[0] for v in values) / len(values),
            "mean_us_per_step": sum(v[1] for v in values) / len(values),
            "host_us_per_step": sum(v[2] for v in values) / len(values),
            "runs": len(values),
        }
        if impl != PLAIN:
            out[impl] |= _entry(_delta(runs, impl, PLAIN), _delta(runs, impl, PLAIN, 1))
            host = _delta(runs, impl, PLAIN, 2)
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
    """Each rung's cost over its base, and the rungs' sum beside the default Trainer's cost (per repeat)."""
    runs = _per_repeat(results, shape)
    rows = [
        {"shape": shape, "feature": r.feature, "impl": r.impl, "base": r.base}
        | _entry(_delta(runs, r.impl, r.base), _delta(runs, r.impl, r.base, 1))
        for r in LADDER
        if r.impl in runs and r.base in runs
    ]
    needed = {PLAIN, DEFAULTS} | {i for r in LADDER for i in (r.impl, r.base)}
    repeats = sorted(set.intersection(*(set(runs.get(i, {})) for i in needed)))
    if len(rows) < len(LADDER) or len(repeats) < 2:
        return rows, None
    sums = [sum(runs[r.impl][k][0] - runs[r.base][k][0] for r in LADDER) for k in repeats]
    totals = [runs[DEFAULTS][k][0] - runs[PLAIN][k][0] for k in repeats]
    s = paired_difference([(0.0, v) for v in sums])
    remainder = paired_difference(list(zip(sums, totals, strict=True)))
    total = {
        "shape": shape,
        "sum_us": s.delta,
        "sum_low_us": s.low,
        "sum_high_us": s.high,
        "defaults_delta_us": sum(totals) / len(totals),
        "remainder_us": remainder.delta,
        "remainder_low_us": remainder.low,
        "remainder_high_us": remainder.high,
        "pairs": len(repeats),
    }
    return rows, total


def answer(results: list[RunResult], device: str, runs: int) -> dict[str, Any]:
    """The JSON-ready answer from the probe's runs: per shape the variants, and the ladder."""
    ok = [r for r in results if r.ok]
    shapes = [s for s in SHAPES if any(r.config["overrides"].get("shape", "auto") == s for r in ok)]
    out: dict[str, Any] = {
        "device": device,
        "threads": 1,
        "runs": runs,
        "step_means": {s: STEP_MEANS[s] for s in shapes},
        "steps": ok[0].task_config.get("steps") if ok else None,
        "shapes": {s: summarize(results, s) for s in shapes},
        "ladder": [],
        "ladder_totals": {},
        "failed": [f"{r.run_config.label} ({r.config['impl']}): {r.status}: {r.message}" for r in results if not r.ok],
        "env": {k: ok[0].env.get(k) for k in ("cpu", "cpu_flags", "torch", "pytorch_lightning", "commit")}
        if ok
        else {},
        "cpu_steal_max": max((r.cpu_steal_fraction or 0.0 for r in ok), default=None),
        "disturbed": [
            f"{r.config['overrides'].get('shape', 'auto')} repeat {r.config['repeat']} {r.config['impl']}: "
            f"{r.cpu_share:.0%} of a CPU"
            for r in ok
            if disturbed(r)
        ],
    }
    for s in shapes:
        rows, total = ladder(results, s)
        out["ladder"] += rows
        if total:
            out["ladder_totals"][s] = total
    return out


def measure(
    device: str,
    shapes: tuple[str, ...],
    runs: int,
    steps: int | None,
    on_result: Callable[[int, int, RunResult], None] | None = None,
) -> dict[str, Any]:
    """Run the probe (every ladder variant) for each shape and return the JSON-ready answer."""
    from loopbench.suite import run_cells

    cells = [c for shape in shapes for c in plan(device, shape, runs, steps)]
    return answer(run_cells(cells, on_result=on_result), device, runs)


def _us(v: dict[str, Any], key: str = "delta") -> str:
    return f"{v[f'{key}_us']:+8.1f} us [{v[f'{key}_low_us']:+.1f}, {v[f'{key}_high_us']:+.1f}]"


def lines(answer: dict[str, Any]) -> list[str]:
    out = []
    for shape, impls in answer["shapes"].items():
        for impl, v in impls.items():
            line = f"{shape:<7} {impl:<24} {v['us_per_step']:8.1f} us/step"
            if v.get("delta_us") is not None:
                line += f"  {_us(v)} ({v['pairs']} pairs)"
            if answer["device"].startswith("cuda"):  # the device's time above, the host's own here
                line += f"  host {v['host_us_per_step']:.1f} us/step"
            out.append(line)
    if answer["ladder"]:
        out += ["", "the ladder: what each part of the Trainer adds per step (median step; window mean)"]
    for row in answer["ladder"]:
        if row.get("delta_us") is not None:
            out.append(f"{row['shape']:<7} {row['feature']:<72} {_us(row)}; {_us(row, 'mean_delta')}")
    for shape, t in answer["ladder_totals"].items():
        out.append(
            f"{shape:<7} sum of the rungs {t['sum_us']:+.1f} us; the default Trainer {t['defaults_delta_us']:+.1f} us; "
            f"remainder (interactions) {t['remainder_us']:+.1f} us [{t['remainder_low_us']:+.1f}, "
            f"{t['remainder_high_us']:+.1f}]"
        )
    out += [f"FAILED: {line}" for line in answer["failed"]]
    return out
