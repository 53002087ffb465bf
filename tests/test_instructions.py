"""Instruction counts: the dumps are read by label, the client request is harmless outside valgrind, and a
machine without valgrind says so in one line instead of failing."""

import pytest

from loopbench.core.types import RunConfig
from loopbench.launch import valgrind as instructions
from loopbench.measure import callgrind


def test_dumps_are_read_by_the_label_of_their_client_request(tmp_path):
    (tmp_path / "cg.out").write_text("desc: Trigger: Program termination\nsummary: 17278\n")
    (tmp_path / "cg.out.1").write_text("desc: Trigger: Client Request: 0\nevents: Ir\nsummary: 64022233\n")
    (tmp_path / "cg.out.2").write_text("desc: Trigger: Client Request: 1\nevents: Ir\nsummary: 170079242\n")
    assert instructions.dumps(tmp_path) == {"0": 64022233, "1": 170079242}


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


@pytest.mark.slow
@pytest.mark.skipif(instructions.unavailable() is not None, reason=str(instructions.unavailable()))
def test_a_real_count_of_the_plain_probe_step_is_about_a_million_instructions_and_repeats(real_probe_count):
    # counted beside the other tests (conftest.py); a count of 8 steps moved by 5%: a collection inside the window
    # weighs, so the count is the probe's own, 64 steps
    first, second = real_probe_count
    assert first.ok and second.ok, (first.message, second.message)
    assert 2e5 < first.instructions_per_step < 5e6  # the plain probe step: ~0.9 M on x86-64 (torch 2.14)
    assert second.instructions_per_step == pytest.approx(first.instructions_per_step, rel=0.01)
