"""A job of several torchrun agents on this one machine, each a "node" of one process on the loopback: how the
tests and the collectives study run cells as two nodes (loopbench.launch.nodes) without a cluster."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loopbench.core.types import RunConfig, RunResult
from loopbench.launch.child import child_env
from loopbench.launch.distributed import free_port


def torchrun() -> str | None:
    """torchrun beside this interpreter (a virtual environment's), else on PATH; None where there is none."""
    beside = Path(sys.executable).with_name("torchrun")
    return str(beside) if beside.exists() else shutil.which("torchrun")


def local_agents(job: str, argv: list[str], cwd: Path, nodes: int = 2) -> list[subprocess.Popen]:
    """`nodes` torchrun agents on 127.0.0.1 (loopback traffic only), one process and one thread each (on CPU the
    bits depend on the threads: each "node" gets one core, as the local launcher gives each of its processes), output
    piped. The first agent hosts the rendezvous, as the first node does on a cluster, before the others start."""
    port = free_port()
    cmd = [torchrun() or "torchrun", "--nnodes", str(nodes), "--nproc-per-node", "1",
           "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", job,
           "--local-addr", "127.0.0.1", "--log-dir", str(cwd / "torchrun-logs"), *argv]  # fmt: skip
    # torchrun's logs in `cwd`, not a folder of their own in /tmp per agent; every connection on the loopback: the
    # agents' (MASTER_ADDR is --local-addr, not the host's name) and gloo's
    env = child_env() | {"OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    agents: list[subprocess.Popen] = []
    for _ in range(nodes):
        agents.append(subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True, start_new_session=True))  # fmt: skip
        deadline = time.monotonic() + 60
        while len(agents) == 1 and time.monotonic() < deadline:  # until the first one listens
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.1)
    return agents


def run_local_agents(configs: list[RunConfig], timeout_s: float, nodes: int = 2) -> list[RunResult]:
    """`configs` run one after another as a job of `nodes` torchrun agents on this machine (local_agents); never
    raises for a failed job: each config then fails with the agents' last words."""
    with tempfile.TemporaryDirectory(prefix="loopbench-nodes-") as tmp:
        Path(tmp, "cells.json").write_text(json.dumps([c.to_dict() for c in configs]))
        agents = local_agents(f"cells-{os.getpid()}", ["-m", "loopbench.launch.nodes", "cells.json", "out.json"],
                              Path(tmp), nodes)  # fmt: skip
        try:
            said = [a.communicate(timeout=timeout_s)[0] for a in agents]
        except subprocess.TimeoutExpired:
            said = [f"no result after {timeout_s:g} s"]
        finally:
            for a in agents:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(a.pid, signal.SIGKILL)
                a.wait()
        out = Path(tmp, "out.json")
        if out.exists():
            return [RunResult.from_dict(d) for d in json.loads(out.read_text())]
    last = " | ".join(line for text in said for line in text.strip().splitlines()[-2:])
    return [RunResult.failed(dataclasses.replace(c, launcher="torchrun", nodes=nodes), "error", last) for c in configs]
