"""The probe's answer, ladder and predictions, on synthetic runs with known costs (no training)."""

import pytest

from loopbench.overhead import PROBE_IMPLS, answer, plan
from loopbench.report import headline, write_report
from loopbench.report import probe as probe_report
from loopbench.trainers import DEFAULTS, LADDER, LEAN
from loopbench.types import RunConfig, RunResult

COST_US = {  # a made-up per-step cost of each variant over the plain loop's 200 us
    "pytorch": 0,
    "lightning-barebones": 400,
    "lightning": 410,
    "lightning+log": 850,
    "lightning+progress-bar": 660,
    "lightning+logger": 420,
    "lightning+summary": 410,
    "lightning+checkpointing": 470,
    "lightning-defaults": 1_300,
}


def _run(config: RunConfig, step_us: float) -> RunResult:
    steps, warmup = 1_000, 100
    return RunResult(
        config=config.to_dict(),
        task_config={"steps": steps},
        warmup_steps=warmup,
        step_time_median_s=step_us * 1e-6,
        host_step_time_median_s=step_us * 1e-6,
        window_s=(steps - warmup) * step_us * 1e-6 * 1.01,
        weights_digest="same",
        env={"cpu": "test cpu", "torch_threads": 1},
    )


def probe_runs(runs: int = 4) -> list[RunResult]:
    results = []
    for shape, impls in PROBE_IMPLS.items():
        for cell in plan("cpu", shape, runs, 1_000, impls):
            wobble = 3.0 * (cell.repeat % 2)  # the machine drifts a little between repeats
            results.append(_run(cell, 200 + COST_US[cell.impl] + wobble * (cell.impl != "pytorch")))
    return results


def test_each_rung_is_measured_against_its_base_and_the_sum_stands_beside_the_default_trainer():
    a = answer(probe_runs(), "cpu", 4)
    rows = {row["feature"]: row for row in a["ladder"] if row["shape"] == "auto"}
    for rung in LADDER:
        expected = COST_US[rung.impl] - COST_US[rung.base]
        if rung.base == "pytorch":
            expected += 1.5  # the mean wobble
        assert rows[rung.feature]["delta_us"] == pytest.approx(expected)
        assert (
            rows[rung.feature]["delta_low_us"] <= rows[rung.feature]["delta_us"] <= rows[rung.feature]["delta_high_us"]
        )
    total = a["ladder_totals"]["auto"]
    assert total["defaults_delta_us"] == pytest.approx(1_301.5)
    assert total["sum_us"] + total["remainder_us"] == pytest.approx(total["defaults_delta_us"])
    assert "manual" not in a["ladder_totals"]  # the suite measures the ladder in one shape only
    assert a["shapes"]["manual"][LEAN]["delta_us"] == pytest.approx(411.5)


def test_too_few_runs_give_no_ladder_total_rather_than_a_fake_interval():
    a = answer(probe_runs(runs=1), "cpu", 1)
    assert a["ladder_totals"] == {} and all(row["delta_us"] is None for row in a["ladder"])


def test_the_report_states_the_probe_and_predicts_each_task_from_it(tmp_path):
    from loopbench.store import load_results
    from tests.test_report import FIXTURE

    tasks = load_results(FIXTURE)
    results = probe_runs() + tasks
    probes = probe_report.answers(results)
    table = headline(tasks, probes).set_index("precision")
    plain_ms = next(r.step_time_median_s for r in tasks if r.ok and r.config["impl"] == "pytorch") * 1e3
    lean, defaults = table.loc["32-true", "probe predicts (L / Ld)"].split(" / ")
    assert float(lean.rstrip("x")) == pytest.approx(1 + 0.4115 / plain_ms, abs=0.01)
    assert float(defaults.rstrip("x")) > float(lean.rstrip("x"))
    text = write_report(results, tmp_path).read_text()
    assert "the lean Trainer +412 [" in text and "the default Trainer (with `self.log` every step) +1,302 [" in text
    assert "sum of the rungs" in text and "remainder (interactions)" in text
    assert "Every variant ended with bitwise the plain loop's weights" in text
    assert (tmp_path / "ladder_cpu.png").is_file() and (tmp_path / "pay_curve_cpu.png").is_file()
    assert DEFAULTS in text


def test_the_overhead_lines_name_every_variant_the_ladder_and_on_cuda_the_host_time():
    from loopbench.overhead import lines

    text = "\n".join(lines(answer(probe_runs(), "cpu", 4)))
    assert "lightning+progress-bar" in text and "sum of the rungs" in text and "host" not in text
    assert "host" in "\n".join(lines(answer(probe_runs(), "cuda", 4)))


def test_a_repeat_with_a_run_kept_off_the_cpu_is_left_out_and_named():
    runs = probe_runs()
    for r in runs:  # repeat 3 of the auto shape: another process took the CPU from one run
        if r.config["repeat"] == 3 and r.config["impl"] == "pytorch" and r.config["overrides"]["shape"] == "auto":
            r.step_time_median_s *= 2.5
            r.cpu_share = 0.4
    a = answer(runs, "cpu", 4)
    assert a["shapes"]["auto"][LEAN]["pairs"] == 3 and a["shapes"]["manual"][LEAN]["pairs"] == 4
    assert a["shapes"]["auto"][LEAN]["delta_us"] == pytest.approx(410 + 1.0)  # repeats 0, 1, 2: wobble 0, 3, 0
    assert a["disturbed"] == ["auto repeat 3 pytorch: 40% of a CPU"]
