"""The two contracts between the harness and the tasks: what to run, and what came out."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATUSES = ("ok", "unsupported", "oom", "timeout", "error")
SCHEMA_VERSION = 2  # of a saved RunResult: 2 added rounds (slot), clocks and instruction counts


class UsageError(ValueError):
    """Bad input: one readable line for the user (the CLI exits with 2)."""


class DataError(UsageError):
    """The requested data cannot be had (missing folder, no network for a download)."""


@dataclass(frozen=True)
class DataSource:
    """Where a task's `build_data` takes its data from: generated, or the real set in a folder."""

    kind: str  # synthetic | real
    dir: Path | None


# torch.compile as a cell's axis (loopbench.harness.compiling): off; on, as each framework documents; inner, the
# LightningModule's own nets in place. The backend: inductor (torch.compile's default), or eager (capture alone).
COMPILE_MODES = ("off", "on", "inner")
COMPILE_BACKENDS = ("inductor", "eager")
# who starts a data-parallel cell's processes (loopbench.launch): local, this machine's N processes by the suite's own
# launcher; torchrun or slurm, every process of the command is one rank that torchrun (or srun) started, on any nodes
LAUNCHERS = ("local", "torchrun", "slurm")
# the memory allocator of a run's process, as glibc tunables (GLIBC_TUNABLES, read at the process's start): glibc as
# the environment sets it; or glibc keeping what it got: no mmap below 32 MiB and no trim back to the system, so a
# step's freed blocks are reused, never returned and faulted in again
ALLOCATORS = {
    "glibc": "",
    "glibc-kept": "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=17179869184",
}


@dataclass(frozen=True)
class RunConfig:
    """One cell of the matrix. `None` means "the preset's value"; the resolved values are recorded."""

    task: str
    impl: str
    device: str = "cpu"
    precision: str = "32-true"
    preset: str = "smoke"
    seed: int = 0
    steps: int | None = None
    warmup_steps: int | None = None
    batch_size: int | None = None
    data: str = "synthetic"  # synthetic | real
    data_dir: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # task hyperparameters, e.g. {"lr": 0.1}
    repeat: int = 0  # which fresh-process repeat of its cell this run is (a suite's bookkeeping)
    processes: int = 1  # data parallel: N processes a node, one device (or CPU share) each; global batch N x batch
    nodes: int = 1  # data parallel across machines: `processes` on each of `nodes` (torchrun's --nnodes)
    launcher: str = "local"  # who started the processes (LAUNCHERS)
    slot: int = 0  # the run's place in its round, where several runs share one process (the overhead probe)
    clock: str = "time"  # time: wall (or CUDA) clock; instructions: counted under valgrind's callgrind
    lightning: str | None = None  # a Lightning release other than the installed one (loopbench.core.releases)
    threads: int | None = None  # torch's intra-op threads for the run (None: torch's default, one per core)
    slowdown_us: float = 0.0  # busy work added to every step by the harness: a known slowdown, to test a compare
    segment_s: float | None = None  # a segment sized by time (CUDA): its steps follow from the cell's plain step
    # the in-place split (loopbench.measure.split): None where it applies (timed CPU runs of one process); True also
    # under a count (to count what its timers cost); False never
    split: bool | None = None
    evaluate: bool = True  # False: no held-out evaluation after the steps (a cell whose steps are limited)
    compile: str = "off"  # torch.compile: off | on (as each framework documents) | inner (loopbench.harness.compiling)
    compile_backend: str = "inductor"  # torch.compile's backend; eager: dynamo's capture alone
    compile_cache: str | None = None  # inductor's on-disk cache: None, a new empty folder; else this folder, kept
    collectives: bool = False  # record the process group's collectives per step (loopbench.measure.collectives)
    allocator: str = "glibc"  # the run's process's malloc settings (ALLOCATORS)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        return cls(**d)

    @property
    def world(self) -> int:
        """Processes in all: the data-parallel world size."""
        return self.processes * self.nodes

    @property
    def label(self) -> str:
        ranks = f"/x{self.processes}" if self.processes > 1 else ""
        ranks = f"/{self.nodes}nodes{ranks or '/x1'}" if self.nodes > 1 else ranks
        release = f"/pl{self.lightning}" if self.lightning else ""
        ranks += f"/t{self.threads}" if self.threads else ""
        ranks += f"/slowdown{self.slowdown_us:g}us" if self.slowdown_us else ""
        ranks += {None: "", True: "/split", False: "/unsplit"}[self.split]
        ranks += "" if self.compile == "off" else f"/compile-{self.compile}-{self.compile_backend}"
        ranks += "/collectives" if self.collectives else ""
        ranks += f"/{self.allocator}" if self.allocator != "glibc" else ""
        return f"{self.task}/{self.impl}{release}/{self.device}{ranks}/{self.precision}/{self.preset}/seed{self.seed}"


@dataclass
class RunResult:
    """Everything one cell produced. JSON-serialisable except `weights`, which stays in memory."""

    config: dict[str, Any]
    status: str = "ok"
    message: str = ""
    task_config: dict[str, Any] = field(default_factory=dict)  # the resolved preset
    data: dict[str, Any] = field(default_factory=dict)  # source, sizes, class balance
    losses: dict[str, list[float]] = field(default_factory=dict)  # per step, one list per loss
    step_times_s: list[float] = field(default_factory=list)  # every step, warm-up included
    warmup_steps: int = 0
    batch_size: int = 0
    samples_per_s: float | None = None  # steady state, warm-up excluded
    step_time_median_s: float | None = None
    step_time_p90_s: float | None = None
    window_s: float | None = None  # the measured (post-warm-up) training window
    end_to_end_s: float | None = None  # from train() entry to the last step: setup included
    host_step_time_median_s: float | None = None  # the host's own time per step (differs from the above on CUDA)
    cpu_steal_fraction: float | None = None  # share of the machine's CPU time stolen by the hypervisor, in the window
    cpu_share: float | None = None  # the process's CPU seconds per wall second in the window (threads add up)
    work_times_s: list[float] = field(default_factory=list)  # the in-place split: the model's own work, per step
    rest_time_median_s: float | None = None  # the median over timed steps of a step less the model's own work
    instructions_per_step: float | None = None  # clock "instructions": guest instructions per step in the window
    simulated_per_step: dict[str, float] = field(default_factory=dict)  # callgrind's simulated misses (experiments)
    peak_cuda_allocated_bytes: int | None = None
    peak_cuda_reserved_bytes: int | None = None
    peak_rss_bytes: int | None = None
    peak_rss_scope: str | None = None  # "training": since the run started; "process": since the process did
    rss_at_start_bytes: int | None = None
    forward_dtype: str | None = None  # the dtype the model's forward produced in the first step
    precision_via: str | None = None  # how the implementation applied the precision, in its own API
    metrics: dict[str, float] = field(default_factory=dict)
    # the whole job (a task that validates every epoch): what each implementation computed and kept
    steps_run: int | None = None  # fewer than asked for where early stopping ended training
    val_metrics: list[dict[str, float]] = field(default_factory=list)  # per epoch, through the implementation
    between_steps_s: dict[str, list[float]] = field(default_factory=dict)  # validation, checkpoint, ...: each time
    best_epoch: int | None = None  # the validation (1-based) after which the kept weights were saved
    best_weights_digest: str | None = None
    job_s: float | None = None  # the whole job: from train() entry to its end, validation and checkpoints included
    startup_s: float | None = None  # a job that marks its first batch: from train() entry to it
    logged: dict[str, list[float]] = field(default_factory=dict)  # "hook/name": each value the job logged
    weights_digest: str | None = None
    compiled: dict[str, Any] = field(default_factory=dict)  # torch.compile: graphs, breaks, recompiles (reasons)
    collectives: dict[str, Any] = field(default_factory=dict)  # per step: each collective's calls and time
    device_work: dict[str, Any] = field(default_factory=dict)  # CUDA: one step's FLOPs and kernel time, the GPU's peak
    ranks: list[dict[str, Any]] = field(default_factory=list)  # data parallel: each process's own measurements
    artifacts: dict[str, Any] = field(default_factory=dict)  # small task extras, e.g. sample grids
    env: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    weights: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def run_config(self) -> RunConfig:
        return RunConfig.from_dict(self.config)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "weights"}
        return json.loads(json.dumps(d))  # a deep copy, and proof that it serialises

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunResult:
        names = {f.name for f in dataclasses.fields(cls)} - {"weights"}
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def failed(cls, config: RunConfig, status: str, message: str, env: dict | None = None) -> RunResult:
        assert status in STATUSES, status
        return cls(config=config.to_dict(), status=status, message=message, env=env or {})
