"""CI for the people who run it there: the counts gate and a team's own parity test, as docs/ci.md gives them."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from loopbench.cli import main
from loopbench.testing import assert_same_training, same_training
from tests.fixtures import jobs

ROOT = Path(__file__).resolve().parent.parent
RECIPE = (ROOT / "docs" / "ci.md").read_text()


def _counts(
    path: Path,
    defaults: float,
    cpu: str = "AMD EPYC",
    torch: str = "2.14.1",
    code: str = "c0de",
    bar: str = "tqdm 4.70.1",
) -> Path:
    deltas = {"pytorch": 0.0, "lightning": 1.80e6, "lightning-defaults": defaults, "fabric": 0.17e6}
    path.write_text(json.dumps({
        "kind": "instruction counts",
        "counted_with": {"python": "3.11.7", "torch": torch, "pytorch_lightning": "2.6.6", "probe_code": code,
                         "progress_bar": bar},
        "machine": {"cpu": cpu, "cpu_count": 2, "gpu": None},
        "instructions": {"shapes": {"auto": {i: {"per_step": 0.88e6 + d, "delta": d} for i, d in deltas.items()}}},
    }))  # fmt: skip
    return path


def test_the_gate_fails_on_a_dearer_variant_naming_it_and_passes_an_unchanged_one(tmp_path, capsys):
    old, same, dearer = (_counts(tmp_path / f"{n}.json", d) for n, d in (("old", 3.4e6), ("same", 3.4e6),
                                                                          ("dearer", 5.1e6)))  # fmt: skip
    assert main(["compare", str(old), str(same), "--fail-above", "5"]) == 0
    assert main(["compare", str(old), str(dearer), "--fail-above", "5"]) == 1
    out = capsys.readouterr().out
    assert "extra instructions per step over the plain loop" in out and "fails above 5%" in out
    assert "FAIL: probe auto lightning-defaults rose by 50.0%" in out and "FAIL: probe auto lightning " not in out


def test_counts_compare_across_machines_and_their_times_are_not(tmp_path, capsys):
    old, new = _counts(tmp_path / "a.json", 3.4e6), _counts(tmp_path / "b.json", 3.4e6, cpu="Intel Xeon")
    assert main(["compare", str(old), str(new), "--fail-above", "5"]) == 0
    assert "time: not compared (cpu: AMD EPYC vs Intel Xeon" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [("torch", {"torch": "2.13.0"}), ("probe_code", {"code": "beef"}), ("progress_bar", {"bar": "rich 15.0.0"})],
)
def test_counts_of_other_versions_are_refused_naming_the_field_and_the_rule(tmp_path, capsys, field, kwargs):
    old, new = _counts(tmp_path / "a.json", 3.4e6), _counts(tmp_path / "b.json", 3.4e6, **kwargs)
    assert main(["compare", str(old), str(new)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{field}: " in err and "counts compare across machines only where" in err and len(err.splitlines()) == 1


def _recipe_steps() -> list[str]:
    block = re.search(r"```yaml\n(.*?)```", RECIPE, re.S).group(1)
    return [s["run"] for s in yaml.safe_load(block)["jobs"]["counts"]["steps"] if "run" in s]


def test_the_ci_recipe_runs_as_written_less_the_valgrind_install(tmp_path):
    """Each of the recipe's run steps, here: its count steps up to where valgrind is needed (this machine's tests
    run with LOOPBENCH_INSTRUCTIONS=off: a one-line refusal, not a traceback), its compare step on counts."""
    steps = _recipe_steps()
    assert steps[0].startswith("sudo apt-get install") and "valgrind" in steps[0]
    workdir = tmp_path / "ci"
    (workdir / "loopbench").mkdir(parents=True)
    (workdir / "lightning").symlink_to(Path(__import__("pytorch_lightning").__file__).parents[1], True)
    _counts(workdir / "old.json", 3.4e6), _counts(workdir / "new.json", 3.4e6)
    env = os.environ | {"LOOPBENCH_INSTRUCTIONS": "off", "PYTHONPATH": str(ROOT)}
    for step in steps[2:]:  # the install steps need the network: the tests' own environment has what they give
        cd, _, cmd = step.partition(" && ")
        argv = shlex.split(cmd)
        assert argv[0] == "loopbench"
        done = subprocess.run([sys.executable, "-m", "loopbench", *argv[1:]], cwd=workdir / cd.split()[1], env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        if "--counts" in argv:
            assert done.returncode == 2 and done.stderr.strip().endswith("(LOOPBENCH_INSTRUCTIONS=off); time only")
        else:
            assert done.returncode == 0 and "extra instructions per step" in done.stdout, done.stderr


def test_a_correct_port_passes_and_one_with_a_one_line_bug_fails_where_it_differs():
    assert assert_same_training(jobs.scheduled, jobs.port, steps=14).same
    verdict = same_training("tests.fixtures.jobs:scheduled", "tests.fixtures.jobs:port_stepping_per_epoch", steps=14)
    assert not verdict.same
    assert "the losses differ first at step 3" in verdict.message and "in 'net." in verdict.message
    with pytest.raises(AssertionError, match="expected bitwise"):
        assert_same_training(jobs.scheduled, jobs.port_stepping_per_epoch, steps=14)


def test_the_command_line_compares_a_port_and_refuses_one_that_returns_nothing(capsys):
    base = ["parity", "--task", "module", "--set", "factory=tests.fixtures.jobs:scheduled", "--steps", "14"]
    assert main([*base, "--set", "plain=tests.fixtures.jobs:port"]) == 0
    assert main([*base, "--set", "plain=tests.fixtures.jobs:port_stepping_per_epoch"]) == 1
    capsys.readouterr()
    assert main([*base, "--set", "plain=tests.fixtures.jobs:port_returning_nothing"]) == 2
    err = capsys.readouterr().err.strip()
    assert "returned NoneType, not a list of each step's loss" in err and len(err.splitlines()) == 1


def test_the_guide_states_what_the_gate_said_of_the_committed_counts(capsys):
    """Each row of docs/ci.md's table: the change per variant between two committed count files, and the gate's
    exit status at the threshold the recipe uses."""
    folder = ROOT / "reports" / "amd-epyc-2c-avx2" / "ci-gate"
    rows = [line for line in RECIPE.split("<!-- gate rows from reports/amd-epyc-2c-avx2/ci-gate -->")[1].splitlines()
            if line.startswith("| ")]  # fmt: skip
    pairs = [("2.3.3", "2.4.0"), ("2.5.6", "2.6.6"), ("2.6.6", "2.6.6-again")]
    assert len(rows) == len(pairs)
    for row, (old, new) in zip(rows, pairs, strict=True):
        deltas = [json.loads((folder / f"{v}.json").read_text())["instructions"]["shapes"]["auto"] for v in (old, new)]
        cells = [c.strip() for c in row.strip("|").split("|")]
        for cell, impl in zip(cells[1:4], ("lightning", "lightning-defaults", "fabric"), strict=True):
            a, b = deltas[0][impl]["delta"], deltas[1][impl]["delta"]
            assert cell == f"{100 * (b - a) / a:+.1f}%", (row, impl)
        code = main(["compare", str(folder / f"{old}.json"), str(folder / f"{new}.json"), "--fail-above", "10"])
        assert cells[4].startswith(f"exit {code}")
    capsys.readouterr()
    seconds = [json.loads(p.read_text())["elapsed_s"] for p in folder.glob("*.json")]
    assert f"took {min(seconds):.0f} to {max(seconds):.0f} s" in RECIPE
