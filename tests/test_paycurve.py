"""The measured pay curve: points planned as rounds, each point's ratio set beside the probe's predictions at
one thread and at the tasks' thread count, the report; on synthetic runs of known cost (no training)."""

import dataclasses

import pytest

from loopbench.analysis.paycurve import POINTS, analyse, common, per_task
from loopbench.core.trainers import DEFAULTS, FABRIC, LEAN, PLAIN
from loopbench.core.types import RunConfig, RunResult
from loopbench.report.paycurve import write
from loopbench.studies import paycurve
from loopbench.studies.paycurve import point_cells
from tests.test_probe_report import probe_run

EXTRA_US = {PLAIN: 0.0, LEAN: 500.0, DEFAULTS: 1_500.0}  # what each Trainer adds to a task's step
PROBE_US = {1: {PLAIN: 0.0, LEAN: 300.0, DEFAULTS: 900.0}, 2: {PLAIN: 0.0, LEAN: 500.0, DEFAULTS: 1_500.0}}


def _run(cfg: RunConfig, step_us: float) -> RunResult:
    r = probe_run(cfg, step_us)  # a run of known step time, as the probe's tests make them
    r.env = r.env | {"torch_threads": 2}
    return r


def _runs(points, rounds: int = 8) -> list[RunResult]:
    out = []
    for cfg in paycurve.plan(points, rounds, 2):
        if cfg.task == "overhead_probe":
            t = cfg.overrides["threads"]
            out.append(_run(cfg, 200 + PROBE_US[t][cfg.impl] + 5 * (cfg.repeat % 3)))
        else:
            plain = 2_000 if cfg.task == "mnist_gan" else 20_000
            out.append(_run(cfg, plain * (1 + 0.01 * (cfg.repeat % 2)) + EXTRA_US[cfg.impl]))
    return out


def test_every_point_runs_in_rounds_and_the_probe_at_one_thread_and_at_the_tasks():
    cells = paycurve.plan(POINTS[:2], 3, 2)
    probe = [c for c in cells if c.task == "overhead_probe"]
    assert {c.overrides["threads"] for c in probe} == {1, 2}
    tasks = [c for c in cells if c.task != "overhead_probe"]
    assert len(tasks) == 3 * 2 * 5 and all(c.slot > 0 and not c.overrides["validate_every_epoch"] for c in tasks)
    assert [c.task for c in tasks[:5]] == ["mnist_gan"] * 5 and tasks[10].task == "cifar_cnn"  # reversed in round 1


def test_the_prediction_that_holds_is_told_apart_from_the_one_that_does_not(tmp_path):
    points = (POINTS[0], POINTS[1])
    a = analyse(_runs(points), points)
    by = {(p["task"], p["impl"]): p for p in a["points"]}
    gan = by[("mnist_gan", LEAN)]
    assert gan["step_ms"] == pytest.approx(2.0, rel=0.02) and gan["pairs"] == 8
    assert gan["agrees_t2"] and not gan["agrees_t1"]  # the task pays what the probe at its thread count says
    assert gan["predicted_t2"] == pytest.approx(1 + 500 / 2_000, rel=0.02)
    text = write(_runs(points), tmp_path).read_text()
    assert "The probe at 2 torch thread(s) agrees with 4 of 4 resolved points." in text
    assert "The probe at 1 torch thread(s) agrees with 0 of 4" in text
    assert (tmp_path / "paycurve.png").is_file()


def test_the_points_span_two_decades_of_step_time_and_every_task():
    assert len(POINTS) >= 6 and {p.task for p in POINTS} == {"mnist_gan", "cifar_cnn", "efficientnet_binary"}
    for p in POINTS:
        cfg = point_cells(p, 0)[0]
        assert dataclasses.replace(cfg).overrides["validate_every_epoch"] is False


def test_the_report_predicts_a_task_from_the_probe_at_the_tasks_thread_count_and_heads_with_one_thread():
    from loopbench.report import probe as probe_report
    from loopbench.studies.suite import Matrix

    runs = _runs(POINTS[:1], rounds=6)
    for r in runs:
        r.env = r.env | {"torch_threads": r.config["overrides"].get("threads", 2)}
    assert probe_report.answers(runs)["cpu"]["threads"] == 1
    predict = probe_report.predictors(runs)["cpu"]
    assert predict["threads"] == 2 and predict["shapes"]["manual"][LEAN]["delta_us"] == pytest.approx(500, abs=10)
    cells = Matrix(tasks=("cifar_cnn",), probe_repeats=2, probe_threads=(1, 2)).cells()
    probe = [c for c in cells if c.task == "overhead_probe"]
    assert {c.overrides.get("threads", 1) for c in probe} == {1, 2}
    assert {c.impl for c in probe if c.overrides.get("threads") == 2} == {PLAIN, LEAN, DEFAULTS, FABRIC}


def test_points_are_chosen_by_name_and_an_unknown_one_is_refused_in_one_line(capsys, tmp_path):
    from loopbench.cli import main

    assert paycurve.select([POINTS[-1].name]) == (POINTS[-1],)
    assert not [c for c in paycurve.plan(POINTS[:1], 6, 2, probe=False) if c.task == "overhead_probe"]
    assert main(["paycurve", "--points", "no such point", "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "--points 'no such point': not a point" in err and len(err.strip().splitlines()) == 1


def test_the_sign_test_counts_points_per_trainer_not_a_points_two_trainers_twice():
    from loopbench.analysis.stats import sign_test
    from loopbench.report.paycurve import verdicts

    points = [
        {"task": "mnist_gan", "point": f"p{i}", "impl": impl, "ratio": 1.1, "low": 1.0, "high": 1.2,
         "predicted_t1": 1.05, "agrees_t1": True}
        for i in range(4) for impl in (LEAN, DEFAULTS)
    ]  # fmt: skip
    lines = verdicts({"threads": [1], "points": points})
    assert "lightning above at 4 of 4 points (sign test, two-sided: p = 0.12)" in lines[-1]
    assert "lightning-defaults above at 4 of 4 points" in lines[-1] and sign_test(8, 8) < 0.01  # not what 4 points say


OWN_US = {"overhead_probe": 300.0, "mnist_gan": 500.0, "cifar_cnn": 700.0}  # the lean Trainer's, one per decade


def test_a_trainer_whose_own_time_grows_with_the_step_is_told_from_one_whose_time_is_constant(tmp_path):
    """In place: the lean Trainer's own time grows by 200 us per decade of step (0.2, 2, 20 ms); the default's is
    a constant 900 us. The fit says which is which; the counted point gives instructions per us of own time."""
    points = (POINTS[0], POINTS[1])
    runs = []
    for cfg in paycurve.plan(points, 6, 1, counts=True):
        own = {PLAIN: 0.0, LEAN: OWN_US[cfg.task], DEFAULTS: 900.0}[cfg.impl]
        plain = {"overhead_probe": 200.0, "mnist_gan": 2_000.0, "cifar_cnn": 20_000.0}[cfg.task]
        r = _run(cfg, plain + own)
        r.rest_time_median_s = (50 + own + (5 if cfg.repeat % 2 else -5) * (cfg.impl != PLAIN)) * 1e-6  # +-5 us
        if cfg.clock == "instructions":
            r.instructions_per_step = {PLAIN: 1e6, LEAN: 2.8e6, DEFAULTS: 6e6}[cfg.impl]
        runs.append(r)
    assert {c.clock for c in paycurve.plan(points, 6, 1, counts=True)} == {"time", "instructions"}
    a = analyse(runs, points)
    by = {(p["task"], p["impl"]): p for p in a["points"]}
    assert by[("mnist_gan", LEAN)]["own_us"] == pytest.approx(500) and by[("mnist_gan", LEAN)][
        "share"
    ] == pytest.approx(0.25)
    probe = by[("overhead_probe", LEAN)]  # the probe: the shortest point, counted too, its ratio from its delta
    assert probe["own_us"] == pytest.approx(300) and probe["instructions_delta"] == pytest.approx(1.8e6)
    assert probe["ratio"] == pytest.approx(1 + 300 / 200) and probe["low"] <= probe["ratio"] <= probe["high"]
    assert by[("mnist_gan", LEAN)]["instructions_delta"] == pytest.approx(1.8e6)
    assert by[("mnist_gan", LEAN)]["instructions_per_us"] == pytest.approx(1.8e6 / 500)
    lean, default = a["models"][LEAN], a["models"][DEFAULTS]
    assert lean["b_us_per_decade"] == pytest.approx(200, rel=0.01) and lean["fitted_inside"] == 3
    assert default["b_us_per_decade"] == pytest.approx(0, abs=1) and default["constant_inside"] == 3
    assert lean["tasks"] == 2 and lean["tasks_constant_us"] == pytest.approx(600) and lean["tasks_constant_inside"] == 0
    assert lean["probe_own_us"][0] == pytest.approx(300)  # the tasks pay twice the probe's figure
    text = write(runs, tmp_path).read_text()
    assert "the Trainer's time per step grows with the step" in text and "+500 [+495, +505], 25.0%" in text
    assert "no one value fits every task" in text and "the tasks' constants: 1.6 to 2.3 times it" in text
    assert (tmp_path / "own_time.png").is_file()


def test_a_constant_per_task_fits_where_the_intervals_share_a_value_and_each_point_is_predicted_by_the_others():
    def row(task, own, half, step_ms):
        return {"task": task, "own_us": own, "own_low_us": own - half, "own_high_us": own + half, "step_ms": step_ms}

    gan = [row("mnist_gan", 1000, 200, 5), row("mnist_gan", 1100, 200, 50), row("mnist_gan", 1500, 100, 500)]
    t = per_task(gan)
    assert t["common_us"] is None and t["predicted"] == 0  # the 500 ms point lies above what the others share
    assert per_task(gan[:2]) == {"points": 2, "common_us": [900, 1200], "predicted": 2, "step_ms": [5, 50]}
    assert common([*gan[:2], row("cifar_cnn", 1150, 100, 9)]) == [1050, 1200]
