"""torch.compile as an axis: each framework compiles where its docs say, dynamo's graphs, breaks and recompiles are
kept with torch's reasons, and every compiled implementation trains the plain loop's bits. The eager backend
(dynamo's capture without code generation) keeps these to seconds; the committed report is inductor's."""

import json
import os

import pytest
import torch

from loopbench.cli import main
from loopbench.core.types import RunConfig, RunResult, UsageError
from loopbench.harness.compiling import Compiler
from loopbench.harness.placement import splits
from loopbench.launch.cell import run_cell
from loopbench.launch.forked import run_forked_batch
from loopbench.report import compile as compile_report
from loopbench.studies import compile as study

PROBE = {"compile_backend": "eager", "steps": 12}
CIFAR = {"compile_backend": "eager", "steps": 4}
VARIANTS = [
    ("pytorch", "on"),
    ("fabric", "on"),
    ("lightning", "on"),
    ("lightning", "inner"),
    ("lightning-defaults", "on"),
]


@pytest.fixture(scope="module")
def compiled():
    """Every compiled run in one process forked from the server (a clean one: no other test's hooks or dynamo
    state), each starting cold; keyed (task, impl, mode)."""
    configs = [RunConfig("overhead_probe", "pytorch", steps=12)]
    configs += [RunConfig("overhead_probe", impl, compile=mode, **PROBE) for impl, mode in VARIANTS]
    configs += [RunConfig("cifar_cnn", "pytorch", compile="on", **CIFAR)]
    configs += [RunConfig("cifar_cnn", "lightning", compile="inner", **CIFAR)]
    results = run_forked_batch(configs, timeout_s=600)
    assert all(r.ok for r in results), [(r.run_config.label, r.message) for r in results if not r.ok]
    return {(r.config["task"], r.config["impl"], r.config["compile"]): r for r in results}


def test_each_framework_compiles_where_its_docs_say_and_trains_the_plain_loops_bits(compiled):
    plain = compiled[("overhead_probe", "pytorch", "off")]
    assert plain.compiled == {}  # eager: nothing compiled, nothing reported
    for impl, mode in VARIANTS:
        r = compiled[("overhead_probe", impl, mode)]
        assert r.weights_digest == plain.weights_digest and r.losses == plain.losses, (impl, mode)
        assert r.compiled["graphs"] >= 1 and r.compiled["cache"] == "cold", (impl, mode, r.compiled)
        if impl != "lightning-defaults":  # the harness adds no break of its own
            assert r.compiled["graph_breaks"] == {}, (impl, mode, r.compiled)
    # Lightning compiles the training step too, and `self.log` is torch.compiler.disable'd inside it: a break a step
    breaks = compiled[("overhead_probe", "lightning-defaults", "on")].compiled["graph_breaks"]
    assert any("torch.compiler.disable" in reason for reason in breaks), breaks


def test_a_task_compiled_inside_the_trainer_trains_the_compiled_plain_loops_bits(compiled):
    plain, inner = compiled[("cifar_cnn", "pytorch", "on")], compiled[("cifar_cnn", "lightning", "inner")]
    assert inner.weights_digest == plain.weights_digest and inner.compiled["graphs"] >= 1


def test_compiled_runs_take_no_in_place_split_and_a_bad_mode_is_refused():
    assert splits(RunConfig("cifar_cnn", "pytorch")) and not splits(RunConfig("cifar_cnn", "pytorch", compile="on"))
    assert (
        "/compile-inner-eager/" in RunConfig("cifar_cnn", "lightning", compile="inner", compile_backend="eager").label
    )
    with pytest.raises(UsageError, match="choose --compile from off, on, inner"):
        run_cell(RunConfig("overhead_probe", "pytorch", compile="max"))


def test_the_compile_verb_writes_its_report_with_every_variant_beside_the_plain_loops(tmp_path, capsys):
    argv = ["compile", "--tasks", "overhead_probe", "--impls", "pytorch", "lightning", "--fresh-runs", "1",
            "--compile-backend", "eager", "--steps", "12", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads((tmp_path / "compile.json").read_text())["rows"]
    assert [(r["implementation"], r["compile"]) for r in rows] == [
        ("pytorch", "off"),
        ("pytorch", "on"),
        ("lightning", "on"),
        ("lightning", "inner"),
    ]
    assert all(r["parity vs plain eager"] == "bitwise" for r in rows[1:])
    report = (tmp_path / "REPORT.md").read_text()
    assert "Backend: eager" in report and "Nothing: every run ended." in report


def test_a_kept_cache_is_found_warm_after_its_first_run_and_each_release_gets_its_own(tmp_path):
    kept = tmp_path / "kept"
    first = Compiler("on", "eager", str(kept))
    assert first.summary()["cache"] == "cold"
    (kept / "entry").write_text("what a compile left")
    first.close()
    second = Compiler("on", "eager", str(kept))
    assert second.summary()["cache"] == "warm"
    second.close()
    assert (kept / "entry").exists()  # kept: the next run of the variant finds it
    cold = Compiler("on", "eager")
    assert cold.summary()["cache"] == "cold"
    cold.close()
    assert not os.path.exists(cold.cache)  # a run's own cache goes with it

    base = RunConfig("overhead_probe", "pytorch")
    cells = study.plan([base], ("pytorch", "lightning"), ("on",), "eager", 2, ("2.5.6", None), tmp_path)
    first_repeat = [(c.impl, c.compile, c.lightning) for c in cells if c.repeat == 0]
    assert first_repeat == [("pytorch", "off", None), ("pytorch", "on", None), ("lightning", "on", "2.5.6"),
                            ("lightning", "on", None)]  # fmt: skip
    assert [c.impl for c in cells if c.repeat == 1] == ["lightning", "lightning", "pytorch", "pytorch"]
    caches = {c.label: c.compile_cache for c in cells}
    assert caches[base.label] is None and len({v for v in caches.values() if v}) == 3  # one per compiled variant
    assert all(c.compile_cache == caches[c.label] for c in cells)  # the same folder in every repeat


def test_compiled_steps_are_set_on_the_pay_curve_the_compiled_probe_predicts():
    def run(task, impl, repeat, step_s):
        config = RunConfig(task, impl, compile="on", repeat=repeat).to_dict()
        return RunResult(config, step_times_s=[5.0, step_s], step_time_median_s=step_s)

    results = []
    for k, extra_us in enumerate((500, 600, 700)):  # the compiled probe: the lean Trainer costs 600 us a step
        results += [
            run("overhead_probe", "pytorch", k, 1e-3),
            run("overhead_probe", "lightning", k, 1e-3 + extra_us * 1e-6),
        ]
        results += [run("cifar_cnn", "pytorch", k, 6e-3), run("cifar_cnn", "lightning", k, 6e-3 * (1.5 + 0.01 * k))]
    (point,) = [p for p in compile_report.curve(results) if p["task"] == "cifar_cnn"]
    assert point["delta_us"] == pytest.approx(600) and point["predicted"] == pytest.approx(1.1)
    assert point["ratio"] == pytest.approx(1.51, rel=1e-3) and point["verdict"] == "measured above"


def test_what_dynamo_made_is_told_per_release_and_alike_releases_are_grouped():
    from loopbench.report import dynamo

    def run(release, breaks, status="ok"):
        config = RunConfig("overhead_probe", "lightning-defaults", compile="on", lightning=release).to_dict()
        made = {"graphs": 1 + len(breaks), "graph_breaks": breaks, "recompiles": []}
        return RunResult(config, status=status, message="boom" if status != "ok" else "", compiled=made)

    results = [run("2.1.4", {"log": 2}), run("2.0.9.post0", {"log": 2}), run("2.5.6", {}), run("2.6.0", {}, "error")]
    assert dynamo.releases(results) == ["2.0.9.post0", "2.1.4", "2.5.6", "2.6.0"]
    assert dynamo.table(results).iloc[0].tolist()[3:] == ["2 / 2 / 0", "2 / 2 / 0", "1 / 0 / 0", "error"]
    (line,) = dynamo.changes(results)
    assert "**2.0.9.post0 to 2.1.4**: breaks: 2 x log" in line and "**2.5.6**: breaks: none" in line
    assert "**2.6.0**: error: boom" in line


def test_inner_compiles_the_nets_and_leaves_a_loss_held_as_a_module_eager():
    module = torch.nn.Module()
    module.model, module.criterion = torch.nn.Linear(2, 1), torch.nn.BCEWithLogitsLoss()
    compiler = Compiler("inner", "eager")
    compiler.compiled(module, trainer=True)
    compiler.close()
    assert module.model._compiled_call_impl is not None and module.criterion._compiled_call_impl is None
