"""Run one cell in a fresh Python process: JSON in, JSON out, a timeout, failures recorded.

A fresh process per cell keeps peak memory, allocator caches, cudnn autotuning and thread pools of
one cell out of the next. Whatever happens in the child (exception, OOM, a kill, a hang), the parent
gets a RunResult with a status and a message, and the sweep goes on.

    python -m loopbench.isolate CONFIG.json RESULT.json
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

from loopbench.types import RunConfig, RunResult

DEFAULT_TIMEOUT_S = 1_800.0


def run_isolated(config: RunConfig, timeout_s: float = DEFAULT_TIMEOUT_S) -> RunResult:
    """Run `config` in a child process and return its result; never raises for a failed cell."""
    with tempfile.TemporaryDirectory(prefix="loopbench-cell-") as tmp:
        cfg_path, out_path = Path(tmp, "config.json"), Path(tmp, "result.json")
        cfg_path.write_text(json.dumps(config.to_dict()))
        cmd = [sys.executable, "-m", "loopbench.isolate", str(cfg_path), str(out_path)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=_child_env())
        except subprocess.TimeoutExpired:
            return RunResult.failed(config, "timeout", f"no result after {timeout_s:.0f} s; the process was killed")
        if out_path.exists():
            return RunResult.from_dict(json.loads(out_path.read_text()))
        if proc.returncode in (-signal.SIGKILL, 137):
            return RunResult.failed(config, "oom", "killed by SIGKILL, most likely out of host memory")
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        return RunResult.failed(config, "error", f"exit code {proc.returncode}: {tail}")


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # the child imports this checkout even when the package is not installed (python -m from the repo)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _child(cfg_path: str, out_path: str) -> int:
    from loopbench.harness import UsageError, run_cell
    from loopbench.precision import LIGHTNING_IMPLS
    from loopbench.quiet import quiet_lightning

    config = RunConfig.from_dict(json.loads(Path(cfg_path).read_text()))
    if config.impl in LIGHTNING_IMPLS:  # a plain-PyTorch run never imports Lightning: its memory is its own
        quiet_lightning()
    try:
        result = run_cell(config)
    except UsageError as e:
        result = RunResult.failed(config, "error", str(e))
    except Exception as e:  # a cell that crashes is a result too; the traceback goes to stderr
        traceback.print_exc()
        result = RunResult.failed(config, "error", f"{type(e).__name__}: {e}")
    Path(out_path).write_text(json.dumps(result.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(_child(*sys.argv[1:]))
