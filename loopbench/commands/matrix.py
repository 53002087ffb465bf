"""The suite's matrix from its options: read the same way from the command line (`--name`) and the bench
(`--lb-name`), every cell checked before anything runs."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import implementations
from implementations.settings import refuse_unsupported, validate
from loopbench import options
from loopbench.core import releases
from loopbench.core.precision import device_type
from loopbench.core.types import UsageError
from loopbench.studies.suite import Matrix, default_devices, default_preset


def matrix_from(get: Callable[[str], Any], flag: Callable[[str], str]) -> Matrix:
    """The matrix the suite's options ask for, read the same way from the CLI (`--name`) and the bench
    (`--lb-name`): `get(dest)` gives an option's value, `flag(name)` its spelling for messages. Every cell
    is checked before anything runs (UsageError): a precision asked for by name that this machine cannot
    run is refused; among the defaults such a cell is recorded as unsupported and the rest runs."""
    if any(get(name) is not None and get(name) < 1 for name in ("repeats", "fresh_runs")):
        raise UsageError(f"{flag('repeats')} and {flag('fresh-runs')} must be at least 1")
    if get("probe_repeats") < 0 or get("probe_repeats") == 1:
        raise UsageError(f"{flag('probe-repeats')} must be 0 (no probe) or at least 2: an interval needs two rounds")
    if get("probe_steps") < 8:
        raise UsageError(f"{flag('probe-steps')} must be at least 8 (a quarter of them warm up)")
    if not (get("slowdown_us") >= 0 and math.isfinite(get("slowdown_us"))):
        raise UsageError(f"{flag('slowdown-us')} must be 0 or more microseconds, got {get('slowdown_us'):g}")
    for name in ("timeout",):
        if not (get(name) > 0 and math.isfinite(get(name))):
            raise UsageError(f"{flag(name)} must be a positive number, got {get(name):g}")
    out = get("out")
    if out is not None and out.exists() and not out.is_dir():
        raise UsageError(f"{flag('out')} {out}: exists and is not a folder; name a folder")
    devices = tuple(dict.fromkeys(get("devices") or default_devices()))
    for device in devices:
        try:
            device_type(device)
        except ValueError as e:
            raise UsageError(str(e)) from None
    for task in get("tasks") or ():
        if reason := implementations.problem(task):  # before planning reads the task's spec
            raise UsageError(reason.replace("--task ", f"{flag('tasks')} "))
    if get("counts") == "only":
        raise UsageError(f"{flag('counts')} only: the counts alone are loopbench overhead's and paycurve's; on or off")
    overrides = options.overrides(get("set"), get("pretrained"))
    matrix = Matrix(
        tasks=tuple(dict.fromkeys(get("tasks") or implementations.TASKS)),
        impls=tuple(dict.fromkeys(get("impls"))),
        devices=devices,
        precisions=tuple(dict.fromkeys(get("precisions"))) if get("precisions") else None,
        preset=get("preset") or default_preset(devices),
        repeats=get("repeats"),
        fresh_runs=get("fresh_runs"),
        seed=get("seed"),
        data=get("data"),
        data_dir=get("data_dir"),
        probe_repeats=get("probe_repeats"),
        probe_steps=get("probe_steps"),
        probe_count=True,  # where valgrind is missing, the counts come back unsupported, saying why
        task_counts=get("counts") == "on",
        processes=tuple(dict.fromkeys(get("processes"))),
        steps=get("steps"),
        warmup_steps=get("warmup_steps"),
        batch_size=get("batch_size"),
        overrides=tuple(sorted(overrides.items())),
        lightning=_releases(get("lightning"), flag("lightning")),
        slowdown_us=get("slowdown_us"),
    )
    for task in matrix.tasks:
        if not matrix.impls_of(task):
            raise UsageError(implementations.impl_problem(task, matrix.impls[0]) or f"{task}: nothing to run")
    for cell in {c.label: c for c in matrix.cells() if c.task not in implementations.PROBES}.values():
        try:
            refuse_unsupported(cell) if get("precisions") else validate(cell)
        except UsageError as e:
            raise UsageError(str(e).replace("--processes", flag("processes"))) from None
    return matrix


def _releases(asked: list[str] | None, flag: str) -> tuple[str | None, ...]:
    """The releases --lightning names (None for the installed one), each checked and installed before any run."""
    if not asked:
        return (None,)
    out = tuple(dict.fromkeys(None if v == releases.installed() else v for v in asked))
    for v in out:
        try:
            releases.site(v)
        except UsageError as e:
            raise UsageError(str(e).replace("--lightning", flag)) from None
    return out
