"""A cell checked against its task before anything heavy runs: the task and implementation exist, the
preset with the cell's overrides applied has the right types and ranges, and the task's own check passes.
What needs no task (devices, process counts, releases, precisions) is loopbench.core.checks'."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from implementations import PROBES, impl_problem, problem, spec
from loopbench.core.checks import check_run, unsupported_reason
from loopbench.core.types import RunConfig, UsageError


def validate(config: RunConfig) -> Any:
    """Check a cell before anything heavy runs; return its resolved task config. Raises UsageError."""
    if reason := problem(config.task) or impl_problem(config.task, config.impl):
        raise UsageError(reason)
    if config.processes > 1 and config.task in PROBES:
        n = config.processes
        raise UsageError(f"--processes {n}: {config.task} measures the framework in one process; use --processes 1")
    check_run(config)
    return task_config(config)


def refuse_unsupported(config: RunConfig) -> RunConfig:
    """Validate a cell asked for by name: bad input and a cell this machine cannot run as labelled both raise."""
    validate(config)
    reason = unsupported_reason(config)
    if reason:
        raise UsageError(f"unsupported: {reason}")
    return config


def task_config(config: RunConfig) -> Any:
    """The task's preset with this cell's overrides applied: the values that will actually run."""
    task = spec(config.task)
    if config.preset not in task.PRESETS:
        raise UsageError(f"unknown preset {config.preset!r}; choose from {', '.join(task.PRESETS)}")
    base = task.PRESETS[config.preset]
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
    reason = getattr(spec(config.task), "check", lambda cfg: None)(cfg)
    if reason:
        raise UsageError(f"{config.task}: {reason}")
