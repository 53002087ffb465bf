"""One benchmark per cell (task, device, precision, implementation) of this machine's matrix.

Every round is one complete training run in a fresh Python process (see loopbench.launch.isolate). The
runs of a group (task, device, precision) are executed together when its first benchmark starts, in
A B C / C B A order across repeats, so that machine drift weighs on all implementations alike.

pytest-benchmark's timer here is `TrainingClock`: it advances by the training window each run
measured for itself (warm-up excluded, synchronised at both ends), so the table describes training
rounds, not interpreter start-up, imports or data generation. Everything else (throughput, step-time
median and p90, end-to-end time, memory, parity verdict, data source) is in `extra_info` and in the
report written at the end of the session.
"""

from __future__ import annotations

import math

import pytest

from loopbench.parity import compare_cell
from loopbench.suite import group_words
from loopbench.types import RunResult


class TrainingClock:
    """A pytest-benchmark timer that reads the training time measured inside the isolated run."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


CLOCK = TrainingClock()
pytestmark = pytest.mark.benchmark(timer=CLOCK, disable_gc=False, warmup=False)


def test_training(cell, benchmark, bench_runs, bench_matrix):
    group, impl = cell
    runs = list(bench_runs(group)[impl])
    pending = iter(runs)

    def one_training_run() -> RunResult:
        result = next(pending)
        CLOCK.advance(result.window_s or 0.0)
        return result

    benchmark.group = " ".join(group_words(group))
    benchmark.pedantic(one_training_run, rounds=len(runs), iterations=1)

    first = runs[0]
    info = benchmark.extra_info
    info.update(status=[r.status for r in runs], preset=bench_matrix.preset, data=first.data.get("source"))
    if first.status == "unsupported":
        pytest.skip(f"unsupported cell, recorded in the report: {first.message}")
    failed = [r for r in runs if not r.ok]
    assert not failed, f"{failed[0].status}: {failed[0].message}"

    info.update(
        samples_per_s=[r.samples_per_s for r in runs],
        step_time_median_s=[r.step_time_median_s for r in runs],
        step_time_p90_s=[r.step_time_p90_s for r in runs],
        end_to_end_s=[r.end_to_end_s for r in runs],
        peak_rss_bytes=[r.peak_rss_bytes for r in runs],
        peak_cuda_allocated_bytes=[r.peak_cuda_allocated_bytes for r in runs],
        peak_cuda_reserved_bytes=[r.peak_cuda_reserved_bytes for r in runs],
        metrics=first.metrics,
        env={k: first.env.get(k) for k in ("commit", "torch", "pytorch_lightning", "cpu", "gpu")},
    )
    assert all(math.isfinite(x) for r in runs for losses in r.losses.values() for x in losses), "non-finite loss"

    # every repeat of a deterministic cell trains the same model; Lightning must match the plain loop
    reference = [r for r in bench_runs(group).get("pytorch", []) if r.ok]
    if impl != "pytorch" and reference:
        verdict = compare_cell(reference[0], first)
        info["parity"] = verdict.verdict
        assert verdict.holds, verdict.line()
