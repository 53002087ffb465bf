"""Runs a list of cells: each batch in the process it needs (a fresh one, a forked one for a round, one under
valgrind for instruction counts), every result to the log as it ends."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from loopbench.launch.forked import run_forked_batch
from loopbench.launch.isolate import DEFAULT_TIMEOUT_S, run_isolated
from loopbench.store import ResultLog
from loopbench.types import RunConfig, RunResult


def progress_line(i: int, n: int, result: RunResult) -> str:
    c = result.run_config
    device = f"{c.device}x{c.processes}" if c.processes > 1 else c.device
    head = f"[{i:>3}/{n}] {c.task:<20} {c.impl:<18} {device:<6} {c.precision:<10}"
    if not result.ok:
        return f"{head} {result.status.upper()}: {result.message}"
    if result.instructions_per_step:
        return f"{head} {result.instructions_per_step / 1e6:9.3f} M instructions/step (one thread, under valgrind)"
    metrics = " ".join(f"{k}={v:.3g}" for k, v in result.metrics.items())
    return (
        f"{head} {result.samples_per_s:>9.1f} samples/s  median step {result.step_time_median_s * 1e3:7.2f} ms"
        f"  end-to-end {result.end_to_end_s:6.2f} s  {metrics}"
    )


def run_cells(
    cells: list[RunConfig],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    on_result: Callable[[int, int, RunResult], None] | None = None,
    log: ResultLog | None = None,
) -> list[RunResult]:
    """Run every cell in its own process; a failed cell is a result like any other.

    The probe and the tasks' rounds are timed only, so a round of segments runs in one process forked from
    a server with the imports done (see loopbench.launch.forked); each cell's instruction counts run in one
    process under valgrind (loopbench.instructions), and consecutive counts side by side, one per core (a
    count does not depend on load); a fresh run starts from nothing, since its memory is reported too.
    Each result reaches `log` (flushed and synced) before the next batch starts.
    """
    from loopbench.instructions import count

    results: list[RunResult] = []

    def deliver(done: list[RunResult]) -> None:
        for result in done:
            results.append(result)
            if log:
                log.append(result)
            if on_result:
                on_result(len(results), len(cells), result)

    todo, i = batches(cells), 0
    while i < len(todo):
        batch = todo[i]
        if batch[0].clock == "instructions":
            j = next((k for k in range(i, len(todo)) if todo[k][0].clock != "instructions"), len(todo))
            with ThreadPoolExecutor(max_workers=min(j - i, os.cpu_count() or 1)) as pool:
                for done in pool.map(lambda b: count(b, timeout_s), todo[i:j]):
                    deliver(done)
            i = j
            continue
        if batch[0].slot > 0:  # a round: timed only, one process, no import bill
            deliver(run_forked_batch(batch, timeout_s))
        else:
            deliver([run_isolated(batch[0], timeout_s)])
        i += 1
    return results


def batches(cells: list[RunConfig]) -> list[list[RunConfig]]:
    """Consecutive cells that run in one process: a round (same cell or probe shape, same round), or a cell's
    instruction counts (same cell or probe shape); every other cell alone."""
    from loopbench.suite import group_key

    def key(c: RunConfig) -> tuple | None:
        if c.clock == "instructions":
            return ("count", group_key(c))
        if c.slot > 0:
            return ("round", group_key(c), c.repeat)
        return None

    out: list[list[RunConfig]] = []
    for c in cells:
        if out and key(c) is not None and key(out[-1][0]) == key(c):
            out[-1].append(c)
        else:
            out.append([c])
    return out
