"""Runs forked from the pre-imported server: the same result as in-process, and failures still come back."""

import os
import signal
from pathlib import Path

import pytest

from loopbench.core.types import RunConfig
from loopbench.launch import forked
from loopbench.launch.forked import run_forked
from tests.helpers import train


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


@pytest.mark.parametrize("impl", ["pytorch", "lightning-defaults"])
def test_a_forked_run_gives_the_in_process_result(impl):
    result = run_forked(RunConfig("overhead_probe", impl, steps=20), timeout_s=120)
    assert result.ok, result.message
    in_process = train("overhead_probe", impl, steps=20)
    assert result.losses == in_process.losses and result.weights_digest == in_process.weights_digest


def test_failures_come_back_as_results_and_the_server_serves_on():
    assert run_forked(RunConfig("overhead_probe", "pytorch", preset="nope")).status == "error"
    hung = run_forked(RunConfig("overhead_probe", "pytorch", preset="quick"), timeout_s=0.05)
    assert hung.status == "timeout" and "killed" in hung.message
    assert run_forked(RunConfig("overhead_probe", "pytorch", steps=5), timeout_s=120).ok


def test_an_interrupted_forked_run_leaves_no_process():
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    assert run_forked(RunConfig("overhead_probe", "pytorch", steps=5), timeout_s=120).ok  # the server is up
    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_forked(RunConfig("overhead_probe", "lightning-defaults", preset="quick", steps=100_000))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert _children(forked._servers[(None, "glibc")].pid) == []
    assert run_forked(RunConfig("overhead_probe", "pytorch", steps=5), timeout_s=120).ok


def test_an_allocator_is_the_process_s_own_so_its_runs_get_a_server_of_their_own():
    from implementations.settings import validate
    from loopbench.core.types import ALLOCATORS, UsageError
    from loopbench.launch.child import process_env

    assert process_env(None, "glibc-kept")["GLIBC_TUNABLES"] == ALLOCATORS["glibc-kept"]
    assert process_env(None).get("GLIBC_TUNABLES") == os.environ.get("GLIBC_TUNABLES")  # as the shell set it
    assert RunConfig("cifar_cnn", "pytorch", allocator="glibc-kept").label.endswith("/glibc-kept/32-true/smoke/seed0")
    with pytest.raises(UsageError, match="choose from glibc, glibc-kept"):
        validate(RunConfig("cifar_cnn", "pytorch", allocator="jemalloc"))
