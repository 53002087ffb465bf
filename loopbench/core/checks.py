"""What a cell may be, checked before anything heavy runs: names, devices, process counts, settings
and their ranges, and whether this machine can run the precision as labelled. Bad input raises
UsageError (the CLI prints it as one line and exits 2); a cell the machine cannot run gets a reason."""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import warnings
from pathlib import Path
from typing import Any

import torch

import implementations
from loopbench.core import releases
from loopbench.core.precision import device_type, resolve_precision
from loopbench.core.types import ALLOCATORS, COMPILE_BACKENDS, COMPILE_MODES, DataError, RunConfig, UsageError


def task_config(config: RunConfig) -> Any:
    """The task's preset with this cell's overrides applied: the values that will actually run."""
    spec = implementations.spec(config.task)
    if config.preset not in spec.PRESETS:
        raise UsageError(f"unknown preset {config.preset!r}; choose from {', '.join(spec.PRESETS)}")
    base = spec.PRESETS[config.preset]
    defaults = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    unknown = sorted(set(config.overrides) - defaults.keys())
    if unknown:
        raise UsageError(f"unknown {config.task} setting(s) {', '.join(unknown)}; known: {', '.join(sorted(defaults))}")
    changes = {k: _typed(k, v, defaults[k]) for k, v in config.overrides.items()}
    if config.steps is not None:
        changes["steps"] = config.steps
        changes.setdefault("warmup_steps", min(base.warmup_steps, max(config.steps - 1, 0)))
    for name in ("batch_size", "warmup_steps"):
        if getattr(config, name) is not None:
            changes[name] = getattr(config, name)
    cfg = dataclasses.replace(base, **changes)
    _check_ranges(config, cfg)
    return cfg


def _typed(name: str, value: Any, default: Any) -> Any:
    """`value` as the type of the setting's default (an int is a float where a float is wanted), or UsageError."""
    kind = type(default)
    if isinstance(default, tuple):
        item = type(default[0]) if default else object
        if isinstance(value, (tuple, list)) and value and all(_is(v, item) for v in value):
            return tuple(float(v) if item is float else v for v in value)
        example = f"({', '.join(map(str, default))})"
        raise UsageError(f"--set {name}={value!r}: {name} must be a tuple of {item.__name__}, e.g. {name}='{example}'")
    if _is(value, kind):
        return float(value) if kind is float else value
    raise UsageError(f"--set {name}={value!r}: {name} must be {kind.__name__}, e.g. {name}={default!r}")


def _is(value: Any, kind: type) -> bool:
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, kind)


SHARED_POSITIVE = ("lr", "test_size", "val_batch_size")


def _check_ranges(config: RunConfig, cfg: Any) -> None:
    """Values that parse but make no sense: caught here, before any data is built."""
    steps = cfg.steps if cfg.steps is not None else math.inf  # None: a job that decides its own length
    if steps < 1 or cfg.batch_size < 1:
        raise UsageError("--steps and --batch-size must be at least 1")
    if not 0 <= cfg.warmup_steps < steps:
        raise UsageError(f"--warmup-steps must be in [0, steps); got {cfg.warmup_steps} with {cfg.steps} steps")
    if config.seed < 0:
        raise UsageError(f"--seed must be 0 or more, got {config.seed}")
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        values = value if isinstance(value, tuple) else (value,)
        if any(not isinstance(v, bool) and isinstance(v, (int, float)) and v < 0 for v in values):
            raise UsageError(f"{config.task} setting {f.name} must not be negative, got {value}")
    # the settings that several tasks share, checked in every task that has them (a user's module has none)
    for name in SHARED_POSITIVE:
        if hasattr(cfg, name) and getattr(cfg, name) <= 0:
            raise UsageError(f"{config.task}: {name} must be positive, got {getattr(cfg, name)}")
    if hasattr(cfg, "train_size") and cfg.batch_size > cfg.train_size:
        raise UsageError(
            f"--batch-size {cfg.batch_size} is larger than the training set ({cfg.train_size} samples in the "
            f"{config.preset} preset); lower --batch-size or raise --set train_size=N"
        )
    if getattr(cfg, "patience", 0) and not cfg.validate_every_epoch:
        raise UsageError(
            f"{config.task}: patience={cfg.patience} needs validate_every_epoch=True (it counts validations)"
        )
    problem = getattr(implementations.spec(config.task), "check", lambda cfg: None)(cfg)
    if problem:
        raise UsageError(f"{config.task}: {problem}")


def validate(config: RunConfig) -> Any:
    """Check a cell before anything heavy runs; return its resolved task config. Raises UsageError."""
    if reason := implementations.problem(config.task):
        raise UsageError(reason)
    if reason := implementations.impl_problem(config.task, config.impl):
        raise UsageError(reason)
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
    return task_config(config)


def _check_processes(config: RunConfig, kind: str) -> None:
    """Data parallel needs a device (a CPU core, or a GPU) per process, and a job that can run that way."""
    n = config.processes
    if n < 1:
        raise UsageError(f"--processes must be at least 1, got {n}")
    if n == 1:
        return
    if config.task in implementations.PROBES:
        raise UsageError(f"--processes {n}: {config.task} measures the framework in one process; use --processes 1")
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


def refuse_unsupported(config: RunConfig) -> RunConfig:
    """Validate a cell asked for by name: bad input and a cell this machine cannot run as labelled both raise."""
    validate(config)
    reason = unsupported_reason(config)
    if reason:
        raise UsageError(f"unsupported: {reason}")
    return config


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
