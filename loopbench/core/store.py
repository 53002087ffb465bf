"""Results on disk: appended as each run ends, read back from files or folders, checked on the way in.

A suite's output folder holds `results.jsonl` (one finished run per line, flushed and synced before
the next run starts, so a crash or Ctrl-C loses only the run in flight) and `matrix.json` (the
settings of the matrix, so that `--resume` can refuse to mix two different matrices). A report
folder holds `results.json` (a list). `load_results` reads any of them.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
from pathlib import Path
from typing import Any

from loopbench.core.types import SCHEMA_VERSION, STATUSES, RunConfig, RunResult, UsageError

LOG_NAME = "results.jsonl"
REPORT_RESULTS_NAME = "results.json"
PUBLISHED_RESULTS_NAME = "results.json.gz"  # a committed report's runs: compacted (`compact`) and compressed
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
    """A run's identity: its whole configuration (task, impl, device, precision, preset, seed, repeat, ...); a
    segment sized by time gets its steps from the plain step when it runs, so they are not part of it. Fields added
    since a run was stored take their defaults, so a run folder written before them still resumes."""
    config = RunConfig.from_dict(config).to_dict()
    if config.get("segment_s") is not None:
        config = {k: v for k, v in config.items() if k != "steps"}
    return json.dumps(config, sort_keys=True)


def save_results(results: list[RunResult], path: str | Path) -> Path:
    """A list of runs as JSON; gzip-compressed where the name ends in .gz (a large report's runs)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps([r.to_dict() for r in results], indent=None if path.suffix == ".gz" else 1) + "\n"
    if path.suffix == ".gz":  # no time stamp in the header: the same runs give the same bytes
        path.write_bytes(gzip.compress(text.encode(), mtime=0))
    else:
        path.write_text(text)
    return path


SAMPLES_PRESETS = ("full",)  # a task's sample grids (the GAN's) show digits only after a real run: drawn from these


def compact(results: list[RunResult]) -> list[RunResult]:
    """Runs as a published report keeps them: the time-only segments of rounds and the counts without their
    per-step losses (they trained nothing anyone compares) or work times, step times to 1 ns; sample grids only
    where a figure draws them (a fresh run of a SAMPLES_PRESETS preset)."""
    out = []
    for r in results:
        if r.config.get("slot", 0) > 0 or r.config.get("clock") == "instructions":
            r = dataclasses.replace(
                r,
                losses={},
                step_times_s=[round(t, 9) for t in r.step_times_s],
                work_times_s=[],  # the in-place split's per-step work: its median rest is what is read
                artifacts={},
            )
        elif r.artifacts and r.config.get("preset") not in SAMPLES_PRESETS:
            r = dataclasses.replace(r, artifacts={})
        out.append(r)
    return out


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


def _text(path: Path) -> str:
    if path.suffix != ".gz":
        return path.read_text()
    with gzip.open(path, "rt") as f:
        return f.read()


def _read_file(path: Path) -> list[RunResult]:
    if path.suffix == ".jsonl":
        return read_log(path)
    try:
        data = json.loads(_text(path))
    except (json.JSONDecodeError, UnicodeDecodeError, gzip.BadGzipFile):
        raise UsageError(f"{path}: not JSON; give a loopbench results.json, results.jsonl or their folder") from None
    return [_result(r, path) for r in (data if isinstance(data, list) else [data])]


def load_results(*paths: str | Path) -> list[RunResult]:
    """Every run in the given files and folders (a folder: its results.jsonl, else its results.json, else its
    results.json.gz)."""
    results = []
    for p in map(Path, paths):
        if p.is_dir():
            found = [p / n for n in (LOG_NAME, REPORT_RESULTS_NAME, f"{REPORT_RESULTS_NAME}.gz") if (p / n).is_file()]
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
