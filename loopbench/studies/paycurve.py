"""The pay curve's study: each point run as rounds of time-only segments P L P D P in one forked process each,
and the overhead probe in the same invocation, in rounds, at one torch thread and at the tasks' thread count.
No validation runs inside a segment (`validate_every_epoch` off): the curve is about the training step. The
points and the analysis are analysis.paycurve's; docs/pay-curve.md has the method.
"""

from __future__ import annotations

import dataclasses

import torch

from loopbench.analysis import rounds
from loopbench.analysis.paycurve import IMPLS, POINTS, Point
from loopbench.analysis.probe import SHAPES
from loopbench.core.types import RunConfig, UsageError
from loopbench.studies import overhead

ROUNDS = 8


def select(names: list[str] | None) -> tuple[Point, ...]:
    """The points named (all without names); an unknown name is refused in one line."""
    if not names:
        return POINTS
    known = {p.name: p for p in POINTS}
    for name in names:
        if name not in known:
            raise UsageError(f"--points {name!r}: not a point; choose from {'; '.join(known)}")
    return tuple(known[n] for n in dict.fromkeys(names))


def point_cells(point: Point, k: int) -> list[RunConfig]:
    """Round k of a point: its segments P L P D P (reversed every other round), in one process."""
    steps, warmup = point.segment
    over = {"validate_every_epoch": False} | point.overrides
    return [
        RunConfig(point.task, impl, preset="quick", steps=steps, warmup_steps=warmup, overrides=over, repeat=k,
                  slot=slot)
        for slot, impl in enumerate(rounds.sequence(IMPLS, k), 1)
    ]  # fmt: skip


def point_count_cells(point: Point) -> list[RunConfig]:
    """One instruction count per implementation, one torch thread, in one process (empty where not counted)."""
    if point.count is None:
        return []
    steps, warmup = point.count
    over = {"validate_every_epoch": False} | point.overrides
    return [
        RunConfig(point.task, impl, preset="quick", steps=steps, warmup_steps=warmup, overrides=over,
                  clock="instructions", threads=1)
        for impl in IMPLS
    ]  # fmt: skip


def threads() -> int:
    """The tasks' thread count: torch's default here."""
    return torch.get_num_threads()


def plan(
    points: tuple[Point, ...], count: int, task_threads: int, probe: bool = True, counts: bool = False
) -> list[RunConfig]:
    """Round by round: every point's segments, then (with `probe`) the probe's, both shapes, at one thread and at
    the tasks' thread count; then (with `counts`) each counted point's instruction counts, and the probe's in both
    shapes (its one-optimizer shape is the curve's shortest point; the GAN's work is set against the other)."""
    cells = []
    for k in range(count):
        for point in points if k % 2 == 0 else points[::-1]:
            cells += point_cells(point, k)
        for t in dict.fromkeys((1, task_threads)) if probe else ():
            for shape in SHAPES:
                cells += [
                    dataclasses.replace(c, overrides=c.overrides | {"threads": t})
                    for c in overhead.plan("cpu", shape, 1, impls=IMPLS, first=k)
                ]
    cells += [c for point in points if counts for c in point_count_cells(point)]
    return cells + [c for shape in SHAPES if counts and probe for c in overhead.count_plan("cpu", shape, IMPLS)]
