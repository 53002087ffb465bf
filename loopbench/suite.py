"""A matrix of cells, run one fresh process per cell, in an order that spreads machine drift evenly.

Within a group (task, device, precision) the implementations alternate across repeats: A B C, then
C B A, then A B C, ... so slow drift of the machine (thermal, other tenants) weighs on all of them
alike instead of on whichever ran last.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import implementations
from loopbench.isolate import DEFAULT_TIMEOUT_S, run_isolated
from loopbench.precision import default_precisions, device_type
from loopbench.types import RunConfig, RunResult


@dataclass(frozen=True)
class Matrix:
    tasks: tuple[str, ...] = implementations.TASKS
    impls: tuple[str, ...] = tuple(implementations.IMPLS)
    devices: tuple[str, ...] = ("cpu",)
    precisions: tuple[str, ...] | None = None  # None: the default precisions of each device
    preset: str = "quick"
    repeats: int = 2
    seed: int = 0
    data: str = "synthetic"
    data_dir: str | None = None

    def groups(self) -> list[tuple[str, str, str]]:
        """(task, device, precision) groups, in run order."""
        return [(t, d, p) for t in self.tasks for d in self.devices for p in (self.precisions or default_precisions(d))]

    def cells(self) -> list[RunConfig]:
        """Every run of the matrix, in run order (A B C / C B A alternation within each group)."""
        cells = []
        for task, device, precision in self.groups():
            for repeat in range(self.repeats):
                order = self.impls if repeat % 2 == 0 else tuple(reversed(self.impls))
                cells += [
                    RunConfig(
                        task, impl, device, precision, self.preset, self.seed, data=self.data, data_dir=self.data_dir
                    )
                    for impl in order
                ]
        return cells


def default_devices() -> tuple[str, ...]:
    """CUDA where a GPU is visible, else the CPU: the matrix a machine is expected to answer for."""
    import torch

    return ("cuda",) if torch.cuda.is_available() else ("cpu",)


def default_preset(devices: Iterable[str]) -> str:
    """`full` (real sizes) when every device is a GPU; `quick` where a CPU is involved."""
    return "full" if all(device_type(d) == "cuda" for d in devices) else "quick"


def progress_line(i: int, n: int, result: RunResult) -> str:
    c = result.run_config
    head = f"[{i:>3}/{n}] {c.task:<20} {c.impl:<18} {c.device:<6} {c.precision:<10}"
    if not result.ok:
        return f"{head} {result.status.upper()}: {result.message}"
    metrics = " ".join(f"{k}={v:.3g}" for k, v in result.metrics.items())
    return (
        f"{head} {result.samples_per_s:>9.1f} samples/s  median step {result.step_time_median_s * 1e3:7.2f} ms"
        f"  end-to-end {result.end_to_end_s:6.2f} s  {metrics}"
    )


def run_cells(
    cells: list[RunConfig],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    on_result: Callable[[int, int, RunResult], None] | None = None,
) -> list[RunResult]:
    """Run every cell in its own process; a failed cell is a result like any other."""
    results = []
    for i, cell in enumerate(cells, 1):
        result = run_isolated(cell, timeout_s)
        results.append(result)
        if on_result:
            on_result(i, len(cells), result)
    return results


def group_key(config: RunConfig | dict) -> tuple:
    c = config if isinstance(config, RunConfig) else RunConfig.from_dict(config)
    return (c.task, c.device, c.precision, c.preset, c.seed, c.data)


def by_group(results: list[RunResult]) -> dict[tuple, dict[str, list[RunResult]]]:
    """{group: {impl: [results over repeats]}}, keeping run order."""
    groups: dict[tuple, dict[str, list[RunResult]]] = {}
    for r in results:
        groups.setdefault(group_key(r.config), {}).setdefault(r.config["impl"], []).append(r)
    return groups
