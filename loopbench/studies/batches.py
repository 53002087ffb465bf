"""Runs a list of cells: each batch in the process it needs (a fresh one, a forked one for a round, one under
valgrind for instruction counts), every result to the log as it ends."""

from __future__ import annotations

import os
from collections.abc import Callable

import implementations
from loopbench.analysis.grouping import group_key
from loopbench.core.store import ResultLog
from loopbench.core.trainers import PLAIN
from loopbench.core.types import RunConfig, RunResult
from loopbench.launch import valgrind
from loopbench.launch.forked import run_forked_batch
from loopbench.launch.isolate import DEFAULT_TIMEOUT_S, run_isolated
from loopbench.studies.suite import size_segments


def progress_line(i: int, n: int, result: RunResult) -> str:
    c = result.run_config
    device = f"{c.device}x{c.world}" if c.world > 1 else c.device
    head = f"[{i:>3}/{n}] {c.task:<20} {c.impl:<18} {device:<6} {c.precision:<10}"
    head += (f" pl{c.lightning}" if c.lightning else "") + (f" compile={c.compile}" if c.compile != "off" else "")
    if not result.ok:
        return f"{head} {result.status.upper()}: {result.message}"
    if result.instructions_per_step:
        return f"{head} {result.instructions_per_step / 1e6:9.3f} M instructions/step (one thread, under valgrind)"
    metrics = " ".join(f"{k}={v:.3g}" for k, v in result.metrics.items())
    if result.samples_per_s is None:  # a job that ended within its warm-up: no timed step
        return f"{head} {result.steps_run} steps, all warm-up: no timed step  end-to-end {result.end_to_end_s:6.2f} s"
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
    a server with the imports done (see loopbench.launch.forked); a fresh run starts from nothing, since its
    memory is reported too. Each cell's instruction counts run in one process under valgrind
    (loopbench.launch.valgrind). A count does not depend on load, so counts run beside other work: beside
    one-thread timed runs (the probe's rounds) on the cores those leave free, never beside a run of several
    threads (they wait for the counts to end); counts after the last timed run, side by side, one per core.
    Each result reaches `log` (flushed and synced) as its batch ends.
    """
    results: list[RunResult] = []
    saved = log.read() if log else []  # a resumed run's: what its segments are sized from
    plain_steps, lengths = plain_step_times(saved), job_lengths(saved)

    def deliver(done: list[RunResult]) -> None:
        plain_steps.update(plain_step_times(done))
        lengths.update(job_lengths(done))
        for result in done:
            results.append(result)
            if log:
                log.append(result)
            if on_result:
                on_result(len(results), len(cells), result)

    _run(batches(cells), timeout_s, deliver, plain_steps, lengths)
    return results


def plain_step_times(results: list[RunResult]) -> dict[tuple, float]:
    """{group: the plain loop's median step} from fresh runs: what a round of segments sized by time reads."""
    return {
        group_key(r.config): r.step_time_median_s
        for r in results
        if r.ok and r.config["impl"] == PLAIN and not r.config.get("slot") and r.step_time_median_s
    }


def job_lengths(results: list[RunResult]) -> dict[tuple, int]:
    """{group: the steps its plain fresh run trained}, for a task whose segments stay within the job (its Harness)."""
    return {
        group_key(r.config): r.steps_run
        for r in results
        if r.ok and r.config["impl"] == PLAIN and not r.config.get("slot") and r.steps_run
        and getattr(getattr(implementations.spec(r.config["task"]), "HARNESS", None), "within_job", False)
    }  # fmt: skip


def _run(
    todo: list[list[RunConfig]],
    timeout_s: float,
    deliver: Callable[[list[RunResult]], None],
    plain_steps: dict[tuple, float],
    lengths: dict[tuple, int],
) -> None:
    timed = [i for i, b in enumerate(todo) if b[0].clock != "instructions"]
    cores = os.cpu_count() or 1
    with (
        valgrind.beside(cores - 1) as side,
        valgrind.beside(cores) as tail,
    ):  # beside one-thread runs; after the last timed run
        pending = []
        for i, batch in enumerate(todo):
            if batch[0].clock == "instructions":
                pending.append((side if timed and i < timed[-1] else tail).submit(valgrind.count, batch, timeout_s))
                continue
            if pending and not all(one_thread(c) for c in batch):
                for f in pending:
                    deliver(f.result())
                pending.clear()
            if batch[0].slot > 0:  # a round: timed only, one process, no import bill (forked on a CPU)
                key = group_key(batch[0])
                deliver(run_forked_batch(size_segments(batch, plain_steps.get(key), lengths.get(key)), timeout_s))
            else:
                deliver([run_isolated(batch[0], timeout_s)])
        for f in pending:
            deliver(f.result())


def one_thread(c: RunConfig) -> bool:
    """Does the run use one torch thread (the probe by default, or a run set to one)?"""
    if c.threads is not None:
        return c.threads == 1
    return c.task == "overhead_probe" and c.overrides.get("threads", 1) == 1


def batches(cells: list[RunConfig]) -> list[list[RunConfig]]:
    """Consecutive cells that run in one process: a round (same cell or probe shape, same round), or a cell's
    instruction counts (same cell or probe shape); every other cell alone."""

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
