"""Results on disk: appended as each run ends, read back from files or folders, checked on the way in.

A suite's output folder holds `results.jsonl` (one finished run per line, flushed and synced before
the next run starts, so a crash or Ctrl-C loses only the run in flight) and `matrix.json` (the
settings of the matrix, so that `--resume` can refuse to mix two different matrices). A report
folder holds `results.json` (a list). `load_results` reads any of them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from loopbench.types import SCHEMA_VERSION, STATUSES, RunResult, UsageError

LOG_NAME = "results.jsonl"
REPORT_RESULTS_NAME = "results.json"
MATRIX_NAME = "matrix.json"


class ResultLog:
    """An append-only JSON-lines file of finished runs."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def append(self, result: RunResult) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(result.to_dict()) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read(self) -> list[RunResult]:
        return read_log(self.path) if self.path.exists() else []


def run_key(config: dict[str, Any]) -> str:
    """A run's identity: its whole configuration (task, impl, device, precision, preset, seed, repeat, ...)."""
    return json.dumps(config, sort_keys=True)


def save_results(results: list[RunResult], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([r.to_dict() for r in results], indent=1) + "\n")
    return path


def read_log(path: Path) -> list[RunResult]:
    """The runs of a JSON-lines log; a partial last line (a crash while writing it) is ignored."""
    lines = path.read_text().splitlines(keepends=True)
    records = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) and not line.endswith("\n"):
                break  # the run being written when the process died: not a finished run
            raise UsageError(f"{path}: line {i} is not JSON; not a loopbench results log") from None
    return [_result(r, path) for r in records]


def _result(record: Any, path: Path) -> RunResult:
    config = record.get("config") if isinstance(record, dict) else None
    if not (isinstance(config, dict) and {"task", "impl", "device", "precision"} <= config.keys()):
        raise UsageError(f"{path}: not loopbench results (each entry needs a 'config' with task, impl, device, ...)")
    version = record.get("schema_version", 1)  # results saved before the field existed are version 1
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise UsageError(
            f"{path}: results of schema version {version}, written by a newer loopbench; this one reads up to "
            f"{SCHEMA_VERSION}: update loopbench"
        )
    record = record | {"schema_version": version}
    if record.get("status") not in STATUSES:
        raise UsageError(f"{path}: unknown run status {record.get('status')!r}; expected one of {', '.join(STATUSES)}")
    try:
        return RunResult.from_dict(record)
    except TypeError as e:
        raise UsageError(f"{path}: not loopbench results ({e})") from None


def _read_file(path: Path) -> list[RunResult]:
    if path.suffix == ".jsonl":
        return read_log(path)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UsageError(f"{path}: not JSON; give a loopbench results.json, results.jsonl or their folder") from None
    return [_result(r, path) for r in (data if isinstance(data, list) else [data])]


def load_results(*paths: str | Path) -> list[RunResult]:
    """Every run in the given files and folders (a folder: its results.jsonl, else its results.json)."""
    results = []
    for p in map(Path, paths):
        if p.is_dir():
            found = [p / n for n in (LOG_NAME, REPORT_RESULTS_NAME) if (p / n).is_file()]
            if not found:
                raise UsageError(f"{p}: no {LOG_NAME} or {REPORT_RESULTS_NAME} in this folder")
            results += _read_file(found[0])
        elif p.is_file():
            results += _read_file(p)
        else:
            raise UsageError(f"no such results file or folder: {p}")
    if not results:
        raise UsageError(f"no finished runs in {', '.join(map(str, paths))}; nothing to report")
    return results
