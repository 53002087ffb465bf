"""One cell in N processes (data parallel), started as torchrun starts them, measured per process.

Each process is `python -m loopbench.launch.child` with torchrun's environment (RANK, LOCAL_RANK,
WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT, OMP_NUM_THREADS): the plain loop joins the
process group from it as PyTorch's DDP recipe does, and Lightning, finding LOCAL_RANK set, joins as
that rank instead of launching processes itself. Both sides are therefore started the same way, and
the comparison is of the training, not of two launchers. torchrun itself is not used: its agent
would stand between this launcher and the processes, and what is needed here is each process's own
result and reason, and all of them stopped the moment one fails (the others would wait in a
collective until gloo's 30-minute timeout).

Every process runs in a session of its own and writes its own result; the cell's result is rank
0's, with the slowest rank's step times, the global throughput, the largest peak memory, and every
rank's own measurements in `ranks`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from loopbench.core.types import RunConfig, RunResult
from loopbench.launch.child import PORTS, process_env
from loopbench.measure.clock import percentile

GRACE_S = 10.0  # after one process fails, how long the others get to finish on their own
RANK_FIELDS = (  # what each process measured, kept per rank
    "status",
    "message",
    "step_time_median_s",
    "samples_per_s",
    "window_s",
    "end_to_end_s",
    "job_s",
    "cpu_share",
    "peak_rss_bytes",
    "peak_cuda_allocated_bytes",
    "peak_cuda_reserved_bytes",
    "losses",
    "weights_digest",
    "best_weights_digest",
    "val_metrics",
    "forward_dtype",
    "collectives",
)


def run_ranks(
    config: RunConfig, timeout_s: float, on_start: Callable[[list[subprocess.Popen]], None] | None = None
) -> RunResult:
    """Run `config` in `config.processes` processes; never raises for a failed cell, and leaves no process behind.

    `on_start` gets the processes once they are started (tests use it to kill one).
    """
    return run_ranks_batch([config], timeout_s, on_start)[0]


def run_ranks_batch(
    configs: list[RunConfig], timeout_s: float, on_start: Callable[[list[subprocess.Popen]], None] | None = None
) -> list[RunResult]:
    """Run `configs` (the same number of processes each) one after another in the same processes, as a forked
    batch runs its cells in one process: each process starts and imports once, and each cell joins a process
    group of its own (its own port) and leaves it when done. `timeout_s` is for them all; a process that fails
    fails every cell of the batch (their results are written together)."""
    n = configs[0].processes
    if any(c.processes != n or c.lightning != configs[0].lightning for c in configs):
        raise ValueError("a batch of ranks runs cells of one process count and one Lightning release")
    with tempfile.TemporaryDirectory(prefix="loopbench-ddp-") as tmp:
        folder = Path(tmp)
        (folder / "config.json").write_text(json.dumps([c.to_dict() for c in configs]))
        procs, logs = [], []
        try:
            ports = free_ports(len(configs))
            env = process_env(configs[0].lightning, configs[0].allocator) | {PORTS: ",".join(map(str, ports))}
            for rank in range(n):
                logs.append(open(folder / f"rank{rank}.log", "w"))  # noqa: SIM115 (closed below)
                procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "loopbench.launch.child",
                            str(folder / "config.json"),
                            str(_out(folder, rank)),
                        ],
                        stdout=logs[-1],
                        stderr=subprocess.STDOUT,
                        env=env | rank_env(rank, n, ports[0]),
                        start_new_session=True,
                    )
                )
            if on_start:
                on_start(procs)
            timed_out, ended = _wait(procs, folder, timeout_s)
        finally:
            for proc in procs:
                _stop(proc)
            for log in logs:
                log.close()
        per_rank = [_rank_results(configs, folder, rank, proc, timed_out, timeout_s) for rank, proc in enumerate(procs)]
    return [merge(c, [results[k] for results in per_rank], ended) for k, c in enumerate(configs)]


def rank_env(rank: int, world: int, port: int) -> dict[str, str]:
    """torchrun's environment for one process on this node, with torchrun's thread default for N processes
    (a CPU core's share each: OMP_NUM_THREADS, which Lightning also respects)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return {
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": str(world),
        "LOCAL_WORLD_SIZE": str(world),
        "GROUP_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(max(1, cores // world))),
    }


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` different ports that are free now (held together while chosen, so that none is chosen twice)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def _out(folder: Path, rank: int) -> Path:
    return folder / f"result{rank}.json"


def _failed(folder: Path, rank: int, proc: subprocess.Popen) -> bool:
    """Has this process ended without a successful result?"""
    if proc.poll() is None:
        return False
    try:
        return proc.returncode != 0 or any(r["status"] != "ok" for r in json.loads(_out(folder, rank).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return True


def _wait(procs: list[subprocess.Popen], folder: Path, timeout_s: float) -> tuple[bool, list[int]]:
    """Until every process has ended, one failed and the others had GRACE_S to end, or the time is up.

    Returns (timed out, the ranks in the order they ended: among those seen ending together, the ones
    that died of a signal or an exit code first, since the others' errors are then the consequence)."""
    deadline, stop_at, ended = time.monotonic() + timeout_s, None, []
    while len(ended) < len(procs):
        now = time.monotonic()
        if now > deadline:
            return True, ended
        new = [rank for rank, p in enumerate(procs) if rank not in ended and p.poll() is not None]
        ended += sorted(new, key=lambda rank: procs[rank].returncode == 0)
        if stop_at is None and any(_failed(folder, rank, procs[rank]) for rank in ended):
            stop_at = now + GRACE_S
        if stop_at is not None and now > stop_at:
            return False, ended
        time.sleep(0.05)
    return False, ended


def _stop(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
    """SIGTERM to the process's group (and SIGCONT, as `kill` does, so that a stopped process hears it),
    SIGKILL after `grace_s`; reaped either way."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            with contextlib.suppress(ProcessLookupError):  # anything it started
                os.killpg(proc.pid, signal.SIGKILL)
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
            os.killpg(proc.pid, signal.SIGCONT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace_s)


def _rank_results(
    configs: list[RunConfig], folder: Path, rank: int, proc: subprocess.Popen, timed_out: bool, timeout_s: float
) -> list[RunResult]:
    """What one process left: its results file, or why there is none (the same reason for every cell)."""
    with contextlib.suppress(OSError, ValueError, TypeError):
        return [RunResult.from_dict(d) for d in json.loads(_out(folder, rank).read_text())]
    code = proc.returncode
    if timed_out:
        status, why = "timeout", f"no result after {timeout_s:g} s; every process was killed"
    elif code in (-signal.SIGKILL, 137):
        status, why = "oom", "killed by SIGKILL, most likely out of host memory"
    elif code == -signal.SIGTERM:
        status, why = "error", "stopped: another process of the run had failed"
    else:
        lines = (folder / f"rank{rank}.log").read_text(errors="replace").strip().splitlines()
        status, why = "error", f"exit code {code}: {' | '.join(lines[-3:])}"
    return [RunResult.failed(c, status, why) for c in configs]


def rank_record(rank: int, result: RunResult) -> dict:
    """What one process measured, as the merged result keeps it in `ranks`."""
    return {"rank": rank} | {k: getattr(result, k) for k in RANK_FIELDS}


def merge(config: RunConfig, results: list[RunResult], ended: list[int] | None = None) -> RunResult:
    """The cell's result from its processes' results: rank 0's, measured as the slowest rank and the whole job.
    A failed run carries every failed process's reason, the first to end first (`ended`: ranks in that order)."""
    ranks = [rank_record(i, r) for i, r in enumerate(results)]
    order = [*(ended or []), *(i for i in range(len(results)) if i not in (ended or []))]
    failed = [i for i in order if not results[i].ok]
    if failed:
        message = "; ".join(f"rank {i}: {results[i].status}: {results[i].message}" for i in failed)
        return dataclasses.replace(RunResult.failed(config, results[failed[0]].status, message), ranks=ranks)
    lead = results[0]
    slowest = [max(times) for times in zip(*(r.step_times_s for r in results), strict=True)]
    steady = slowest[lead.warmup_steps :] or slowest
    window = max(r.window_s for r in results)
    timed = len(slowest) - lead.warmup_steps
    return dataclasses.replace(
        lead,
        config=config.to_dict(),
        step_times_s=slowest,
        step_time_median_s=statistics.median(steady),
        step_time_p90_s=percentile(steady, 90),
        window_s=window,
        samples_per_s=len(results) * lead.batch_size * timed / window if timed and window > 0 else None,
        end_to_end_s=max(r.end_to_end_s for r in results),
        job_s=max(r.job_s for r in results),
        host_step_time_median_s=max(r.host_step_time_median_s for r in results),
        cpu_share=min(r.cpu_share for r in results) if all(r.cpu_share for r in results) else None,
        **{k: _max(results, k) for k in ("peak_rss_bytes", "peak_cuda_allocated_bytes", "peak_cuda_reserved_bytes")},
        ranks=ranks,
    )


def _max(results: list[RunResult], name: str) -> int | None:
    values = [getattr(r, name) for r in results if getattr(r, name) is not None]
    return max(values) if values else None
