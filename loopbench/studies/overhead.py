"""The overhead probe's study: its plan (segments of the plain loop around every variant, in rounds) and the
rounds themselves, run until the headline deltas are precise enough or the time budget ends, with the
instruction counts beside them. The answer is analysis.probe's; the method is in docs/method.md.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from typing import Any

from loopbench.analysis import rounds
from loopbench.analysis.probe import HEADLINE_IMPLS, PROBE, by_release, precise
from loopbench.core.trainers import FABRIC, LADDER_IMPLS
from loopbench.core.types import RunConfig, RunResult
from loopbench.launch.forked import run_forked_batch
from loopbench.launch.valgrind import beside
from loopbench.launch.valgrind import count as count_instructions
from loopbench.studies.protocol import (
    AFTER,
    COUNT_STEPS,
    COUNT_WARMUP,
    SEGMENT_WARMUP,
    TRAIN_SIZE,
)

# What is measured of the probe: the whole ladder in the automatic shape, the headline variants in the other.
# `loopbench overhead`: the Trainers (the ladder's rungs on the one-optimizer shape) and Fabric beside them
PROBE_IMPLS = {"auto": (*LADDER_IMPLS, FABRIC), "manual": HEADLINE_IMPLS}


def plan(
    device: str,
    shape: str,
    count: int,
    steps: int | None = None,
    impls: tuple[str, ...] = LADDER_IMPLS,
    first: int = 0,
    after: str = "nothing",
) -> list[RunConfig]:
    """Rounds `first` .. `first + count - 1`: P V1 P V2 ... P, the variants reversed every other round."""
    steps = steps or AFTER[after][1]
    warmup = min(SEGMENT_WARMUP, steps // 4)
    return [
        _probe_cell(device, shape, impl, steps, warmup, after, repeat=repeat, slot=slot)
        for repeat in range(first, first + count)
        for slot, impl in enumerate(rounds.sequence(impls, repeat), 1)
    ]


def count_plan(
    device: str,
    shape: str,
    impls: tuple[str, ...] = LADDER_IMPLS,
    counts: int = 1,
    again: tuple[str, ...] = (),
    after: str = "nothing",
) -> list[RunConfig]:
    """One instruction count per variant (a count moves by well under 1%: one is the answer), then `counts - 1`
    more of the variants in `again` (all where empty): two counts of the same code show how far a count moves."""
    return [
        _probe_cell(device, shape, impl, COUNT_STEPS, COUNT_WARMUP, after, clock="instructions", repeat=k)
        for k in range(counts)
        for impl in (impls if k == 0 or not again else [i for i in impls if i in again])
    ]


def _probe_cell(device: str, shape: str, impl: str, steps: int, warmup: int, after: str, **where: Any) -> RunConfig:
    over = _overrides(shape) | AFTER[after][0]
    return RunConfig(PROBE, impl, device, "32-true", "quick", 0, steps, warmup, overrides=over, **where)


def _overrides(shape: str) -> dict[str, Any]:
    return {"shape": shape, "train_size": TRAIN_SIZE}


def run_rounds(
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
    after: str = "nothing",
) -> tuple[dict[str, Any], list[RunResult]]:
    """Rounds of every shape (and Lightning release: A B C / C B A over releases too) until `min_rounds` are
    done and the headline deltas are within `target`, or `budget_s` seconds have passed since the first; and
    (with `count`) `counts` instruction counts of each headline variant (one of every other variant). Returns
    the answer, with how it stopped, and the runs; `keep` gets each batch of runs as it ends (to save them);
    `after`: what each probe step does first (AFTER).
    A count does not depend on load, so the counts run beside the rounds (which use one thread), one process
    per release, on the cores the rounds leave free; the answer waits for the last of them."""

    def counted(version: str | None) -> list[RunResult]:
        cells = [
            c for s in shapes for c in count_plan(device, s, (count_impls or impls)[s], counts, HEADLINE_IMPLS, after)
        ]
        return count_instructions([dataclasses.replace(c, lightning=version) for c in cells], 1800)

    results: list[RunResult] = []
    with beside((os.cpu_count() or 1) - 1) as side:
        pending = [side.submit(counted, v) for v in versions] if count else []
        started, k = time.monotonic(), 0
        while True:
            for shape in shapes:
                for version in versions if k % 2 == 0 else versions[::-1]:
                    plan_k = plan(device, shape, 1, steps, impls[shape], k, after)
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
    a |= {"stopped": stopped, "target": target, "budget_s": budget_s, "timed_s": round(elapsed, 1), "after": after}
    return a, results
