"""Run one cell in a fresh Python process: JSON in, JSON out, a timeout, failures recorded.

A fresh process per cell keeps peak memory, allocator caches, cudnn autotuning and thread pools of
one cell out of the next. Whatever happens in the child (exception, OOM, a kill, a hang), the parent
gets a RunResult with a status and a message, and the sweep goes on.

    (the child: loopbench.launch.child)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from loopbench.core.types import RunConfig, RunResult
from loopbench.launch.child import process_env
from loopbench.launch.distributed import run_ranks

DEFAULT_TIMEOUT_S = 1_800.0


def run_isolated(config: RunConfig, timeout_s: float = DEFAULT_TIMEOUT_S) -> RunResult:
    """Run `config` in a child process and return its result; never raises for a failed cell.

    The child runs in a session of its own, so a Ctrl-C at the terminal reaches the parent only. If
    the parent is interrupted (KeyboardInterrupt, or SIGTERM turned into one by `interrupts_raise`),
    the child and anything it started are terminated before the exception goes on.
    """
    if config.processes > 1:
        return run_ranks(config, timeout_s)
    return _run_fresh(config, config.to_dict(), timeout_s)


def run_isolated_batch(configs: list[RunConfig], timeout_s: float = DEFAULT_TIMEOUT_S) -> list[RunResult]:
    """Run `configs` one after another in one fresh child process (a round, where it cannot be forked: CUDA);
    never raises for a failed run. `timeout_s` is for them all."""
    got = _run_fresh(configs[0], [c.to_dict() for c in configs], timeout_s)
    if isinstance(got, RunResult):  # the process failed: every run of it did
        return [RunResult.failed(c, got.status, got.message) for c in configs]
    return got


def _run_fresh(config: RunConfig, request: dict | list, timeout_s: float) -> RunResult | list[RunResult]:
    with tempfile.TemporaryDirectory(prefix="loopbench-cell-") as tmp:
        cfg_path, out_path = Path(tmp, "config.json"), Path(tmp, "result.json")
        cfg_path.write_text(json.dumps(request))
        cmd = [sys.executable, "-m", "loopbench.launch.child", str(cfg_path), str(out_path)]
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=process_env(config.lightning, config.allocator),
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _terminate(proc)
            return RunResult.failed(config, "timeout", f"no result after {timeout_s:g} s; the process was killed")
        except BaseException:
            _terminate(proc)
            raise
        if out_path.exists():
            got = json.loads(out_path.read_text())
            return [RunResult.from_dict(d) for d in got] if isinstance(got, list) else RunResult.from_dict(got)
        if proc.returncode in (-signal.SIGKILL, 137):
            return RunResult.failed(config, "oom", "killed by SIGKILL, most likely out of host memory")
        tail = " | ".join((stderr or stdout).strip().splitlines()[-3:])
        return RunResult.failed(config, "error", f"exit code {proc.returncode}: {tail}")


def _terminate(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
    """SIGTERM to the child's process group, SIGKILL after `grace_s`; reap it either way."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.communicate(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def interrupts_raise() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise KeyboardInterrupt: one orderly path for both.

    SIGINT's handler is set explicitly because a process started in the background by a shell
    inherits SIGINT as ignored, and `kill -INT` would then do nothing.
    """
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")
