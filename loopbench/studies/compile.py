"""The compile study: every implementation of a task compiled, each run a process of its own from a cold cache.

Per task and repeat, the plain loop in eager mode (what compiling gains), then every implementation in each
compile mode, the order reversed every other repeat (A B C / C B A) so that the machine's drift weighs on
all alike. `inner` differs from `on` only for a Trainer (loopbench.harness.compiling), so the plain loop and
Fabric run it once. No rounds: a compiled run's first steps are its compile, seconds to minutes, and each
run is a process of its own so that each compile is cold and counted.
"""

from __future__ import annotations

import dataclasses

from loopbench.core.trainers import PLAIN, is_lightning
from loopbench.core.types import RunConfig


def plan(bases: list[RunConfig], impls: tuple[str, ...], modes: tuple[str, ...], backend: str, repeats: int):
    """The runs, in order: `bases` one per task (its preset, precision, steps), each in every (impl, mode)."""
    cells = []
    for base in bases:
        variants = [(PLAIN, "off")] + [
            (impl, mode) for mode in modes for impl in impls if mode == "on" or is_lightning(impl)
        ]
        for k in range(repeats):
            order = variants if k % 2 == 0 else variants[::-1]
            cells += [
                dataclasses.replace(base, impl=impl, compile=mode, compile_backend=backend, repeat=k)
                for impl, mode in order
            ]
    return cells
