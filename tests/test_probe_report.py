"""The probe's answer, ladder and predictions, on synthetic runs with known costs (no training)."""

import pytest

from loopbench.analysis.probe import answer
from loopbench.core.trainers import DEFAULTS, LADDER, LEAN
from loopbench.core.types import RunConfig, RunResult
from loopbench.report import headline, write_report
from loopbench.report import probe as probe_report
from loopbench.studies.overhead import PROBE_IMPLS, plan

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
    "fabric": 60,
}


def probe_run(config: RunConfig, step_us: float) -> RunResult:
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


def probe_runs(rounds: int = 8) -> list[RunResult]:
    """Rounds P V1 P V2 ... P; the machine's speed drifts between rounds (+3 us every other round, the same
    for every segment of a round: the sandwich cancels it)."""
    results = []
    for k in range(rounds):
        for shape, impls in PROBE_IMPLS.items():
            for cell in plan("cpu", shape, 1, 1_000, impls, first=k):
                results.append(probe_run(cell, 200 + COST_US[cell.impl] + 3.0 * (k % 2)))
    return results


def test_each_rung_is_measured_against_its_base_and_the_sum_stands_beside_the_default_trainer():
    a = answer(probe_runs(), "cpu")
    assert a["method"] == "rounds" and a["rounds"] == 8 and a["left_out"] == []
    rows = {row["feature"]: row for row in a["ladder"] if row["shape"] == "auto"}
    for rung in LADDER:
        row = rows[rung.feature]
        assert row["delta_us"] == pytest.approx(COST_US[rung.impl] - COST_US[rung.base])
        assert row["delta_low_us"] <= row["delta_us"] <= row["delta_high_us"] and row["pairs"] == 8
    total = a["ladder_totals"]["auto"]
    assert total["defaults_delta_us"] == pytest.approx(1_300)
    assert total["sum_us"] + total["remainder_us"] == pytest.approx(total["defaults_delta_us"])
    assert "manual" not in a["ladder_totals"]  # the ladder is measured in one shape only
    assert a["shapes"]["manual"][LEAN]["delta_us"] == pytest.approx(410)
    assert a["shapes"]["auto"][LEAN]["half_width"] == pytest.approx(0.0, abs=1e-9)
    assert a["targets"]["met_in"] == "time" and a["targets"]["instructions"] == {}  # nothing counted here


def test_a_pair_is_left_out_where_a_segment_changed_speed_not_where_its_neighbour_sits_on_another_level():
    runs = probe_runs()
    auto = [r for r in runs if r.config["repeat"] == 2 and _auto(r)]
    level = next(r for r in auto if r.config["slot"] == 3)
    assert level.config["impl"] == "pytorch"  # P(1) V(2) P(3) V(4): a plain segment on a slower level
    level.step_time_median_s *= 1.5
    moved = next(r for r in auto if r.config["slot"] == 6)  # a variant: the machine halved its speed halfway
    moved.step_times_s = [1e-3] * 100 + [moved.step_time_median_s] * 450 + [2 * moved.step_time_median_s] * 450
    a = answer(runs, "cpu")
    assert a["left_out"] == [f"auto round 2 {moved.config['impl']}: a segment's two halves differ by 100%"]
    assert a["shapes"]["auto"][LEAN]["delta_us"] == pytest.approx(410)  # the other rounds still say it


def test_the_median_is_not_moved_by_one_round_that_drift_hit_inside_a_segment():
    runs = probe_runs(rounds=12)
    for r in runs:  # a variant segment of round 5 ran while a neighbour took the machine
        if r.config["repeat"] == 5 and r.config["impl"] == LEAN and _auto(r):
            r.step_time_median_s += 2_000e-6
    lean = answer(runs, "cpu")["shapes"]["auto"][LEAN]
    assert lean["delta_us"] == pytest.approx(410) and lean["delta_high_us"] < 500


def _auto(r: RunResult) -> bool:
    return r.config["overrides"]["shape"] == "auto"


def test_results_saved_one_process_per_run_still_give_their_answer():
    runs = [
        probe_run(RunConfig("overhead_probe", impl, overrides={"shape": "auto"}, repeat=k), 200 + COST_US[impl] + k)
        for k in range(4)
        for impl in ("pytorch", LEAN)
    ]
    a = answer(runs, "cpu")
    assert a["method"] == "fresh processes" and a["shapes"]["auto"][LEAN]["delta_us"] == pytest.approx(410)


def test_too_few_rounds_give_no_ladder_total_rather_than_a_fake_interval():
    a = answer(probe_runs(rounds=1), "cpu")
    assert a["ladder_totals"] == {} and all(row["delta_us"] is None for row in a["ladder"])


def test_the_report_states_the_probe_and_predicts_each_task_from_it(tmp_path):
    from loopbench.core.store import load_results
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
    assert "the lean Trainer +410 [" in text and "the default Trainer (with `self.log` every step) +1,300 [" in text
    assert "sum of the rungs" in text and "remainder (interactions)" in text
    assert "Every variant ended with bitwise the plain loop's weights" in text
    assert (tmp_path / "ladder_cpu.png").is_file() and (tmp_path / "pay_curve_cpu.png").is_file()
    assert DEFAULTS in text


def test_the_overhead_lines_name_every_variant_the_ladder_and_on_cuda_the_host_time():
    from loopbench.commands.probe import lines

    text = "\n".join(lines(answer(probe_runs(), "cpu")))
    assert "lightning+progress-bar" in text and "sum of the rungs" in text and "host" not in text
    assert "host" in "\n".join(lines(answer(probe_runs(), "cuda")))


def test_a_segment_kept_off_the_cpu_is_left_out_and_named():
    runs = probe_runs()
    for r in runs:  # round 3 of the auto shape: another process took the CPU from the lean Trainer's segment
        if r.config["repeat"] == 3 and r.config["impl"] == LEAN and _auto(r):
            r.step_time_median_s *= 2.5
            r.cpu_share = 0.4
    a = answer(runs, "cpu")
    assert a["shapes"]["auto"][LEAN]["pairs"] == 7 and a["shapes"]["manual"][LEAN]["pairs"] == 8
    assert a["shapes"]["auto"][LEAN]["delta_us"] == pytest.approx(410)
    assert a["disturbed"] == ["auto round 3 lightning: 40% of a CPU"]


def test_instruction_counts_give_per_step_deltas_and_a_rate():
    runs = probe_runs()
    for impl, n in (("pytorch", 0.8e6), (LEAN, 2.7e6)):
        runs.append(RunResult(config=RunConfig("overhead_probe", impl, overrides={"shape": "auto"},
                                               clock="instructions").to_dict(), instructions_per_step=n))  # fmt: skip
    a = answer(runs, "cpu")
    counts = a["instructions"]["shapes"]["auto"]
    assert counts[LEAN]["delta"] == pytest.approx(1.9e6) and counts["pytorch"]["delta"] == 0
    assert counts["pytorch"]["per_us"] == pytest.approx(0.8e6 / a["shapes"]["auto"]["pytorch"]["us_per_step"])


def test_a_report_of_the_probe_alone_renders(tmp_path):
    """What a suite interrupted during its probe leaves behind: no task run yet."""
    text = write_report(probe_runs(), tmp_path).read_text()
    assert "No task runs" in text and "the lean Trainer +410 [" in text
    assert (tmp_path / "pay_curve_cpu.png").is_file() and (tmp_path / "ladder_cpu.png").is_file()


def test_a_figure_without_an_interval_says_so_rather_than_failing():
    v = {"in_place_own_us": 412.0, "in_place_own_low_us": None, "in_place_own_high_us": None}
    assert probe_report.interval_text(v, "in_place_own") == "+412 (no interval: too few pairs)"
    assert probe_report.interval_text({}, "in_place_own") == "–"
