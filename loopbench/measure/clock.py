"""The step clock: per-step times and the steady-state window of a run, the one place where timing discipline lives.

The step clock adds no per-step host/device sync: on CUDA each step boundary records an event
(asynchronous), on CPU it reads `perf_counter` (the CPU is synchronous anyway). The measured window
starts with one synchronisation right after the last warm-up step and ends with one after the last step.
On CUDA the host's own time between step ends is kept as well: where it is shorter than the device's,
the host's work (a Trainer's overhead included) is hidden behind GPU work. Across the window the
machine's CPU steal time (/proc/stat: time the hypervisor gave this VM's CPUs to others) is recorded,
so a disturbed run is visible, and so is the process's own CPU time per wall-clock second (for a
single-threaded job, well below 1 means it was kept off the CPU, by the hypervisor or by another process).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from loopbench.measure import callgrind


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepClock:
    """Per-step times and the steady-state window of a training run.

    Call `tick()` once at the end of every optimisation step (every batch), then `stop()`.
    """

    def __init__(self, device: torch.device, warmup_steps: int, at_window: Callable[[], None] | None = None):
        """`at_window`: called as the window opens (before its clock starts), once; nothing is added per step."""
        self.device = device
        self.at_window = at_window
        self.warmup_steps = warmup_steps
        self.cuda = device.type == "cuda"
        self.steps = 0
        self.window_start: float | None = None
        self.window_end: float | None = None
        self._cpu_at_start = cpu_times()
        self.steal_fraction: float | None = None
        self.skipped_s = 0.0  # inside the window, spent between steps on other work (validation, checkpoints)
        self._process_at_start = time.process_time()
        self.cpu_share: float | None = None
        self.counting = callgrind.counting()  # under valgrind: count the window's instructions
        if at_window and warmup_steps == 0:
            at_window()
        synchronize(device)
        self.start = time.perf_counter()
        # each step's (start, end): a step starts where the last ended, or where work between steps ended (skip)
        self._begin_host, self._begin = self.start, self._stamp()
        self._host: list[float] = []
        self._spans: list[tuple[Any, Any]] = []
        if self.counting and warmup_steps == 0:  # no warm-up: the window is the whole run
            callgrind.window_opens()

    def _stamp(self) -> Any:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def tick(self) -> None:
        self.steps += 1
        end_host, end = time.perf_counter(), self._stamp()
        self._host.append(end_host - self._begin_host)
        self._spans.append((self._begin, end))
        self._begin_host, self._begin = end_host, end
        if self.steps == self.warmup_steps:
            if self.at_window:
                self.at_window()
            synchronize(self.device)  # once, outside the window: the window starts on an idle device
            self.window_start = time.perf_counter()
            self._cpu_at_start = cpu_times()
            self._process_at_start = time.process_time()
            if self.counting:
                callgrind.window_opens()

    def since_last_step(self) -> float:
        """Seconds since the current step began: the last step's end, or the end of work between steps (skip)."""
        return time.perf_counter() - self._begin_host

    def skip(self, seconds: float) -> None:
        """`seconds` just spent between two steps on other work: neither the next step's time nor the window's."""
        if self.window_end is not None:  # after the last step: nothing left to keep it out of
            return
        self._begin_host, self._begin = time.perf_counter(), self._stamp()  # the next step starts now
        if self.window_start is not None or self.warmup_steps == 0:
            self.skipped_s += seconds

    def stop(self) -> None:
        if self.counting:
            callgrind.window_closes(callgrind.LABEL["run"])
        synchronize(self.device)
        self.window_end = time.perf_counter()
        if self.window_start is None:  # no warm-up requested: the window is the whole run
            self.window_start = self.start
        self.steal_fraction = steal_fraction(self._cpu_at_start, cpu_times())
        wall = self.window_end - self.window_start
        self.cpu_share = (time.process_time() - self._process_at_start) / wall if wall > 0 else None

    def step_times(self) -> list[float]:
        """Seconds per step: device time between step ends on CUDA, wall time on CPU."""
        if self.cuda:
            return [a.elapsed_time(b) / 1e3 for a, b in self._spans]
        return [b - a for a, b in self._spans]

    def summary(self, batch_size: int) -> dict[str, Any]:
        times = self.step_times()
        steady = times[self.warmup_steps :] or times
        host = self._host
        host_steady = host[self.warmup_steps :] or host
        measured_steps = self.steps - min(self.warmup_steps, self.steps)
        window = self.window_end - self.window_start - self.skipped_s
        return {
            "step_times_s": times,
            "warmup_steps": self.warmup_steps,
            "step_time_median_s": statistics.median(steady) if steady else None,
            "step_time_p90_s": percentile(steady, 90) if steady else None,
            "window_s": window,
            "samples_per_s": batch_size * measured_steps / window if measured_steps and window > 0 else None,
            "end_to_end_s": self.window_end - self.start,
            "host_step_time_median_s": statistics.median(host_steady) if host_steady else None,
            "cpu_steal_fraction": self.steal_fraction,
            "cpu_share": self.cpu_share,
        }


def cpu_times() -> tuple[int, int] | None:
    """(steal, total) clock ticks of all this machine's CPUs so far, from /proc/stat; None where unreadable."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice: already counted in user and nice]
    return (fields[7], sum(fields[:8])) if len(fields) >= 8 else None


def steal_fraction(start: tuple[int, int] | None, end: tuple[int, int] | None) -> float | None:
    """The share of the machine's CPU time stolen by the hypervisor between two `cpu_times()` readings."""
    if start is None or end is None or end[1] <= start[1]:
        return None
    return (end[0] - start[0]) / (end[1] - start[1])


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile, numpy's default method, without numpy."""
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)
