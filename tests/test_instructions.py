"""Instruction counts: the dumps are read by label, the client request is harmless outside valgrind, and a
machine without valgrind says so in one line instead of failing. A real count is the bench's: every probe
variant is counted there, and a count that fails fails its benchmark (benchmarks/test_training.py)."""

import pytest

from loopbench.core.types import RunConfig
from loopbench.launch import valgrind as instructions
from loopbench.measure import callgrind


def test_dumps_are_read_by_the_label_of_their_client_request(tmp_path):
    (tmp_path / "cg.out").write_text("desc: Trigger: Program termination\nsummary: 17278\n")
    (tmp_path / "cg.out.1").write_text("desc: Trigger: Client Request: 0\nevents: Ir\nsummary: 64022233\n")
    (tmp_path / "cg.out.2").write_text("desc: Trigger: Client Request: 1\nevents: Ir\nsummary: 170079242\n")
    (tmp_path / "cg.out.3").write_text("desc: Trigger: Client Request: 2\nevents: Ir I1mr Bim\nsummary: 900 40 7\n")
    assert instructions.dumps(tmp_path) == {
        "0": {"Ir": 64022233},
        "1": {"Ir": 170079242},
        "2": {"Ir": 900, "I1mr": 40, "Bim": 7},  # with the cache and branch simulation
    }


@pytest.mark.skipif(instructions.unavailable() is not None, reason="x86-64 Linux only")
def test_the_client_request_is_a_no_op_outside_valgrind():
    callgrind.window_opens()  # the rotations add up to 128 bits and xchg rbx, rbx changes nothing
    callgrind.window_closes("x")
    assert callgrind._send(0x1001) == 0  # RUNNING_ON_VALGRIND: 0 here


def test_without_valgrind_every_count_is_unsupported_with_the_reason(monkeypatch):
    monkeypatch.setattr(instructions.shutil, "which", lambda name: None)
    monkeypatch.delenv("LOOPBENCH_INSTRUCTIONS", raising=False)
    config = RunConfig("overhead_probe", "pytorch", clock="instructions")
    (result,) = instructions.count([config], timeout_s=10)
    assert result.status == "unsupported" and "need valgrind" in result.message and "time only" in result.message
