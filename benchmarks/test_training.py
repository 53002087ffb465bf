"""One benchmark per cell (task, device, precision, implementation) of this machine's matrix.

Each benchmark's samples are its implementation's seconds per optimizer step, one per round, from the
time-only segments that the report pairs (a round: one process runs P L P Ld P); every implementation of a
cell has as many samples as the others, so pytest-benchmark's min, median and OPS (steps per second)
compare like with like, and `--benchmark-compare` compares the same quantity across saved runs. A cell's
runs happen when its first benchmark starts; `extra_info` holds the paired ratio with its interval, the
probe's prediction, counts, parity and the fresh-process run's throughput and memory
(loopbench.report.bench). The timer, `step_clock`, replays the measured values: pytest-benchmark never
times the replay itself.
"""

from __future__ import annotations

import math

import pytest

from loopbench.analysis import rounds
from loopbench.analysis.grouping import group_key
from loopbench.analysis.parity import compare_cell
from loopbench.core.trainers import PLAIN
from loopbench.report.bench import CLOCK, extra_info, group_name

pytestmark = pytest.mark.benchmark(timer=CLOCK, disable_gc=False, warmup=False)


def test_training(cell, benchmark, bench_runs, bench_results):
    group, impl = cell
    runs = bench_runs(group)
    mine = runs.get(impl, [])
    assert mine, f"no run of {impl} in this cell"
    first = mine[0]
    if first.status == "unsupported":
        pytest.skip(f"unsupported cell, recorded in the report: {first.message}")
    failed = [r for r in mine if not r.ok]
    assert not failed, f"{failed[0].status}: {failed[0].message}"
    assert all(math.isfinite(x) for r in mine for losses in r.losses.values() for x in losses), "non-finite loss"

    samples = rounds.samples([r for rs in runs.values() for r in rs])[impl]
    pending = iter(samples)
    benchmark.group = group_name(group)
    benchmark.pedantic(lambda: CLOCK.advance(next(pending)), rounds=len(samples), iterations=1)
    benchmark.extra_info.update(extra_info(bench_results(), group, impl))

    # every implementation of a deterministic cell must train the plain loop's model
    reference = [r for r in runs.get(PLAIN, []) if r.ok and not r.config.get("slot")]
    candidate = [r for r in mine if not r.config.get("slot")]
    if impl != PLAIN and reference and candidate:
        verdict = compare_cell(reference[0], candidate[0])
        assert verdict.holds, verdict.line()

    # the instruction count of this implementation, where the matrix planned one (the probe's variants): the
    # count is the report's overhead figure, so a count that failed fails its benchmark (valgrind missing or
    # turned off: the report says so, and that is no failure)
    counts = [r for r in bench_results() if r.config.get("clock") == "instructions" and r.config["impl"] == impl]
    for count in (r for r in counts if group_key(r.config) == group and r.status != "unsupported"):
        assert count.ok, f"instruction count: {count.status}: {count.message}"
        assert 2e5 < count.instructions_per_step < 5e7, count.instructions_per_step  # a probe step: ~1 M plain
