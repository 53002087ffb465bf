"""A matrix of cells, run one fresh process per cell, in an order that spreads machine drift evenly.

Within a group (task, device, precision) the implementations alternate across repeats: A B C, then
C B A, then A B C, ... so slow drift of the machine (thermal, other tenants) weighs on all of them
alike instead of on whichever ran last.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import implementations
from loopbench.launch.forked import run_forked
from loopbench.launch.isolate import DEFAULT_TIMEOUT_S, run_isolated
from loopbench.overhead import PROBE_IMPLS
from loopbench.overhead import plan as probe_plan
from loopbench.precision import default_precisions, device_type
from loopbench.store import LOG_NAME, MATRIX_NAME, ResultLog, run_key
from loopbench.types import RunConfig, RunResult, UsageError


@dataclass(frozen=True)
class Limit:
    """A cell of the default matrix that runs less than its preset, and why."""

    steps: int
    warmup_steps: int
    repeats: int  # fresh-process runs per implementation, at most
    reason: str


# float16 convolutions on CPU have no fast kernels in torch (measured on an Intel Xeon with AVX-512 FP16:
# CIFAR's quick net about 4 s per step in 16-mixed, 0.07 s in 32-true); the MLP GAN's GEMMs are fine.
# One timed step in one run per implementation shows that, checks parity, and keeps the bench in budget.
STEP_LIMITS: dict[tuple[str, str, str], Limit] = {
    ("cpu", "16-mixed", "cifar_cnn"): Limit(2, 1, 1, "float16 convolutions on CPU are tens of times slower"),
    ("cpu", "16-mixed", "efficientnet_binary"): Limit(2, 1, 1, "float16 convolutions on CPU are tens of times slower"),
}


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
    probe_runs: int = 0  # runs per variant of the overhead probe, before the tasks (0: no probe)
    probe_steps: int | None = None  # None: the probe's preset
    processes: tuple[int, ...] = (1,)  # data parallel: each task also in N processes (DDP)

    def groups(self) -> list[tuple[str, str, str, int]]:
        """(task, device, precision, processes) groups, in run order."""
        return [
            (t, d, p, n)
            for t in self.tasks
            for d in self.devices
            for p in (self.precisions or default_precisions(d))
            for n in self.processes
        ]

    def cells(self) -> list[RunConfig]:
        """Every run of the matrix, in run order (A B C / C B A alternation within each group)."""
        cells = [
            cell
            for device in self.devices
            for shape, impls in PROBE_IMPLS.items()
            for cell in probe_plan(device, shape, self.probe_runs, self.probe_steps, impls)
        ]
        for task, device, precision, processes in self.groups():
            limit = self.limit(task, device, precision)
            steps, warmup = (limit.steps, limit.warmup_steps) if limit else (None, None)
            for repeat in range(min(self.repeats, limit.repeats) if limit else self.repeats):
                order = self.impls if repeat % 2 == 0 else tuple(reversed(self.impls))
                cells += [
                    RunConfig(
                        task,
                        impl,
                        device,
                        precision,
                        self.preset,
                        self.seed,
                        steps=steps,
                        warmup_steps=warmup,
                        data=self.data,
                        data_dir=self.data_dir,
                        repeat=repeat,
                        processes=processes,
                    )
                    for impl in order
                ]
        return cells

    def limit(self, task: str, device: str, precision: str) -> Limit | None:
        """The STEP_LIMITS entry of a cell whose preset would run longer; None otherwise."""
        limit = STEP_LIMITS.get((device_type(device), precision, task))
        preset_steps = implementations.spec(task).PRESETS[self.preset].steps if self.preset else 0
        return limit if limit and preset_steps > limit.steps else None

    def settings(self) -> dict:
        """What must match for a resumed matrix to be the same matrix (saved as matrix.json)."""
        precisions = list(dict.fromkeys(p for _, _, p, _ in self.groups()))  # the defaults, resolved
        return json.loads(json.dumps(dataclasses.asdict(self) | {"precisions": precisions}))


class Progress:
    """A matrix's runs: the planned ones, those already on disk, and a log that each new one joins."""

    def __init__(self, matrix: Matrix, out: Path, resume: bool):
        self.matrix, self.out = matrix, Path(out)
        self.log = ResultLog(self.out / LOG_NAME)
        self.planned = matrix.cells()
        saved, settings = self.out / MATRIX_NAME, matrix.settings()
        done = self.log.read()
        if resume and done and saved.is_file():
            previous = json.loads(saved.read_text())
            changed = sorted(k for k in previous.keys() | settings.keys() if previous.get(k) != settings.get(k))
            if changed:
                was = ", ".join(f"{k}={previous.get(k)}" for k in changed)
                now = ", ".join(f"{k}={settings.get(k)}" for k in changed)
                raise UsageError(
                    f"--resume: {self.out} holds a matrix with {was}; these arguments ask for {now}; "
                    "resume with the same arguments, or choose another output folder"
                )
        elif done and not resume:
            raise UsageError(
                f"{self.out} already holds {len(done)} finished runs; add --resume to continue that matrix, "
                "or choose another output folder"
            )
        self.out.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(settings, indent=1) + "\n")
        self.done_keys = {run_key(r.config) for r in done}

    def todo(self) -> list[RunConfig]:
        """The planned runs not yet on disk, in planned order."""
        return [c for c in self.planned if run_key(c.to_dict()) not in self.done_keys]

    def results(self) -> list[RunResult]:
        """Every finished run on disk, in planned order."""
        order = {run_key(c.to_dict()): i for i, c in enumerate(self.planned)}
        return sorted(self.log.read(), key=lambda r: order.get(run_key(r.config), len(order)))


def default_devices() -> tuple[str, ...]:
    """CUDA where a GPU is visible, else the CPU: the matrix a machine is expected to answer for."""
    import torch

    return ("cuda",) if torch.cuda.is_available() else ("cpu",)


def default_preset(devices: Iterable[str]) -> str:
    """`full` (real sizes) when every device is a GPU; `quick` where a CPU is involved."""
    return "full" if all(device_type(d) == "cuda" for d in devices) else "quick"


def progress_line(i: int, n: int, result: RunResult) -> str:
    c = result.run_config
    device = f"{c.device}x{c.processes}" if c.processes > 1 else c.device
    head = f"[{i:>3}/{n}] {c.task:<20} {c.impl:<18} {device:<6} {c.precision:<10}"
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
    log: ResultLog | None = None,
) -> list[RunResult]:
    """Run every cell in its own process; a failed cell is a result like any other.

    The probes report time only, so theirs are forked from a server with the imports done (see
    loopbench.launch.forked); the tasks' start from nothing, since their memory is reported too. Each result
    reaches `log` (flushed and synced) before the next run starts.
    """
    results = []
    for i, cell in enumerate(cells, 1):
        runner = run_forked if cell.task in implementations.PROBES else run_isolated
        result = runner(cell, timeout_s)
        results.append(result)
        if log:
            log.append(result)
        if on_result:
            on_result(i, len(cells), result)
    return results


def group_key(config: RunConfig | dict) -> tuple:
    """What the runs of one comparison share: all but the implementation, the repeat and the step counts."""
    c = config if isinstance(config, RunConfig) else RunConfig.from_dict(config)
    overrides = json.dumps(c.overrides, sort_keys=True)
    return (c.task, c.device, c.precision, c.preset, c.seed, c.data, overrides, c.processes)


def group_words(key: tuple) -> list[str]:
    """A group key as words for names and ids: task, where it ran (`cpu x2`), precision, override values."""
    task, device, precision, _, _, _, overrides, processes = key
    return [task, placement(device, processes), precision, *map(str, json.loads(overrides).values())]


def placement(device: str, processes: int = 1) -> str:
    """Where a cell ran, as the report names it: `cpu`, or `cpu x2` for two processes (data parallel)."""
    return device if processes == 1 else f"{device} x{processes}"


def by_group(results: list[RunResult]) -> dict[tuple, dict[str, list[RunResult]]]:
    """{group: {impl: [results over repeats]}}, keeping run order."""
    groups: dict[tuple, dict[str, list[RunResult]]] = {}
    for r in results:
        groups.setdefault(group_key(r.config), {}).setdefault(r.config["impl"], []).append(r)
    return groups
