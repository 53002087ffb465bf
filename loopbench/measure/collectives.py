"""The collectives of every step, from the process group's own record: what each side asks of the other processes.

torch's profiler records each collective that the process group runs as an event of its backend's name
(`gloo:all_reduce`, `gloo:broadcast`, `nccl:...`), whoever asked for it: DDP's reducer (the gradients), a
framework's own calls (Lightning's broadcast of a "SIGTERM received" flag before every batch, since 2.5), or the
loop's.
The profiler runs over the timed window only (after the warm-up), so the counts are per training step. An event's
time runs from the collective's start to its completion on the backend's thread: for a blocking collective that is
time the step waits (the slowest process's arrival included); DDP's gradient all-reduce overlaps the backward.
On CUDA, the window also counts host-device syncs (torch's sync debug mode): a collective's result read on the
host (`.item()`) is one each step. The profiler costs time of its own: these runs count, they are not the timed runs.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter, defaultdict
from typing import Any

import torch

BACKENDS = ("gloo:", "nccl:", "mpi:", "ucc:")


class Collectives:
    """`start()` at the window's start, `stop(steps)` at its end; `summary()` per step."""

    def __init__(self, device: torch.device):
        self.device = device
        self._profile: torch.profiler.profile | None = None
        self._syncs: warnings.catch_warnings | None = None
        self._caught: list[warnings.WarningMessage] = []
        self.calls: dict[str, int] = {}
        self.time_s: dict[str, float] = {}
        self.syncs: int | None = None
        self.steps = 0

    def start(self) -> None:
        os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # the profiler's own log lines, on stderr, say nothing here
        self._profile = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
        self._profile.start()
        if self.device.type == "cuda":
            self._syncs = warnings.catch_warnings(record=True)
            self._caught = self._syncs.__enter__()
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")

    def stop(self, steps: int) -> None:
        if self._profile is None:
            return
        if self._syncs is not None:
            torch.cuda.set_sync_debug_mode("default")
            self._syncs.__exit__(None, None, None)
            self.syncs = sum("synchronizing" in str(w.message) for w in self._caught)
        self._profile.stop()
        calls: Counter[str] = Counter()
        time_s: dict[str, float] = defaultdict(float)
        for event in self._profile.events():
            if event.name.startswith(BACKENDS):
                calls[event.name] += 1
                time_s[event.name] += event.cpu_time_total / 1e6
        self.calls, self.time_s, self.steps, self._profile = dict(calls), dict(time_s), steps, None

    def summary(self) -> dict[str, Any]:
        """Per step: calls and seconds of each collective, and (CUDA) host-device syncs; {} where none was taken."""
        if not self.steps:
            return {}
        per_step = {name: n / self.steps for name, n in sorted(self.calls.items())}
        return {
            "steps": self.steps,
            "calls_per_step": per_step,
            "time_s_per_step": {name: self.time_s[name] / self.steps for name in per_step},
            "syncs_per_step": None if self.syncs is None else self.syncs / self.steps,
        }
