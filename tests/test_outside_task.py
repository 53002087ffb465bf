"""A task from outside the package: named by its folder (or by an entry point), run like the suite's own."""

from pathlib import Path

import pytest

import implementations
from loopbench.cli import main
from loopbench.core.store import load_results

EXAMPLE = str(Path(__file__).resolve().parent.parent / "examples" / "sine_mlp")


@pytest.mark.slow
def test_a_task_in_a_folder_runs_through_the_suite_and_trains_the_same_bits(tmp_path, capsys):
    argv = ["suite", "--tasks", EXAMPLE, "--precisions", "32-true", "--preset", "smoke",
            "--impls", "pytorch", "lightning", "--repeats", "1", "--probe-repeats", "0", "--counts", "off"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path)]) == 0
    results = load_results(tmp_path)
    assert {r.config["task"] for r in results} == {EXAMPLE} and all(r.ok for r in results)
    fresh = {r.config["impl"]: r for r in results if not r.config.get("slot")}
    assert fresh["pytorch"].weights_digest == fresh["lightning"].weights_digest  # bitwise, in fresh processes
    assert (tmp_path / "losses_sine_mlp_cpu.png").is_file() and EXAMPLE in (tmp_path / "REPORT.md").read_text()
    assert sorted(p.name for p in Path(EXAMPLE).parent.glob("*.pt")) == []  # its data cached by name, not beside it


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ("examples/no_such_task", "no such folder"),
        ("./tests", "a task folder holds spec.py, pytorch_loop.py, lightning_loop.py; missing spec.py"),
        ("no_such_task", "unknown task 'no_such_task'"),
    ],
)
def test_a_task_that_is_not_there_exits_2_with_one_line(task, expected, capsys):
    assert main(["run", "--task", task, "--impl", "pytorch"]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1


def test_a_task_registered_under_the_entry_point_group_is_found_by_its_name(monkeypatch):
    monkeypatch.setattr(implementations, "_registered", lambda: {"overhead_copy": "implementations.overhead_probe"})
    assert implementations.problem("overhead_copy") is None
    assert implementations.spec("overhead_copy") is implementations.spec("overhead_probe")
    assert "overhead_copy" in implementations.problem("no_such_task")  # named among the choices
