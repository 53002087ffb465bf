"""What a launched process runs: the child entry of a fresh process (`python -m loopbench.launch.child CONFIG.json
RESULT.json`), the environment it starts with, and one cell run so that a failure is a result.

Lightning comes in only for a Lightning cell (quiet_lightning imports it): a plain run's memory is its own.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import traceback
from pathlib import Path

from loopbench.core import releases
from loopbench.core.quiet import quiet_lightning
from loopbench.core.trainers import is_lightning
from loopbench.core.types import ALLOCATORS, RunConfig, RunResult, UsageError
from loopbench.launch.cell import run_cell

PORTS = "LOOPBENCH_MASTER_PORTS"  # set by the data-parallel launcher for a batch: one port per cell


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    # the child imports this checkout even when the package is not installed (python -m from the repo)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def process_env(lightning: str | None, allocator: str = "glibc") -> dict[str, str]:
    """The environment a process for runs of this Lightning release and allocator (RunConfig's fields) starts
    with: the release first on the path, and the allocator's settings (glibc reads them at the process's start,
    so a batch of runs shares them)."""
    env = releases.path_env(lightning, child_env())
    tunables = ALLOCATORS[allocator]
    return env | {"GLIBC_TUNABLES": tunables} if tunables else env


def main(cfg_path: str, out_path: str) -> int:
    """Run the config in `cfg_path` (or a list of them, one after another) and write the result(s)."""
    request = json.loads(Path(cfg_path).read_text())
    ports = os.environ.get(PORTS, "").split(",")  # a batch of data-parallel cells: a process group each
    launch = dict(os.environ)  # Lightning's teardown deletes WORLD_SIZE: each cell starts from the launch's variables
    results = []
    for k, d in enumerate(request if isinstance(request, list) else [request]):
        gc.collect()  # each run of a batch starts from a collected heap, not the previous run's garbage
        os.environ.update(launch)
        if ports[0]:
            os.environ["MASTER_PORT"] = ports[k]
        results.append(run_one(RunConfig.from_dict(d)).to_dict())
    Path(out_path).write_text(json.dumps(results if isinstance(request, list) else results[0]))
    return 0


def run_one(config: RunConfig) -> RunResult:
    if is_lightning(config.impl):  # a plain run never imports Lightning, a Fabric run not the Trainer: its own memory
        quiet_lightning()
    try:
        return run_cell(config)
    except UsageError as e:
        return RunResult.failed(config, "error", str(e))
    except Exception as e:  # a cell that crashes is a result too; the traceback goes to stderr
        traceback.print_exc()
        return RunResult.failed(config, "error", f"{type(e).__name__}: {e}")


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
