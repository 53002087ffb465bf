"""What every verb shares: its checks of bad input (each a UsageError: one line, exit 2).

The verbs themselves: cells.py (run, parity, suite, report: task cells) and probe.py (overhead,
history, paycurve, compare: the overhead probe, its releases and its test against real tasks).
"""

from __future__ import annotations

import math
from pathlib import Path

from loopbench.types import UsageError


def release(version: str | None) -> str | None:
    """None for the installed release (the default), else the version, refused in one line if not allowed."""
    from loopbench import releases

    if version is None or version == releases.installed():
        return None
    releases.check(version)
    return version


def positive(flag: str, value: float | None) -> None:

    if value is not None and not (value > 0 and math.isfinite(value)):
        raise UsageError(f"{flag} must be a positive number, got {value:g}")


def folder(flag: str, path: Path) -> None:

    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path}: exists and is not a folder; name a folder")


def json_target(path: Path | None) -> None:

    if path is not None and path.is_dir():
        raise UsageError(f"--json {path}: is a folder; name a file, e.g. {path / 'result.json'}")
