"""The pay curve, from the runs: each point (a real task at a size, from about a millisecond to hundreds of
milliseconds per step) with its Lightning / plain ratio over rounds and 95% order-statistic interval, set
beside the overhead probe's prediction (T + delta) / T at one torch thread and at the tasks' thread count;
the Trainer's own time in place (loopbench.analysis.inplace) with its interval, and where the point is
counted, the Trainer's extra instructions per step. The points are defined here, since the analysis names
each run by its point. docs/pay-curve.md has the method.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

import implementations
from loopbench.analysis import inplace, rounds, stats
from loopbench.analysis.probe import PROBE, answer, predicted_ratio
from loopbench.core.trainers import DEFAULTS, LEAN, PLAIN
from loopbench.core.types import RunResult

IMPLS = (PLAIN, LEAN, DEFAULTS)


@dataclass(frozen=True)
class Point:
    name: str
    task: str
    overrides: dict[str, Any]
    segment: tuple[int, int]  # steps, warm-up: about half a second to a second of steps on 2 cores
    count: tuple[int, int] | None = None  # steps, warm-up of an instruction count (one thread); None: not counted


_GAN_TINY = {"latent_dim": 16, "d_widths": (16, 16)}


POINTS: tuple[Point, ...] = (  # from the smallest step to the largest, as measured on 2 cores
    # counted up to 160 ms: under valgrind a step runs 100s of times slower, after minutes of start-up, so the
    # larger points count a few steps (a step's instructions do not vary with the machine's level)
    Point(
        "GAN, widths 16, batch 2",
        "mnist_gan",
        _GAN_TINY | {"g_widths": (16, 16, 16, 16), "batch_size": 2},
        (400, 50),
        (40, 10),
    ),
    Point("CIFAR, widths 4-8, batch 2", "cifar_cnn", {"widths": (4, 4, 8, 8), "batch_size": 2}, (400, 50), (40, 10)),
    Point(
        "GAN, widths 16-128, batch 16",
        "mnist_gan",
        _GAN_TINY | {"g_widths": (16, 32, 64, 128), "batch_size": 16},
        (200, 30),
        (24, 8),
    ),
    Point(
        "CIFAR, widths 8-32, batch 16", "cifar_cnn", {"widths": (8, 16, 16, 32), "batch_size": 16}, (120, 20), (16, 6)
    ),
    Point("GAN quick, batch 64", "mnist_gan", {"batch_size": 64}, (40, 10), (6, 2)),
    Point("CIFAR, widths 8-32, batch 64", "cifar_cnn", {"widths": (8, 16, 16, 32), "batch_size": 64}, (40, 8), (6, 2)),
    Point("GAN quick, batch 512", "mnist_gan", {"batch_size": 512, "train_size": 8_192}, (12, 3), (2, 1)),
    Point("CIFAR quick, batch 64", "cifar_cnn", {"batch_size": 64}, (12, 3), (2, 1)),
    # not counted: under callgrind on 2 cores a run of these takes over an hour per implementation
    Point("CIFAR, widths 32-128, batch 64", "cifar_cnn", {"widths": (32, 64, 128, 128), "batch_size": 64}, (6, 2)),
    Point("CIFAR, widths 64-256, batch 64", "cifar_cnn", {"widths": (64, 256, 256, 256), "batch_size": 64}, (4, 1)),
    # EfficientNet (86 to 380 ms here, its quick preset last): a third task, 213 parameter tensors to the others' 22-23;
    # its shortest point counted
    Point(
        "EfficientNet, image 32, batch 2",
        "efficientnet_binary",
        {"image_size": 32, "batch_size": 2},
        (30, 6),
        (6, 2),
    ),
    Point("EfficientNet, image 64, batch 8", "efficientnet_binary", {"batch_size": 8}, (12, 3)),
    Point("EfficientNet quick, batch 32", "efficientnet_binary", {}, (6, 2)),
)


def point_of(r: RunResult, points: tuple[Point, ...]) -> Point | None:
    over = {k: v for k, v in r.config["overrides"].items() if k != "validate_every_epoch"}
    return next((p for p in points if p.task == r.config["task"] and _same(p.overrides, over)), None)


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    norm = {k: list(v) if isinstance(v, tuple) else v for k, v in a.items()}
    return norm == {k: list(v) if isinstance(v, tuple) else v for k, v in b.items()}


def probes(results: list[RunResult]) -> dict[int, dict[str, Any]]:
    """{threads: the probe's answer at that thread count}."""
    probe = [r for r in results if r.config["task"] == PROBE]
    out = {}
    for t in sorted({r.config["overrides"].get("threads", 1) for r in probe}):
        a = answer([r for r in probe if r.config["overrides"].get("threads", 1) == t], "cpu")
        out[t] = a | {"threads": t}
    return out


def analyse(results: list[RunResult], points: tuple[Point, ...] = POINTS) -> dict[str, Any]:
    """Per point: the plain step, each Trainer's measured ratio with its interval, the predictions of the probe at
    one thread and at the tasks' thread count with whether each lies inside the interval, the Trainer's own time
    in place, and its counted instructions; then the constant-delta model and a fitted one, tested in place."""
    tasks = [r for r in results if r.config["task"] != PROBE]
    by_probe = probes(results)
    rows = []
    for point in points:
        runs = [r for r in tasks if point_of(r, points) is point]
        timed = [r for r in runs if r.config.get("clock", "time") == "time"]
        plain = [r.step_time_median_s for r in timed if r.ok and r.config["impl"] == PLAIN and r.step_time_median_s]
        if not plain:
            continue
        step_s = statistics.median(plain)
        counted = _counted(runs)
        for impl in (LEAN, DEFAULTS):
            measured = measured_at_point(timed, impl)
            row = {"point": point.name, "task": point.task, "impl": impl, "step_ms": step_s * 1e3} | measured
            if impl in counted:
                row |= counted[impl]
                if row.get("own_us"):
                    row["instructions_per_us"] = row["instructions_delta"] / row["own_us"]
            shape = implementations.spec(point.task).HARNESS.probe_shape
            for t, a in by_probe.items():
                v = a["shapes"].get(shape, {}).get(impl, {})
                if v.get("delta_us") is None:
                    continue
                predicted = predicted_ratio(step_s, None, v["delta_us"])
                low = predicted_ratio(step_s, None, v["delta_low_us"])
                high = predicted_ratio(step_s, None, v["delta_high_us"])
                row[f"predicted_t{t}"] = predicted
                row[f"agrees_t{t}"] = stats.agreement(measured["low"], measured["high"], low, high) == "agrees"
            rows.append(row)
    rows += _probe_points(by_probe)
    return {"threads": sorted(by_probe), "points": rows, "probes": by_probe, "models": models(rows)}


def _probe_points(by_probe: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """The probe at one thread as the curve's shortest point: its plain step and the Trainer's own time in place."""
    one = by_probe.get(1, {}).get("shapes", {}).get("auto", {})
    if PLAIN not in one:
        return []
    counted = by_probe[1].get("instructions", {}).get("shapes", {}).get("auto", {})
    out = []
    for impl in (LEAN, DEFAULTS):
        v = one.get(impl, {})
        if v.get("in_place_own_us") is None:
            continue
        step_us = one[PLAIN]["us_per_step"]
        own = {k.removeprefix("in_place_"): x for k, x in v.items() if k.startswith("in_place_")}
        n = counted.get(impl, {}).get("delta")
        if n is not None:
            n = {"instructions_plain": counted[PLAIN]["per_step"], "instructions_delta": n}
            n["instructions_per_us"] = n["instructions_delta"] / own["own_us"]
        out.append(
            (n or {})
            | {
                "point": "the probe (1 thread, auto)",
                "task": PROBE,
                "impl": impl,
                "step_ms": step_us / 1e3,
                # its paired ratio: (T + delta) / T over its own segments, the interval from delta's
                "ratio": 1 + v["delta_us"] / step_us if v.get("delta_us") is not None else None,
                "low": _ratio(v.get("delta_low_us"), step_us),
                "high": _ratio(v.get("delta_high_us"), step_us),
                "pairs": v.get("pairs"),
                "in_place_pairs": v.get("runs"),
                **{k: x for k, x in own.items() if k.startswith(("own", "work"))},
                "share": own["own_us"] / step_us,
                "share_low": _div(own.get("own_low_us"), step_us),
                "share_high": _div(own.get("own_high_us"), step_us),
            }
        )
    return out


def _div(x: float | None, y: float) -> float | None:
    return None if x is None else x / y


def _ratio(delta_us: float | None, step_us: float) -> float | None:
    return None if delta_us is None else 1 + delta_us / step_us


def measured_at_point(runs: list[RunResult], impl: str) -> dict[str, Any]:
    """The point's ratio from its rounds (each Lightning segment over the plain segments beside it), and the
    Trainer's own time in place from the same pairs."""
    segments = [r for r in runs if r.config.get("slot", 0) > 0]
    found, _ = rounds.pairs(segments, "point")
    pairs = [
        (rounds.of_plain(p, lambda r: r.step_time_median_s), p.mine.step_time_median_s) for p in found.get(impl, [])
    ]
    out: dict[str, Any] = {"ratio": None, "low": None, "high": None, "pairs": 0}
    if pairs:
        r = stats.robust_ratio(pairs)
        out = {"ratio": r.ratio, "low": r.low, "high": r.high, "pairs": r.pairs}
    own = inplace.trainer_time(found.get(impl, []))
    if own:
        out |= {k.removesuffix("_s") + "_us": v * 1e6 if v is not None else None for k, v in own.items()
                if k.endswith("_s")}  # fmt: skip
        out |= {k: own[k] for k in ("share", "share_low", "share_high")} | {"in_place_pairs": own["pairs"]}
    return out


def _counted(runs: list[RunResult]) -> dict[str, dict[str, float]]:
    """{Trainer: its instructions per step over the plain loop's} from the point's counts, where both counted."""
    counts = {r.config["impl"]: r.instructions_per_step for r in runs if r.ok and r.instructions_per_step}
    if PLAIN not in counts:
        return {}
    return {
        impl: {"instructions_plain": counts[PLAIN], "instructions_delta": counts[impl] - counts[PLAIN]}
        for impl in (LEAN, DEFAULTS)
        if impl in counts
    }


def models(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per Trainer, the Trainer's own time in place against the plain step T, over every point with an interval:
    the constant model (own = a: is every point's interval around one value?) and own = a + b * log10(T / 1 ms),
    fitted by least squares with 95% t intervals on a and b; each point's fitted value inside its interval or
    not. A b whose interval excludes 0 says the Trainer's time per step grows with the step."""
    out = {}
    for impl in (LEAN, DEFAULTS):
        pts = [r for r in rows if r["impl"] == impl and r.get("own_low_us") is not None]
        if len(pts) < 3:
            continue
        x = np.log10([r["step_ms"] for r in pts])
        y = np.array([r["own_us"] for r in pts])
        fit = scipy_stats.linregress(x, y)
        t = float(scipy_stats.t.ppf(0.975, len(pts) - 2))
        constant = float(np.median(y))
        tasks = [r for r in pts if r["task"] != PROBE]  # the real jobs, without the near-zero-compute probe
        level = float(np.median([r["own_us"] for r in tasks])) if tasks else None
        probe = next((r for r in pts if r["task"] == PROBE), None)
        out[impl] = {
            "tasks": len(tasks),
            "tasks_step_ms": [min(r["step_ms"] for r in tasks), max(r["step_ms"] for r in tasks)] if tasks else None,
            "tasks_constant_us": level,
            "tasks_constant_inside": int(sum(r["own_low_us"] <= level <= r["own_high_us"] for r in tasks)),
            "probe_own_us": probe and [probe["own_us"], probe["own_low_us"], probe["own_high_us"]],
            "points": len(pts),
            "constant_us": constant,
            "constant_inside": int(sum(r["own_low_us"] <= constant <= r["own_high_us"] for r in pts)),
            "a_us": float(fit.intercept), "a_half_us": t * float(fit.intercept_stderr),
            "b_us_per_decade": float(fit.slope), "b_half_us": t * float(fit.stderr),
            "fitted_inside": int(sum(r["own_low_us"] <= fit.intercept + fit.slope * xi <= r["own_high_us"]
                                     for r, xi in zip(pts, x, strict=True))),
            "common_us": common(tasks),
            "by_task": {task: per_task([r for r in tasks if r["task"] == task])
                        for task in dict.fromkeys(r["task"] for r in tasks)},
        }  # fmt: skip
    return out


def common(pts: list[dict[str, Any]]) -> list[float] | None:
    """The constants that lie inside every point's interval, [low, high] (None: no one value fits them all)."""
    if not pts:
        return None
    low, high = max(r["own_low_us"] for r in pts), min(r["own_high_us"] for r in pts)
    return [low, high] if low <= high else None


def per_task(pts: list[dict[str, Any]]) -> dict[str, Any]:
    """One task's points under own = a_task, constant in T: the range of a that fits every point, and each point
    predicted from the others alone (the range their intervals share overlaps its interval)."""
    predicted = 0
    for r in pts:
        rest = common([q for q in pts if q is not r])
        predicted += rest is not None and rest[0] <= r["own_high_us"] and r["own_low_us"] <= rest[1]
    return {"points": len(pts), "common_us": common(pts), "predicted": int(predicted),
            "step_ms": [min(r["step_ms"] for r in pts), max(r["step_ms"] for r in pts)]}  # fmt: skip
