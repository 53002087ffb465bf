"""A matrix of cells, run one fresh process per cell, in an order that spreads machine drift evenly.

Within a group (task, device, precision) the implementations alternate across repeats: A B C, then
C B A, then A B C, ... so slow drift of the machine (thermal, other tenants) weighs on all of them
alike instead of on whichever ran last.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import implementations
from loopbench.analysis import rounds
from loopbench.analysis.probe import HEADLINE_IMPLS, SHAPES
from loopbench.core.limits import Limit, step_limit
from loopbench.core.precision import default_precisions, device_type
from loopbench.core.store import LOG_NAME, MATRIX_NAME, ResultLog, run_key
from loopbench.core.types import RunConfig, RunResult, UsageError
from loopbench.measure.env import cpu_number_formats, environment, machine_name
from loopbench.studies.overhead import PROBE_IMPLS, count_plan
from loopbench.studies.overhead import plan as probe_plan

# A CUDA segment is sized by time, not steps: one step of a GPU task is microseconds to milliseconds, too short to
# time against launch jitter. Its steps follow from the cell's fresh plain run (size_segments); the task's SEGMENT
# steps are the least, and MAX_SEGMENT_STEPS the most.
SEGMENT_S = 0.5
MAX_SEGMENT_STEPS = 2_000
FRESH_RUNS = 8  # fresh-process runs of a cell that has no rounds (data parallel), where --fresh-runs does not say


@dataclass(frozen=True)
class Matrix:
    tasks: tuple[str, ...] = implementations.TASKS
    impls: tuple[str, ...] = tuple(implementations.IMPLS)
    devices: tuple[str, ...] = ("cpu",)
    precisions: tuple[str, ...] | None = None  # None: the default precisions of each device
    preset: str = "quick"
    repeats: int | None = None  # rounds of time-only segments per task cell (None: the task's HARNESS.rounds)
    fresh_runs: int | None = None  # fresh-process runs per implementation and cell (None: 1; FRESH_RUNS without rounds)
    seed: int = 0
    data: str = "synthetic"
    data_dir: str | None = None
    probe_repeats: int = 0  # rounds of the overhead probe, before the tasks (0: no probe)
    probe_steps: int | None = None  # steps per probe segment; None: the probe's
    probe_count: bool = False  # and one instruction count per probe variant (under valgrind)
    task_counts: bool = False  # and each task cell's instruction count per implementation (one thread)
    probe_threads: tuple[int, ...] = (1,)  # the probe's torch threads: one (the headline), and the tasks' count
    ladder: bool = False  # the probe's whole ladder too (one thread, automatic optimization)
    processes: tuple[int, ...] = (1,)  # data parallel: each task also in N processes (DDP)
    steps: int | None = None  # None: each task's preset
    warmup_steps: int | None = None
    batch_size: int | None = None
    overrides: tuple[tuple[str, object], ...] = ()  # --set KEY=VALUE for every task
    lightning: tuple[str | None, ...] = (None,)  # Lightning releases (None: the installed one), every cell on each
    slowdown_us: float = 0.0  # busy work added to every step of every task run (a known slowdown: tests a compare)

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
        # the probe's instruction counts first: they run beside its one-thread rounds (see studies.batches), the
        # headline variants in the headline's shape, and in the GAN's too where the tasks are counted (the
        # overhead command counts the ladder too)
        cells = []
        if self.probe_repeats and self.probe_count:
            cells += [
                dataclasses.replace(c, lightning=version)
                for device in self.devices
                if device_type(device) == "cpu"  # valgrind counts a CPU's work only
                for version in self.lightning
                for shape in (SHAPES if self.task_counts else SHAPES[:1])
                for c in count_plan(device, shape, HEADLINE_IMPLS)
            ]
        cells += [  # the probe's rounds, the two shapes (and releases: A B / B A) alternating
            dataclasses.replace(cell, lightning=version, overrides=cell.overrides | _thread_override(threads))
            for device in self.devices
            for k in range(self.probe_repeats)
            for threads in self.probe_threads
            for shape in SHAPES
            for version in _alternated(self.lightning, k)
            for cell in probe_plan(device, shape, 1, self.probe_steps, self.probe_impls(threads, shape), first=k)
        ]
        for k, (task, device, precision, processes) in enumerate(self.groups()):
            for version in _alternated(self.lightning, k):
                cells += [
                    dataclasses.replace(c, lightning=version)
                    for c in self.group_cells(task, device, precision, processes)
                ]
        if self.task_counts:  # the tasks' counts last, side by side: a few minutes each under valgrind
            cells += [
                dataclasses.replace(c, lightning=version)
                for (task, device, precision, processes) in self.groups()
                for version in self.lightning
                for c in self.count_cells(task, device, precision, processes)
            ]
        return cells

    def count_cells(self, task: str, device: str, precision: str, processes: int) -> list[RunConfig]:
        """A task cell's instruction counts: each implementation once, one thread, a few steps (the task's
        COUNT); only on a CPU, one process, in cells that run their preset (valgrind has no GPU, and a step
        limit marks a cell whose steps are already too slow)."""
        if device_type(device) != "cpu" or processes != 1 or self.limit(task, device, precision):
            return []
        steps, warmup = implementations.spec(task).HARNESS.count
        return [
            self.config(task, impl, device, precision, steps, warmup, clock="instructions", threads=1)
            for impl in self.impls_of(task)
        ]

    def config(self, task: str, impl: str, device: str, precision: str, steps, warmup, **where: Any) -> RunConfig:
        """A run of this matrix: its preset, seed, batch size, data and overrides, and `where` (its repeat,
        slot, clock...)."""
        return RunConfig(
            task, impl, device, precision, self.preset, self.seed, steps=steps, warmup_steps=warmup,
            batch_size=self.batch_size, data=self.data, data_dir=self.data_dir, overrides=dict(self.overrides),
            slowdown_us=self.slowdown_us, **where,
        )  # fmt: skip

    def impls_of(self, task: str) -> tuple[str, ...]:
        """The implementations of `impls` that `task` has (Fabric's loop is optional)."""
        return tuple(i for i in self.impls if implementations.impl_problem(task, i) is None)

    def missing(self) -> list[str]:
        """Why each implementation of `impls` that a task lacks is not run: one line each, said before the runs."""
        return [
            reason
            for task in self.tasks
            for i in self.impls
            if (reason := implementations.impl_problem(task, i)) and i not in self.impls_of(task)
        ]

    def probe_impls(self, threads: int, shape: str) -> tuple[str, ...]:
        """The headline variants (the plain loop, the lean and the default Trainer); the ladder's six more would
        double the probe's share of the bench, and `loopbench overhead` measures them (with `ladder`: here too)."""
        return PROBE_IMPLS[shape] if self.ladder and threads == 1 else HEADLINE_IMPLS

    def group_cells(self, task: str, device: str, precision: str, processes: int) -> list[RunConfig]:
        """A cell's fresh-process runs (A B C / C B A), then its rounds of segments (timed only, one process
        each; `repeats`, else the task's HARNESS.rounds). A cell with a step limit, or with several processes, has
        no rounds: its fresh runs are its samples (`fresh_runs`, else FRESH_RUNS)."""
        limit = self.limit(task, device, precision)
        has_rounds = limit is None and processes == 1
        harness = implementations.spec(task).HARNESS
        runs = self.fresh_runs or (1 if has_rounds else FRESH_RUNS)
        steps, warmup = (limit.steps, limit.warmup_steps) if limit else (self.steps, self.warmup_steps)

        def cell(impl: str, repeat: int, slot: int = 0, steps=steps, warmup=warmup) -> RunConfig:
            return self.config(task, impl, device, precision, steps, warmup, repeat=repeat, processes=processes,
                               slot=slot, evaluate=limit is None)  # fmt: skip

        impls = self.impls_of(task)
        cells = []
        for repeat in range(min(runs, limit.repeats) if limit else runs):
            cells += [cell(impl, repeat) for impl in (impls if repeat % 2 == 0 else impls[::-1])]
        if has_rounds and "pytorch" in impls and len(impls) > 1:
            seg_steps, seg_warmup = harness.segment
            by_time = {"segment_s": SEGMENT_S} if device_type(device) == "cuda" or harness.by_time else {}
            for k in range(self.repeats or harness.rounds):
                cells += [
                    dataclasses.replace(cell(impl, k, slot, seg_steps, seg_warmup), **by_time)
                    for slot, impl in enumerate(rounds.sequence(impls, k), 1)
                ]
        return cells

    def limit(self, task: str, device: str, precision: str) -> Limit | None:
        """The STEP_LIMITS entry of a cell whose preset would run longer; None otherwise."""
        limit = step_limit(task, device, precision, cpu_number_formats())
        preset_steps = implementations.spec(task).PRESETS[self.preset].steps if self.preset else 0
        return limit if limit and (self.steps or preset_steps or 0) > limit.steps else None  # None: the job's own

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


def size_segments(batch: list[RunConfig], plain_step_s: float | None, job_steps: int | None = None) -> list[RunConfig]:
    """A round's segments sized by time: each times enough steps for `segment_s` at the plain loop's step time
    (its fresh run's), at least the planned steps and at most MAX_SEGMENT_STEPS, or at most the job's own
    length (`job_steps`, where its task keeps segments within the job); unchanged without a time."""
    out = []
    for c in batch:
        if c.segment_s is None or not plain_step_s or c.steps is None:
            out.append(c)
            continue
        warmup = c.warmup_steps or 0
        longest = MAX_SEGMENT_STEPS if job_steps is None else min(MAX_SEGMENT_STEPS, max(job_steps - warmup, 1))
        timed = min(max(math.ceil(c.segment_s / plain_step_s), c.steps - warmup), longest)
        out.append(dataclasses.replace(c, steps=warmup + timed))
    return out


def _thread_override(threads: int) -> dict[str, int]:
    """The probe's override for a thread count (none for one thread: the probe's default)."""
    return {} if threads == 1 else {"threads": threads}


def _alternated(versions: tuple, k: int) -> tuple:
    return versions if k % 2 == 0 else versions[::-1]


def default_devices() -> tuple[str, ...]:
    """CUDA where a GPU is visible, else the CPU: the matrix a machine is expected to answer for."""
    return ("cuda",) if torch.cuda.is_available() else ("cpu",)


def default_preset(devices: Iterable[str]) -> str:
    """`full` (real sizes) when every device is a GPU; `quick` where a CPU is involved."""
    return "full" if all(device_type(d) == "cuda" for d in devices) else "quick"


def run_folder(base: Path, devices: tuple[str, ...], resume: bool) -> Path:
    """base/<machine>/<date-time>/ for a new matrix; with `resume`, the newest such folder that holds results."""
    machine = machine_folder(base, devices)
    if resume:
        earlier = sorted(p.parent for p in machine.glob(f"*/{LOG_NAME}"))
        if not earlier:
            raise UsageError(f"nothing to resume: no earlier run folder in {machine}")
        return earlier[-1]
    return machine / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")


def machine_folder(base: Path, devices: tuple[str, ...]) -> Path:
    """base/<machine>/: where this machine's run folders go (base runs/), or its published report (base reports/)."""
    return base / machine_name(environment(torch.device(devices[0])))
