"""Data parallel across machines: two torchrun agents on 127.0.0.1 form a two-node job (c10d rendezvous), as PyTorch's
own launcher tests do; SLURM's environment is faked, as Lightning's tests fake it.

A killed rank must end the job in bounded time with its reason, leaving no process; bad launches end in one line.
(The job's bits against the local launcher's: tests/test_ddp.py.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from loopbench.cli import main
from loopbench.core.types import UsageError
from loopbench.launch import agents as local
from loopbench.launch import nodes
from loopbench.launch.distributed import free_ports

needs_torchrun = pytest.mark.skipif(local.torchrun() is None, reason="torchrun not installed")


def _tree(agents: list[subprocess.Popen]) -> list[int]:
    """The agents' processes and all they started (torchrun's workers run in sessions of their own)."""
    parents = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            parents[int(pid)] = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    tree = [a.pid for a in agents if a.pid in parents]
    for pid in tree:
        tree += [child for child, parent in parents.items() if parent == pid]
    return tree


def _alive(pids: list[int]) -> list[int]:
    def running(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    return [pid for pid in pids if running(pid)]


@pytest.mark.heavy
@pytest.mark.slow
@needs_torchrun
def test_a_killed_rank_ends_the_torchrun_job_with_its_reason_and_leaves_no_process(tmp_path):
    argv = ["-m", "loopbench", "run", "--task", "cifar_cnn", "--impl", "pytorch", "--steps", "100000", "--launcher",
            "torchrun"]  # fmt: skip
    agents = local.local_agents("killed", argv, tmp_path)
    said: list[str] = []
    readers = [threading.Thread(target=lambda a=a: said.extend(a.stdout), daemon=True) for a in agents]
    for reader in readers:
        reader.start()
    deadline, rank1, started = time.monotonic() + 120, None, []
    while not any("2 processes on 2 nodes joined" in line for line in said) and time.monotonic() < deadline:
        time.sleep(0.2)  # until every rank has joined the job
    started = _tree(agents)
    for pid in started:
        with contextlib.suppress(OSError):
            if b"RANK=1" in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                rank1 = pid
    try:
        assert rank1, f"rank 1 never joined: {said}"
        time.sleep(3)  # into its training
        os.kill(rank1, signal.SIGKILL)
        killed = time.monotonic()
        for a in agents:
            a.wait(timeout=120)
        for reader in readers:
            reader.join(timeout=10)
        outputs = ["".join(said)]
    finally:
        for pid in _alive(started):
            os.kill(pid, signal.SIGKILL)
    assert time.monotonic() - killed < nodes.SILENT_S + 30
    assert all(a.returncode != 0 for a in agents)
    assert "rank 1: not heard from" in outputs[0], outputs
    assert len(started) == 4 and not _alive(started)


def _unset(monkeypatch, *names: str) -> None:
    """Unset for the test, and unset again after it whatever the code under test set (a bare delenv of an unset
    name would not restore it)."""
    for name in names:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def test_slurms_environment_gives_the_place_lightning_reads_from_it(monkeypatch):
    from lightning_fabric.plugins.environments import SLURMEnvironment

    env = {"SLURM_PROCID": "3", "SLURM_LOCALID": "1", "SLURM_NTASKS": "4", "SLURM_NTASKS_PER_NODE": "2",
           "SLURM_NODEID": "1", "SLURM_NNODES": "2", "SLURM_NODELIST": "gpu[07-08]", "SLURM_JOB_ID": "123456",
           "SLURM_JOB_NAME": "train"}  # fmt: skip
    _unset(monkeypatch, "MASTER_ADDR", "MASTER_PORT")  # Lightning sets them as it reads them
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    got = nodes.place("slurm", env)
    lightning = SLURMEnvironment()
    assert SLURMEnvironment.detect()
    assert (got.rank, got.local_rank, got.world, got.node, got.nodes) == (
        lightning.global_rank(),
        lightning.local_rank(),
        lightning.world_size(),
        lightning.node_rank(),
        2,
    )
    assert (got.addr, got.port) == (lightning.main_address, lightning.main_port) == ("gpu07", 18456)
    lightning.validate_settings(num_devices=got.local_world, num_nodes=got.nodes)  # the Trainer's own check


def test_a_place_needs_its_launchers_environment():
    with pytest.raises(UsageError, match=r"RANK, LOCAL_RANK, .* not set: start this command with torchrun"):
        nodes.place("torchrun", {})
    torchrun = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "3", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "0"}
    with pytest.raises(UsageError, match="3 processes in all is not a whole number of nodes of 2"):
        nodes.place("torchrun", torchrun)


def _torchrun_env(port: int, rank: int = 0, world: int = 1, local_world: int = 1, agent: bool = False) -> dict:
    return {"RANK": str(rank), "LOCAL_RANK": "0", "WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": str(local_world),
            "GROUP_RANK": str(rank), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
            "TORCHELASTIC_RUN_ID": "fake", "TORCHELASTIC_USE_AGENT_STORE": str(agent)}  # fmt: skip


RUN = ["run", "--task", "cifar_cnn", "--impl", "pytorch"]


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        ([*RUN, "--launcher", "torchrun"], {}, "--launcher torchrun: RANK, LOCAL_RANK"),
        (RUN, _torchrun_env(1), "started by torchrun (rank 0 of 1): add --launcher torchrun"),
        ([*RUN, "--launcher", "torchrun", "--processes", "2"], _torchrun_env(1), "drop --processes"),
        ([*RUN, "--launcher", "slurm", "--lightning", "2.5.6"], {"SLURM_NTASKS": "1"}, "--lightning with --launcher"),
        (
            [*RUN, "--launcher", "torchrun", "--join-timeout", "1"],
            _torchrun_env(free_ports(1)[0], agent=True),
            "did not answer in 1 s (--join-timeout)",
        ),
    ],
    ids=["no torchrun", "torchrun, local", "processes", "lightning", "no store"],
)
def test_bad_launches_exit_2_with_one_line(argv, env, expected, monkeypatch, capsys):
    _unset(monkeypatch, *nodes.TORCHRUN, "TORCHELASTIC_RUN_ID", "TORCHELASTIC_USE_AGENT_STORE", *nodes.SLURM)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    started = time.monotonic()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and expected in err and "Traceback" not in err, err
    assert time.monotonic() - started < 30


@pytest.mark.slow
def test_nodes_that_start_different_numbers_of_processes_are_refused_on_every_rank(tmp_path):
    port = free_ports(1)[0]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "loopbench", *RUN, "--launcher", "torchrun", "--join-timeout", "60"],
            env=os.environ | _torchrun_env(port, rank, world=2, local_world=rank + 1),
            cwd=tmp_path,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    errs = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [2, 2], errs
    assert all("different numbers of processes (rank 0: 1, rank 1: 2)" in e and len(e.splitlines()) == 1 for e in errs)
