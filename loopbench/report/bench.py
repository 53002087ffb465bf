"""What pytest-benchmark shows of a cell: one quantity in its table, everything else in `extra_info`.

Its table and JSON describe seconds per optimizer step of each implementation, one sample per round, from
the same segments the report pairs (loopbench.analysis.rounds.samples), so every implementation of a cell has as
many samples as the others and the ratio of two medians there is the report's ratio, give or take the
pairing. The paired ratio with its interval, the probe's prediction, instruction counts, parity and the
fresh-process run's memory go into `extra_info`, where a reader of the JSON finds them beside the samples.
"""

from __future__ import annotations

import json
from typing import Any

import implementations
from loopbench.analysis import parity, rounds, stats
from loopbench.analysis.grouping import group_key, placement
from loopbench.core.trainers import PLAIN
from loopbench.core.types import RunResult
from loopbench.report import counts as counts_report
from loopbench.report import probe as probe_report
from loopbench.report.tables import TARGET, fresh, overheads

SAMPLE = (
    "seconds per optimizer step: one value per round, the median step of this implementation's segment "
    "(the plain loop: the mean of its segments in that round), warm-up excluded; without rounds, one value "
    "per fresh-process run"
)


class BenchmarkTimer:
    """pytest-benchmark's timer: it advances by one measured time per optimizer step per call of the target."""

    __name__ = "step_clock"  # how pytest-benchmark names the timer (module.name)

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


CLOCK = BenchmarkTimer()


def group_name(key: tuple) -> str:
    """A cell's name for a person: `mnist_gan on cpu, 32-true, quick preset, train_size=512: seconds per step`."""
    task, device, precision, preset, _, _, overrides, processes, lightning = key
    words = [placement(device, processes, lightning), precision, f"{preset} preset"]
    words += [f"{k}={v}" for k, v in json.loads(overrides).items()]
    return f"{task} on {', '.join(words)}: seconds per optimizer step"


def extra_info(everything: list[RunResult], key: tuple, impl: str) -> dict[str, Any]:
    """`extra_info` of one benchmark: what each sample is, the paired ratio against the plain loop with its
    interval and half-width, the probe's prediction and the verdict, counts, parity, the fresh run's figures."""
    group = [r for r in everything if group_key(r.config) == key]
    samples = rounds.samples(group)
    info: dict[str, Any] = {"sample": SAMPLE, "samples": len(samples.get(impl, []))}
    info["fresh_run"] = _fresh(group, impl)
    if impl == PLAIN:
        return info
    task, device, precision = key[0], placement(key[1], key[7], key[8]), key[2]
    ov = overheads(group)
    mine = ov[ov.impl == impl] if len(ov) else ov
    if len(mine):
        o = mine.iloc[0]
        low, high = _num(o["95% CI low"]), _num(o["95% CI high"])
        info["ratio_vs_plain"] = {
            "ratio": float(o["step-time ratio"]),
            "low": low,
            "high": high,
            "half_width": None if low is None else (high - low) / 2 / float(o["step-time ratio"]),
            "pairs": int(o["pairs"]),
            "from": o["from"],
            "verdict": o["verdict"],
            "label": o["label"],
            "target_half_width": TARGET,
        }
        if _num(o.get("own ms")) is not None:  # the in-place split: the Trainer's own time outside the model's work
            info["trainer_own_time"] = {
                "ms_per_step": float(o["own ms"]),
                "share_of_step": float(o["own share %"]) / 100,
                "share_low": _scale(o.get("own share low %")),
                "share_high": _scale(o.get("own share high %")),
                "pinned": bool(o["own pinned"]),
                "label": o["own time"],
            }
    info |= _predicted(everything, group, task, impl, info.get("ratio_vs_plain"))
    counts = counts_report.table(everything, probe_report.predictors(everything))
    if len(counts):
        row = counts[(counts.task == task) & (counts.device == device) & (counts.precision == precision)]
        row = row[row.impl == impl]
        if len(row):
            r = row.iloc[0]
            info["instructions"] = {
                "plain_per_step": float(r["plain M/step"]) * 1e6,
                "delta_per_step": float(r["delta M/step"]) * 1e6,
                "counted_ratio": float(r["counted ratio"]),
                "verdict": r["verdict"],
            }
    refs = [r for r in fresh(group) if r.ok and r.config["impl"] == PLAIN]
    mines = [r for r in fresh(group) if r.ok and r.config["impl"] == impl]
    if refs and mines:
        p = parity.compare_cell(refs[0], mines[0])
        info["parity"] = {"verdict": p.verdict, "expected": p.expected, "holds": p.holds}
    return info


NOT_PREDICTED = "not predicted"


def _predicted(everything, group, task, impl, measured: dict | None) -> dict[str, Any]:
    """The probe's predicted ratio for this cell's plain step, its interval, and whether the measured agrees."""
    if task in implementations.PROBES:
        return {}
    plain = [r for r in fresh(group) if r.ok and r.config["impl"] == PLAIN and r.step_time_median_s]
    if not plain:
        return {}
    device = plain[0].config["device"]
    a = probe_report.predictors(everything).get(device)
    host = plain[0].host_step_time_median_s
    step = (plain[0].step_time_median_s * 1e3, None if host is None else host * 1e3)
    ratio = probe_report.prediction(a, task, impl, *step)
    if ratio is None:  # said, not dropped: a probe whose pairs were all left out (drift) predicts nothing
        shape = implementations.spec(task).HARNESS.probe_shape
        why = "no probe in these runs" if a is None else f"the probe gave no {impl} delta in its {shape} shape"
        return {"probe_predicts": {"ratio": None, "measured_vs_predicted": NOT_PREDICTED, "why": why}}
    ends = [probe_report.prediction(a, task, impl, *step, delta=d) for d in ("delta_low", "delta_high")]
    verdict = stats.agreement((measured or {}).get("low"), (measured or {}).get("high"), *ends)
    return {"probe_predicts": {"ratio": ratio, "low": ends[0], "high": ends[1], "measured_vs_predicted": verdict}}


def _fresh(group: list[RunResult], impl: str) -> dict[str, Any] | None:
    """The first fresh-process run of the implementation: throughput, end-to-end time, memory."""
    runs = [r for r in fresh(group) if r.config["impl"] == impl]
    if not runs:
        return None
    r = runs[0]
    return {
        "status": r.status,
        "samples_per_s": r.samples_per_s,
        "step_time_median_s": r.step_time_median_s,
        "end_to_end_s": r.end_to_end_s,
        "peak_rss_bytes": r.peak_rss_bytes,
        "peak_cuda_allocated_bytes": r.peak_cuda_allocated_bytes,
        "peak_cuda_reserved_bytes": r.peak_cuda_reserved_bytes,
        "metrics": r.metrics,
    }


def _num(x: Any) -> float | None:
    return None if x is None or x != x else float(x)


def _scale(percent: Any) -> float | None:
    x = _num(percent)
    return None if x is None else x / 100
