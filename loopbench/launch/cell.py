"""One cell in this process, as every launched child runs it: check it, build the task's data (generated sets
kept on disk between processes), hand a `Run` to the task's loop, and return the loop's result.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

import implementations
from implementations import common
from implementations.settings import validate
from loopbench.core.checks import unsupported_reason
from loopbench.core.types import DataSource, RunConfig, RunResult, UsageError
from loopbench.harness.placement import rank_device
from loopbench.harness.run import Run

_BUILT: dict[Path, Any] = {}  # this process's data sets, by cache file


CACHE_LIMIT_BYTES = 2 * 2**30  # larger generated sets are rebuilt each time rather than written to disk


def data_cache_dir() -> Path | None:
    """Where generated data sets are kept between processes: $LOOPBENCH_CACHE (`off`: nowhere)."""
    where = os.environ.get("LOOPBENCH_CACHE", str(Path.home() / ".cache" / "loopbench"))
    return None if where == "off" else Path(where)


def build_data(task: str, cfg: Any, source: DataSource) -> Any:
    """The task's data. Synthetic data is generated once per machine and config, then read from disk.

    Every run is a fresh process, and generating a data set (seconds on a CPU) would otherwise be
    repeated by each. The key covers the task's config, the code that generates the data and the
    torch version, so a change to any of them generates afresh. Real data sets are torchvision's
    business. Nothing here touches the global RNG: the loops seed it after the data exists.
    """
    spec = implementations.spec(task)
    folder = data_cache_dir()
    if source.kind != "synthetic" or folder is None:
        return spec.build_data(cfg, source)
    h = hashlib.sha256(json.dumps([task, dataclasses.asdict(cfg), torch.__version__], default=str).encode())
    for module in (spec, common):
        h.update(Path(module.__file__).read_bytes())
    path = folder / f"{Path(task).name}-{h.hexdigest()[:16]}.pt"  # a task named by its folder's path: its name
    if path in _BUILT:  # the segments of a round share one process: one set for all of them
        return _BUILT[path]
    with contextlib.suppress(Exception):  # missing, or unreadable (a partial write): generate it
        _BUILT[path] = torch.load(path, weights_only=False)
        return _BUILT[path]
    data = spec.build_data(cfg, source)
    size = sum(t.nbytes for d in (data.train, data.test) for t in getattr(d, "tensors", ()))
    if size <= CACHE_LIMIT_BYTES:
        with contextlib.suppress(OSError):  # a read-only or full disk only costs the regeneration
            folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            torch.save(data, tmp)
            os.replace(tmp, path)  # atomic: a parallel reader sees the whole file or none
    return data


def run_here(config: RunConfig) -> RunResult:
    """`run_cell`, with a job that crashes returned as a failed run, its error in one line (bad input still raises:
    the command refuses it); what a fresh process's run returns too."""
    try:
        return run_cell(config)
    except UsageError:
        raise
    except Exception as e:  # the job's own code, or a framework's refusal of it: a result, not a traceback
        return RunResult.failed(config, "error", f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}")


def run_cell(config: RunConfig) -> RunResult:
    """Run one cell here and now. Unsupported cells and OOM come back as results; bad input raises."""
    cfg = validate(config)
    reason = unsupported_reason(config)
    if reason:
        return RunResult.failed(config, "unsupported", reason)
    train = implementations.train_fn(config.task, config.impl)
    device = rank_device(config)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.use_deterministic_algorithms(False)  # a task that wants them asks; none leaks from a previous cell
    data = build_data(config.task, cfg, DataSource(config.data, Path(config.data_dir) if config.data_dir else None))
    prepare = getattr(implementations.spec(config.task), "prepare", None)
    if prepare is not None:  # what a task does once, before either loop's clock starts (a user's module: its imports)
        prepare(cfg)
    if getattr(cfg, "validate_every_epoch", False):
        import torchmetrics  # noqa: F401  (both sides validate with it: imported before either job's clock starts)
    run = Run(config, cfg, data)
    threads = torch.get_num_threads()  # a job may set its own (the probe runs on one); none leaks out
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return train(cfg, run)
    except torch.OutOfMemoryError as e:
        return RunResult.failed(config, "oom", str(e).splitlines()[0])
    finally:
        torch.set_num_threads(threads)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()  # either side's: a process leaves its group when done
        run.cleanup()
