"""What a cell asks of the machine, checked before anything heavy runs: devices, process counts, releases,
data, and whether this machine can run the precision as labelled. Bad input raises UsageError (the CLI
prints it as one line and exits 2); a cell the machine cannot run gets a reason. A task's own settings are
checked by the registry (implementations.settings), which calls this first."""

from __future__ import annotations

import functools
import math
import os
import warnings
from pathlib import Path

import torch

from loopbench.core import releases
from loopbench.core.precision import device_type, resolve_precision
from loopbench.core.types import ALLOCATORS, COMPILE_BACKENDS, COMPILE_MODES, DataError, RunConfig, UsageError


def check_run(config: RunConfig) -> None:
    """Check what a cell asks of this machine and of torch, whatever its task. Raises UsageError or DataError."""
    if config.compile not in COMPILE_MODES or config.compile_backend not in COMPILE_BACKENDS:
        raise UsageError(
            f"--compile {config.compile} --compile-backend {config.compile_backend}: choose --compile from "
            f"{', '.join(COMPILE_MODES)} and --compile-backend from {', '.join(COMPILE_BACKENDS)}"
        )
    if config.lightning is not None:
        releases.check(config.lightning)
    if config.allocator not in ALLOCATORS:
        raise UsageError(f"allocator {config.allocator!r}: choose from {', '.join(ALLOCATORS)}")
    try:
        kind = device_type(config.device)
        resolve_precision(config.precision)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(
                f"--device {config.device}: no CUDA device is visible to torch {torch.__version__}; use --device cpu"
            )
        index = torch.device(config.device).index or 0
        if index >= torch.cuda.device_count():
            raise UsageError(f"--device {config.device}: only {torch.cuda.device_count()} CUDA device(s) visible")
    _check_processes(config, kind)
    if not config.slowdown_us >= 0 or config.slowdown_us == float("inf"):
        raise UsageError(f"--slowdown-us must be 0 or more microseconds, got {config.slowdown_us:g}")
    if config.data not in ("synthetic", "real"):
        raise UsageError(f"unknown data source {config.data!r}; choose from synthetic, real")
    if config.data_dir and config.data != "real":
        raise UsageError("--data-dir is read only with --data real; add --data real or leave --data-dir out")
    if config.data == "real":
        if not config.data_dir:
            raise DataError("--data real needs --data-dir PATH (an existing folder for the data set)")
        if not Path(config.data_dir).is_dir():
            raise DataError(
                f"--data-dir {config.data_dir}: no such folder; create it (the data set is "
                "downloaded into it where the task allows) or use --data synthetic"
            )


def _check_processes(config: RunConfig, kind: str) -> None:
    """Data parallel needs a device (a CPU core, or a GPU) per process, and a job that can run that way."""
    n = config.processes
    if n < 1:
        raise UsageError(f"--processes must be at least 1, got {n}")
    if n == 1:
        return
    if kind == "cpu":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        if n > cores:
            raise UsageError(f"--processes {n}: this machine has {cores} CPU cores; one process per core at most")
    else:
        if torch.device(config.device).index is not None:
            raise UsageError(f"--processes {n} uses GPUs 0..{n - 1}, one per process: give --device cuda")
        if n > torch.cuda.device_count():
            raise UsageError(
                f"--processes {n}: {torch.cuda.device_count()} GPU(s) visible, and each process needs its own"
            )


@functools.cache
def cpu_autocast_works(dtype_name: str) -> bool:
    """Does this torch build autocast to `dtype_name` on CPU? (Where it cannot, it warns and runs float32.)"""
    dtype = getattr(torch, dtype_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.autocast("cpu", dtype=dtype):
            out = torch.nn.functional.linear(torch.ones(2, 2), torch.ones(2, 2))
    return out.dtype == dtype


def unsupported_reason(config: RunConfig) -> str | None:
    """Why this machine cannot run the cell as labelled, or None if it can."""
    plan, kind = resolve_precision(config.precision), device_type(config.device)
    if kind == "cpu" and plan.autocast_dtype and not cpu_autocast_works(plan.autocast_dtype):
        return (
            f"torch {torch.__version__} cannot autocast to {plan.autocast_dtype} on this CPU; use --precision 32-true"
        )
    if kind == "cuda" and plan.name == "bf16-mixed" and not torch.cuda.is_bf16_supported():
        return f"--device {config.device}: this GPU has no bfloat16 support; use --precision 16-mixed"
    return None


# -- the command line's flags -------------------------------------------------------------------


def release(version: str | None) -> str | None:
    """None for the installed release (the default), else the version, refused in one line if not allowed."""
    if version is None or version == releases.installed():
        return None
    releases.check(version)
    return str(Path(version).expanduser().resolve()) if releases.is_path(version) else version  # for every process


def positive(flag: str, value: float | None) -> None:
    if value is not None and not (value > 0 and math.isfinite(value)):
        raise UsageError(f"{flag} must be a positive number, got {value:g}")


def folder(flag: str, path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path}: exists and is not a folder; name a folder")


def json_target(path: Path | None) -> None:
    if path is not None and path.is_dir():
        raise UsageError(f"--json {path}: is a folder; name a file, e.g. {path / 'result.json'}")
