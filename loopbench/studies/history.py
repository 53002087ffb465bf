"""Lightning across its releases: the overhead probe on every listed release in the same rounds (within a round
each release gets its own process, and the releases' order is reversed every other round, so drift cannot
favour one), its counts beside them, then optionally the parity checks on every release (forked runs,
smoke preset). The answer is analysis.history's; the method is in docs/releases.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from packaging.version import Version

import implementations
from loopbench.analysis.history import PARITY_PRESET, across_releases
from loopbench.analysis.probe import HEADLINE_IMPLS, PROBE, SHAPES
from loopbench.core import releases
from loopbench.core.trainers import FABRIC, LADDER_IMPLS, LEAN, PLAIN
from loopbench.core.types import RunConfig, RunResult
from loopbench.launch.forked import run_forked_batch, start_servers
from loopbench.studies import overhead

COUNTS = 2  # instruction counts per headline variant and release: the second shows how far a count moves by itself
PARITY_TASKS = ("overhead_probe", *implementations.TASKS)
PARITY_PRECISIONS = ("32-true", "bf16-mixed")


def default_versions() -> tuple[str, ...]:
    """Every listed release, and the installed one, oldest first."""
    found = set(releases.RELEASES) | ({releases.installed()} - {None})
    return tuple(sorted(found, key=Version))


def impls(ladder: bool) -> dict[str, tuple[str, ...]]:
    """The variants per shape: the headline ones, or the whole ladder in the automatic shape (timed with --ladder;
    always counted, once, which is how a change is traced to the part of the Trainer it is in)."""
    return {"auto": (*LADDER_IMPLS, FABRIC) if ladder else HEADLINE_IMPLS, "manual": HEADLINE_IMPLS}


def parity_plan(versions: tuple[str | None, ...], precisions: tuple[str, ...] = PARITY_PRECISIONS) -> list[RunConfig]:
    """Smoke runs for parity: the plain loop once per cell (it does not import Lightning), the lean Trainer per
    release. The probe in both shapes, and every task."""
    cells = []
    for task in PARITY_TASKS:
        shapes = SHAPES if task == PROBE else (None,)
        for precision in precisions:
            for shape in shapes:
                over = {"shape": shape} if shape else {}
                base = RunConfig(task, PLAIN, "cpu", precision, PARITY_PRESET, 0, overrides=over)
                cells.append(base)
                cells += [dataclasses.replace(base, impl=LEAN, lightning=v) for v in versions]
    return cells


def run_releases(
    device: str,
    versions: tuple[str | None, ...],
    min_rounds: int,
    budget_s: float,
    target: float,
    ladder: bool,
    count: bool,
    parity: bool,
    keep: Callable[[list[RunResult]], None],
    on_round: Callable[[int, dict[str, Any]], None] | None = None,
) -> tuple[dict[str, Any], list[RunResult]]:
    """The probe's rounds over all `versions` (see loopbench.studies.overhead.run_rounds), then the parity runs."""
    if device == "cpu":
        start_servers(list(versions))  # every release's imports at once, before anything is timed
    a, results = overhead.run_rounds(
        device,
        SHAPES,
        min_rounds,
        budget_s,
        target,
        None,
        count,
        on_round,
        impls(ladder),
        versions,
        keep,
        counts=COUNTS,
        count_impls=impls(True),
    )
    if parity:
        for cfg in parity_plan(versions):
            results += (got := run_forked_batch([cfg]))
            keep(got)
    out = across_releases(results, device)
    out |= {k: a[k] for k in ("stopped", "target", "budget_s", "timed_s")}
    return out, results
