"""`loopbench history`: per-release answers, adjacent changes in time and instructions, the report; on
synthetic runs of known cost (no training), and refusals in one line."""

import dataclasses

import pytest

from loopbench.analysis import history
from loopbench.cli import main
from loopbench.core.trainers import DEFAULTS, LEAN, PLAIN
from loopbench.core.types import RunConfig, RunResult
from loopbench.report.history import write
from loopbench.studies.history import parity_plan
from loopbench.studies.overhead import count_plan
from tests.test_probe_report import probe_runs

COUNTS = {PLAIN: 1.0e6, LEAN: 2.8e6, DEFAULTS: 6.0e6}


def _release(version: str, extra_us: float = 0.0, extra_count: float = 0.0) -> list[RunResult]:
    runs = []
    for r in probe_runs():
        r = dataclasses.replace(r, config=r.config | {"lightning": version}, env=r.env | {"pytorch_lightning": version})
        if r.config["impl"] == LEAN:
            r.step_time_median_s += extra_us * 1e-6
        runs.append(r)
    for shape in ("auto", "manual"):
        for cfg in count_plan("cpu", shape, (PLAIN, LEAN, DEFAULTS)):
            n = COUNTS[cfg.impl] + (extra_count if cfg.impl == LEAN else 0.0)
            runs.append(RunResult(config=dataclasses.replace(cfg, lightning=version).to_dict(),
                                  task_config={"steps": 84}, warmup_steps=20, instructions_per_step=n,
                                  env={"cpu": "test cpu", "pytorch_lightning": version}))  # fmt: skip
    return runs


def test_a_release_that_costs_more_is_named_in_time_and_in_instructions_and_the_others_are_not():
    runs = _release("2.4.0") + _release("2.5.6") + _release("2.6.6", extra_us=100, extra_count=0.5e6)
    changes = {(c["old"], c["shape"], c["impl"]): c for c in history.changes(runs)}
    assert len(changes) == 8  # two adjacent pairs x two shapes x two Trainers
    up = changes[("2.5.6", "auto", LEAN)]
    assert up["new"] == "2.6.6" and up["time_changed"] and up["time_us"] == pytest.approx(100)
    assert up["count_changed"] and up["count_change"] == pytest.approx(0.5e6)
    assert up["count_percent"] == pytest.approx(0.5 / 1.8 * 100)
    quiet = [c for k, c in changes.items() if k != ("2.5.6", "auto", LEAN) and k != ("2.5.6", "manual", LEAN)]
    assert not any(c["time_changed"] or c["count_changed"] for c in quiet)


def test_releases_are_ordered_by_version_not_by_name_or_run_order():
    runs = _release("2.10.0") + _release("2.4.0") + _release("2.9.1")
    assert list(history.by_version(runs)) == ["2.4.0", "2.9.1", "2.10.0"]


def test_the_report_has_the_cost_per_release_the_changes_and_the_figure(tmp_path):
    runs = _release("2.4.0") + _release("2.6.6", extra_us=100, extra_count=0.5e6)
    text = write(runs, tmp_path).read_text()
    assert (tmp_path / "history.png").is_file() and (tmp_path / "history.json").is_file()
    assert "| 2.4.0 " in text and "| 2.6.6 " in text
    assert "2.4.0 -> 2.6.6, auto, lightning: instructions +0.500 M (+27.8%) **changed**" in text
    assert "+1.80 M instructions per step over the plain loop on 2.4.0, +2.30 M on 2.6.6 (+28%)" in text


def test_the_parity_plan_runs_the_plain_loop_once_per_cell_and_the_lean_trainer_on_every_release():
    cells = parity_plan(("2.4.0", None))
    plain = [c for c in cells if c.impl == PLAIN]
    assert {c.lightning for c in plain} == {None} and len(plain) == 2 * (2 + 3)  # precisions x (2 shapes + 3 tasks)
    assert len(cells) == 3 * len(plain) and all(c.preset == history.PARITY_PRESET for c in cells)


def test_parity_rows_say_bitwise_or_not_per_release():
    def run(impl: str, version: str, digest: str) -> RunResult:
        cfg = RunConfig("cifar_cnn", impl, preset=history.PARITY_PRESET, lightning=version if impl != PLAIN else None)
        return RunResult(config=cfg.to_dict(), task_config={"steps": 2}, losses={"loss": [1.0, 0.5]},
                         weights_digest=digest, env={"pytorch_lightning": version})  # fmt: skip

    rows = history.parity_rows([run(PLAIN, "2.6.6", "a"), run(LEAN, "2.4.0", "a"), run(LEAN, "2.6.6", "b")])
    assert [(r["release"], r["holds"]) for r in rows] == [("2.4.0", True), ("2.6.6", False)]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--versions", "2.6.3", "2.6.6"], "malicious upload"),
        (["--versions", "9.9", "2.6.6"], "not a release on loopbench's list"),
        (["--versions", "2.6.6"], "name two releases or more"),
        (["--repeats", "1"], "at least 2"),
    ],
)
def test_bad_input_is_refused_in_one_line(argv, message, capsys, tmp_path):
    assert main(["history", "--out", str(tmp_path / "h"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "h").exists()
