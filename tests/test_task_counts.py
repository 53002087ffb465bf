"""Each CPU task cell counted in instructions: planned last, one process per cell, side by side; the report's
counted ratios and the probe's prediction for them, on hand-made results."""

import pytest

from loopbench.core.trainers import DEFAULTS, FABRIC, LEAN, PLAIN
from loopbench.core.types import RunConfig, RunResult
from loopbench.report import counts as counts_report
from loopbench.report import headline, parities
from loopbench.studies.batches import batches
from loopbench.studies.suite import Matrix


def test_the_counts_come_last_one_thread_and_only_where_valgrind_can_count_the_preset():
    matrix = Matrix(tasks=("mnist_gan", "cifar_cnn"), precisions=("32-true",), processes=(1, 2), task_counts=True)
    cells = matrix.cells()
    counted = [c for c in cells if c.clock == "instructions"]
    assert cells[-len(counted) :] == counted  # after every timed run
    assert {(c.task, c.processes, c.threads) for c in counted} == {("mnist_gan", 1, 1), ("cifar_cnn", 1, 1)}
    assert [c.impl for c in counted[:4]] == [PLAIN, LEAN, DEFAULTS, FABRIC]
    assert all(c.steps == 6 and c.warmup_steps == 2 for c in counted)
    groups = [b for b in batches(cells) if b[0].clock == "instructions"]
    assert [len(b) for b in groups] == [4, 4]  # one valgrind process per cell
    assert not Matrix(tasks=("cifar_cnn",), devices=("cuda",), task_counts=True).count_cells(
        "cifar_cnn", "cuda", "32-true", 1
    )
    assert not [c for c in Matrix(tasks=("cifar_cnn",)).cells() if c.clock == "instructions"]


def _run(task: str, impl: str, **kw) -> RunResult:
    config = RunConfig(task, impl, "cpu", "32-true", "quick", **kw)
    return RunResult(config=config.to_dict(), task_config={"steps": 6}, warmup_steps=2)


def _counted(task: str, per_step: dict[str, float]) -> list[RunResult]:
    out = []
    for impl, n in per_step.items():
        r = _run(task, impl, steps=6, warmup_steps=2, clock="instructions", threads=1)
        r.instructions_per_step = n
        out.append(r)
    return out


COUNTED = {"manual": {LEAN: {"delta": 3.0e6}, DEFAULTS: {"delta": 8.0e6}}}
PROBE = {"cpu": {"shapes": {}, "instructions": {"shapes": COUNTED}}}


def test_the_counted_ratio_is_set_beside_the_probes_prediction_with_a_verdict():
    runs = _counted("mnist_gan", {PLAIN: 100e6, LEAN: 103.2e6, DEFAULTS: 112e6})
    table = counts_report.table(runs, PROBE).set_index("impl")
    assert table.loc[LEAN, "counted ratio"] == pytest.approx(1.032)
    assert table.loc[LEAN, "probe predicts"] == pytest.approx(1.03) and table.loc[LEAN, "verdict"] == "agrees"
    assert table.loc[DEFAULTS, "delta M/step"] == pytest.approx(12.0)
    assert table.loc[DEFAULTS, "verdict"] == "counted above"  # 1.12 against 1.08: 4% of the step unexplained
    assert counts_report.table(runs, None).loc[0, "verdict"] == "–"  # no probe: no prediction


def test_the_headline_gives_a_counted_cell_its_ratio_and_the_counts_never_count_as_fresh_runs():
    fresh = []
    for impl in (PLAIN, LEAN, DEFAULTS):
        r = _run("mnist_gan", impl)
        r.samples_per_s, r.step_time_median_s, r.losses = 1000.0, 0.02, {"loss_d": [1.0, 0.5]}
        r.weights_digest = "same"
        fresh.append(r)
    counted = _counted("mnist_gan", {PLAIN: 100e6, LEAN: 103.2e6, DEFAULTS: 112e6})
    for r in counted:
        r.losses = {"loss_d": [9.0, 9.0]}  # a count's own losses: never compared with a fresh run's
    row = headline(fresh + counted, PROBE).iloc[0]
    assert row["instructions, 1 thread (L / Ld)"] == "1.032x / 1.120x"
    assert row["counted vs probe (L / Ld)"] == "agrees / counted above"
    assert set(parities(counted + fresh).verdict) == {"bitwise"}


def test_counts_run_beside_one_thread_runs_and_never_beside_a_run_of_several_threads(monkeypatch):
    import threading
    import time

    from loopbench.studies import batches as launch

    events, lock = [], threading.Lock()

    def note(what: str, configs) -> list[RunResult]:
        with lock:
            events.append(what)
        return [RunResult(config=c.to_dict()) for c in configs]

    def counted(configs, timeout_s):
        note("count starts", [])
        time.sleep(0.3)
        return note("count ends", configs)

    monkeypatch.setattr("loopbench.launch.valgrind.count", counted)
    monkeypatch.setattr(launch, "run_forked_batch", lambda configs, timeout_s: note(configs[0].task, configs))
    monkeypatch.setattr(launch, "run_isolated", lambda config, timeout_s: note(config.task, [config])[0])
    matrix = Matrix(tasks=("cifar_cnn",), precisions=("32-true",), probe_repeats=2, probe_count=True, repeats=1)
    results = launch.run_cells(matrix.cells())
    assert len(results) == len(matrix.cells())
    assert events.index("count starts") < events.index("overhead_probe")  # the probe's rounds run beside it
    assert events.index("cifar_cnn") > max(i for i, e in enumerate(events) if e == "count ends")  # tasks wait


def test_an_interrupt_leaves_no_count_running(monkeypatch):
    import threading

    from loopbench.studies import batches as launch

    stopped = threading.Event()

    def counted(configs, timeout_s):
        stopped.wait(10)  # a count runs until it is stopped
        return [RunResult(config=c.to_dict(), status="error", message="killed") for c in configs]

    def interrupted(configs, timeout_s):
        raise KeyboardInterrupt

    monkeypatch.setattr("loopbench.launch.valgrind.count", counted)
    monkeypatch.setattr("loopbench.launch.valgrind.stop_all", stopped.set)
    monkeypatch.setattr(launch, "run_forked_batch", interrupted)
    matrix = Matrix(tasks=("cifar_cnn",), precisions=("32-true",), probe_repeats=2, probe_count=True, repeats=1)
    with pytest.raises(KeyboardInterrupt):
        launch.run_cells(matrix.cells())
    assert stopped.is_set()
