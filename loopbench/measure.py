"""Timing, memory and environment capture: the one place where measurement discipline lives.

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

import datetime
import hashlib
import importlib.metadata
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from loopbench import instructions


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepClock:
    """Per-step times and the steady-state window of a training run.

    Call `tick()` once at the end of every optimisation step (every batch), then `stop()`.
    """

    def __init__(self, device: torch.device, warmup_steps: int):
        self.device = device
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
        self.counting = instructions.counting()  # under valgrind: count the window's instructions
        synchronize(device)
        self.start = time.perf_counter()
        self._host: list[float] = [self.start]
        self._stamps: list[Any] = [self._stamp()]
        if self.counting and warmup_steps == 0:  # no warm-up: the window is the whole run
            instructions.window_opens()

    def _stamp(self) -> Any:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def tick(self) -> None:
        self.steps += 1
        self._host.append(time.perf_counter())
        self._stamps.append(self._stamp())
        if self.steps == self.warmup_steps:
            synchronize(self.device)  # once, outside the window: the window starts on an idle device
            self.window_start = time.perf_counter()
            self._cpu_at_start = cpu_times()
            self._process_at_start = time.process_time()
            if self.counting:
                instructions.window_opens()

    def skip(self, seconds: float) -> None:
        """`seconds` just spent between two steps on other work: neither the next step's time nor the window's."""
        if self.window_end is not None:  # after the last step: nothing left to keep it out of
            return
        self._host[-1] = time.perf_counter()
        self._stamps[-1] = self._stamp()
        if self.window_start is not None or self.warmup_steps == 0:
            self.skipped_s += seconds

    def stop(self) -> None:
        if self.counting:
            instructions.window_closes(instructions.LABEL["run"])
        synchronize(self.device)
        self.window_end = time.perf_counter()
        if self.window_start is None:  # no warm-up requested: the window is the whole run
            self.window_start = self.start
        self.steal_fraction = steal_fraction(self._cpu_at_start, cpu_times())
        wall = self.window_end - self.window_start
        self.cpu_share = (time.process_time() - self._process_at_start) / wall if wall > 0 else None

    def step_times(self) -> list[float]:
        """Seconds per step: device time between step ends on CUDA, wall time on CPU."""
        pairs = zip(self._stamps, self._stamps[1:], strict=False)
        if self.cuda:
            return [a.elapsed_time(b) / 1e3 for a, b in pairs]
        return [b - a for a, b in pairs]

    def summary(self, batch_size: int) -> dict[str, Any]:
        times = self.step_times()
        steady = times[self.warmup_steps :] or times
        host = [b - a for a, b in zip(self._host, self._host[1:], strict=False)]
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


# -- memory -------------------------------------------------------------------------------------


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak_rss() -> bool:
    """Start the peak-RSS counter afresh (Linux: writing 5 to clear_refs resets VmHWM); False if not possible.

    Called when training starts, so that the transient peak of building the data set in the same process
    is not counted. What is resident then (imported libraries, the data) stays in the level.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """Peak resident set size since the last reset (VmHWM), else since the process started (ru_maxrss)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def reset_cuda_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def cuda_peaks(device: torch.device) -> dict[str, int | None]:
    if device.type != "cuda":
        return {"peak_cuda_allocated_bytes": None, "peak_cuda_reserved_bytes": None}
    return {
        "peak_cuda_allocated_bytes": torch.cuda.max_memory_allocated(device),
        "peak_cuda_reserved_bytes": torch.cuda.max_memory_reserved(device),
    }


# -- weights and environment ---------------------------------------------------------------------


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of every tensor: equal digests = bitwise-equal weights."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# The instruction-set features that decide how fast (and in which kernels) float16/bfloat16 run on a CPU.
NUMBER_FORMAT_FLAGS = (
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_fp16",
    "amx_int8",
)


def _cpuinfo(key: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _cpu_model() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_number_formats() -> list[str]:
    """Which of NUMBER_FORMAT_FLAGS this CPU has (from /proc/cpuinfo), in that order."""
    flags = set((_cpuinfo("flags") or "").split())
    return [f for f in NUMBER_FORMAT_FLAGS if f in flags]


def _git(*args: str) -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def commit() -> str:
    """The commit of the code that ran, with '-dirty' when the tree had uncommitted changes."""
    sha = os.environ.get("LOOPBENCH_COMMIT") or _git("rev-parse", "--short=12", "HEAD")
    if not sha:
        return "unknown"
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", "loopbench", "implementations")
    return f"{sha}-dirty" if dirty else sha


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def lightning_version() -> str | None:
    """The Lightning this process imported (its own __version__), else the one it would import."""
    module = sys.modules.get("pytorch_lightning")
    return getattr(module, "__version__", None) if module else _version("pytorch-lightning")


def environment(device: torch.device) -> dict[str, Any]:
    """Machine, versions and commit: recorded beside every number.

    Versions come from package metadata, not imports: a plain-PyTorch run must not load Lightning
    (its memory would be charged to the wrong side).
    """
    env = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "pytorch_lightning": lightning_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": cpu_number_formats(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the kernels torch dispatches to
        "torch_threads": torch.get_num_threads(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "gpu": None,
        "cuda": torch.version.cuda,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env["gpu"] = props.name
        env["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        env["cudnn"] = torch.backends.cudnn.version()
    return env


def machine_name(env: dict[str, Any]) -> str:
    """A folder name for reports: the GPU if one was used, else the CPU, its cores and best number format.

    Two CPUs of one brand name can differ in what matters here (an Intel Xeon with AVX-512 FP16 and one
    without), so the CPU's best float16/bfloat16 feature is part of the name.
    """
    if env.get("gpu"):
        raw = env["gpu"]
    else:
        model = env.get("cpu", "cpu")
        for noise in ("(R)", "(TM)", "(tm)", "Processor", "CPU"):
            model = model.replace(noise, " ")
        model = model.split("@")[0]
        flags = env.get("cpu_flags") or []
        best = next(
            (f for f in ("amx_fp16", "avx512_fp16", "amx_bf16", "avx512_bf16", "avx512f", "avx2") if f in flags), ""
        )
        raw = f"{model}-{env.get('cpu_count')}c-{best.replace('_', '')}"
    slug = "".join(c if c.isalnum() else "-" for c in raw.lower())
    return "-".join(part for part in slug.split("-") if part)
