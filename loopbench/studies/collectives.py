"""The collectives study: which collectives each implementation's data-parallel step makes, and the time inside
them, per Lightning release; and the same cells as a job of two torchrun agents ("nodes") on this machine.

Per repeat, one batch per release (its processes start once; each cell joins a process group of its own), the
releases' order reversed every other repeat so that the machine's drift weighs on all alike. Every cell records
its collectives over the timed window (loopbench.measure.collectives). The two-node job runs the installed
release's cells once, after the repeats.
"""

from __future__ import annotations

import dataclasses

from loopbench.core.types import RunConfig


def plan(bases: list[RunConfig], impls: tuple[str, ...], releases: tuple[str | None, ...], repeats: int):
    """The batches, in order: each one release's cells, `bases` (one per task) in every implementation."""
    batches = []
    for k in range(repeats):
        for release in releases if k % 2 == 0 else releases[::-1]:
            batches.append(
                [
                    dataclasses.replace(base, impl=impl, lightning=release, repeat=k, collectives=True)
                    for base in bases
                    for impl in impls
                ]
            )
    return batches


def two_nodes(bases: list[RunConfig], impls: tuple[str, ...]) -> list[RunConfig]:
    """The installed release's cells for the two-agent job: one process on each "node", the same world size."""
    return [dataclasses.replace(base, impl=impl, processes=1, collectives=True) for base in bases for impl in impls]
