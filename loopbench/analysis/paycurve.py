"""The pay curve, from the runs: each point (a real task at a size, from about a millisecond to hundreds of
milliseconds per step) with its Lightning / plain ratio over rounds and 95% order-statistic interval, set
beside the overhead probe's prediction (T + delta) / T at one torch thread and at the tasks' thread count.
The points are defined here, since the analysis names each run by its point. docs/pay-curve.md has the method.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import implementations
from loopbench.analysis import rounds, stats
from loopbench.analysis.probe import PROBE, answer, predicted_ratio
from loopbench.core.trainers import DEFAULTS, LEAN, PLAIN
from loopbench.core.types import RunConfig, RunResult

IMPLS = (PLAIN, LEAN, DEFAULTS)


@dataclass(frozen=True)
class Point:
    name: str
    task: str
    overrides: dict[str, Any]
    segment: tuple[int, int]  # steps, warm-up: about half a second to a second of steps on 2 cores

    def cells(self, k: int) -> list[RunConfig]:
        steps, warmup = self.segment
        over = {"validate_every_epoch": False} | self.overrides
        return [
            RunConfig(
                self.task, impl, preset="quick", steps=steps, warmup_steps=warmup, overrides=over, repeat=k, slot=slot
            )
            for slot, impl in enumerate(rounds.sequence(IMPLS, k), 1)
        ]


_GAN_TINY = {"latent_dim": 16, "d_widths": (16, 16)}


POINTS: tuple[Point, ...] = (  # from the smallest step to the largest, as measured on 2 cores
    Point(
        "GAN, widths 16, batch 2", "mnist_gan", _GAN_TINY | {"g_widths": (16, 16, 16, 16), "batch_size": 2}, (400, 50)
    ),
    Point("CIFAR, widths 4-8, batch 2", "cifar_cnn", {"widths": (4, 4, 8, 8), "batch_size": 2}, (400, 50)),
    Point(
        "GAN, widths 16-128, batch 16",
        "mnist_gan",
        _GAN_TINY | {"g_widths": (16, 32, 64, 128), "batch_size": 16},
        (200, 30),
    ),
    Point("CIFAR, widths 8-32, batch 16", "cifar_cnn", {"widths": (8, 16, 16, 32), "batch_size": 16}, (120, 20)),
    Point("GAN quick, batch 64", "mnist_gan", {"batch_size": 64}, (40, 10)),
    Point("CIFAR, widths 8-32, batch 64", "cifar_cnn", {"widths": (8, 16, 16, 32), "batch_size": 64}, (40, 8)),
    Point("GAN quick, batch 512", "mnist_gan", {"batch_size": 512, "train_size": 8_192}, (12, 3)),
    Point("CIFAR quick, batch 64", "cifar_cnn", {"batch_size": 64}, (12, 3)),
    Point("CIFAR, widths 32-128, batch 64", "cifar_cnn", {"widths": (32, 64, 128, 128), "batch_size": 64}, (6, 2)),
    Point("CIFAR, widths 64-256, batch 64", "cifar_cnn", {"widths": (64, 256, 256, 256), "batch_size": 64}, (4, 1)),
)


def _point(r: RunResult, points: tuple[Point, ...]) -> Point | None:
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
    """Per point: the plain step, each Trainer's measured ratio with its interval, and the predictions of the
    probe at one thread and at the tasks' thread count, with whether each lies inside the interval."""
    tasks = [r for r in results if r.config["task"] != PROBE]
    by_probe = probes(results)
    rows = []
    for point in points:
        runs = [r for r in tasks if _point(r, points) is point]
        plain = [r.step_time_median_s for r in runs if r.ok and r.config["impl"] == PLAIN and r.step_time_median_s]
        if not plain:
            continue
        step_s = statistics.median(plain)
        for impl in (LEAN, DEFAULTS):
            measured = _measured(runs, impl)
            row = {"point": point.name, "task": point.task, "impl": impl, "step_ms": step_s * 1e3} | measured
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
    return {"threads": sorted(by_probe), "points": rows, "probes": by_probe}


def _measured(runs: list[RunResult], impl: str) -> dict[str, Any]:
    """The point's ratio from its rounds: each Lightning segment over the plain segments beside it."""
    segments = [r for r in runs if r.config.get("slot", 0) > 0]
    found, _ = rounds.pairs(segments, "point")
    pairs = [
        (rounds.of_plain(p, lambda r: r.step_time_median_s), p.mine.step_time_median_s) for p in found.get(impl, [])
    ]
    if not pairs:
        return {"ratio": None, "low": None, "high": None, "pairs": 0}
    r = stats.robust_ratio(pairs)
    return {"ratio": r.ratio, "low": r.low, "high": r.high, "pairs": r.pairs}
