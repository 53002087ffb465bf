"""The compile study: every implementation of a task compiled, each run a process of its own from a stated cache.

Per task and repeat, the plain loop in eager mode (what compiling gains), then every implementation in each
compile mode, the order reversed every other repeat (A B C / C B A) so that the machine's drift weighs on
all alike. `inner` differs from `on` only for a Trainer (loopbench.harness.compiling), so the plain loop and
Fabric run it once. Lightning's implementations run on each release asked for; the plain loop imports no
Lightning and runs once. No rounds: a compiled run's first steps are its compile, seconds to minutes, and
each run is a process of its own so that each compile starts from its stated cache and is counted: cold (a
new empty cache each run), or warm (each variant's own cache kept across its repeats: the first is cold).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from loopbench.core.trainers import PLAIN, is_lightning
from loopbench.core.types import RunConfig


def plan(
    bases: list[RunConfig],
    impls: tuple[str, ...],
    modes: tuple[str, ...],
    backend: str,
    repeats: int,
    releases: tuple[str | None, ...] = (None,),
    caches: Path | None = None,
) -> list[RunConfig]:
    """The runs, in order: `bases` one per task (its preset, precision, steps), each in every (impl, mode,
    release). `caches`: the folder that keeps each variant's inductor cache (warm); None: every run cold."""
    cells = []
    for base in bases:
        variants = [(PLAIN, "off", None)] + [
            (impl, mode, release)
            for mode in modes
            for impl in impls
            for release in ((None,) if impl == PLAIN else releases)
            if mode == "on" or is_lightning(impl)
        ]
        for k in range(repeats):
            for impl, mode, release in variants if k % 2 == 0 else variants[::-1]:
                cell = dataclasses.replace(
                    base, impl=impl, compile=mode, compile_backend=backend, lightning=release, repeat=k
                )
                if caches is not None and mode != "off":
                    cell = dataclasses.replace(cell, compile_cache=str(caches / re.sub(r"[^\w.-]+", "-", cell.label)))
                cells.append(cell)
    return cells
