"""`loopbench module`: a user's own LightningModule, trained by the Trainers and by a plain loop from its hooks."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from implementations.module.optimizers import configure
from loopbench.cli import main
from loopbench.core.store import load_results
from loopbench.core.types import RunConfig, RunResult, UsageError
from loopbench.report import tables

DEMOS = "examples.demos.factories"
BAD = "tests.fixtures.modules"


@pytest.mark.parametrize(
    ("factory", "expected"),
    [
        ("tests.fixtures.nowhere:f", "cannot import tests.fixtures.nowhere"),
        (f"{BAD}:missing", f"{BAD} has no missing"),
        (f"{BAD}", "name the factory as PKG.MOD:FACTORY"),
        (f"{BAD}:not_a_module", "returned int, not a LightningModule"),
        (f"{BAD}:no_data", "the module has no training data"),
        (f"{BAD}:returns_none", "training_step returned NoneType, not a loss tensor"),
        (f"{BAD}:needs_trainer", "its training step needs the Trainer (self.trainer)"),
        (f"{BAD}:clips_itself", "overrides on_before_optimizer_step, which the plain loop does not mirror"),
    ],
)
def test_a_module_the_plain_loop_cannot_train_is_refused_in_one_line(factory, expected, capsys, tmp_path):
    assert main(["module", factory, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()  # refused before anything ran


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--processes", "1", "2"], "--processes: a module runs in one process"),
        (["--data", "real", "--data-dir", "."], "--data/--data-dir: a module brings its own data"),
        (["--pretrained"], "--pretrained: EfficientNet's ImageNet weights"),
    ],
)
def test_a_suite_option_that_means_nothing_for_a_module_is_refused_in_one_line(option, expected, capsys, tmp_path):
    assert main(["module", f"{DEMOS}:boring", *option, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("demo", ["boring", "manual_boring", "demo_model", "transformer", "torchvision_resnet"])
def test_lightnings_own_demo_modules_train_bitwise_the_same_in_the_plain_loop(demo, capsys):
    argv = ["parity", "--task", "module", "--set", f"factory={DEMOS}:{demo}", "--steps", "6", "--warmup-steps", "1"]
    assert main(argv) == 0, capsys.readouterr().out


def test_accumulation_and_clipping_are_mirrored(capsys):
    argv = ["parity", "--task", "module", "--set", f"factory={DEMOS}:torchvision_resnet",
            "--set", "accumulate_grad_batches=2", "--set", "gradient_clip_val=0.5", "--steps", "6"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().out


def test_manual_optimization_in_float16_is_refused_saying_why(capsys):
    argv = ["parity", "--task", "module", "--set", f"factory={DEMOS}:manual_boring", "--precision", "16-mixed"]
    assert main(argv) == 2
    assert "manual optimization in 16-mixed needs Lightning's loss scaling" in capsys.readouterr().err


@pytest.mark.heavy
@pytest.mark.slow
def test_the_verb_writes_a_report_with_parity_and_the_trainers_own_time(tmp_path, capsys):
    argv = ["module", f"{DEMOS}:boring", "--precisions", "32-true", "--preset", "smoke", "--impls", "pytorch",
            "lightning", "--repeats", "6", "--fresh-runs", "1", "--probe-repeats", "0",
            "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    results = load_results(tmp_path)
    assert all(r.ok for r in results) and {r.config["overrides"]["factory"] for r in results} == {f"{DEMOS}:boring"}
    report = (tmp_path / "REPORT.md").read_text()
    assert "bitwise" in report and "own time" in report
    # the Trainer's own time in place, from every round the drift rule kept (an interval needs 6: noise may take one)
    own = tables.overheads(results).set_index("impl").loc["lightning"]
    assert own["own ms"] > 0 and own["own time"].startswith(f"{own['own ms']:.2f} ms")


def _fresh(impl: str, digest: str) -> RunResult:
    return RunResult(
        config=RunConfig(task="module", impl=impl).to_dict(), weights_digest=digest, losses={"loss": [1.0]}
    )


def test_a_job_that_does_not_repeat_itself_is_not_comparable():
    runs = [_fresh("pytorch", "a"), _fresh("pytorch", "b"), _fresh("lightning", "a"), _fresh("lightning", "c")]
    row = tables.parities(runs).iloc[0]
    assert row["verdict"] == "not comparable" and "two runs of pytorch and of lightning" in row["why"]
    assert tables.parities([_fresh("pytorch", "a"), _fresh("lightning", "a")]).iloc[0]["verdict"] == "bitwise"


def _optimizer() -> torch.optim.Optimizer:
    return torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1)


def test_every_documented_form_of_configure_optimizers_is_read():
    o = _optimizer()
    step = torch.optim.lr_scheduler.StepLR(o, 1)
    assert configure(o, "f").optimizers == [o]
    assert configure([o], "f").optimizers == [o] and configure((o,), "f").optimizers == [o]
    two = configure(([o], [step]), "f")
    assert two.optimizers == [o] and two.schedulers[0].interval == "epoch"
    d = configure({"optimizer": o, "lr_scheduler": {"scheduler": step, "interval": "step", "frequency": 3}}, "f")
    assert (d.schedulers[0].interval, d.schedulers[0].frequency) == ("step", 3)
    assert len(configure([{"optimizer": o}, {"optimizer": _optimizer()}], "f").optimizers) == 2
    with pytest.raises(UsageError, match="ReduceLROnPlateau"):
        configure({"optimizer": o, "lr_scheduler": torch.optim.lr_scheduler.ReduceLROnPlateau(o)}, "f")
    with pytest.raises(UsageError, match="not one of the forms"):
        configure("adam", "f")


def test_samples_per_second_count_the_modules_own_batch_on_both_sides():
    from loopbench.launch.cell import run_cell

    config = RunConfig(task="module", impl="pytorch", preset="smoke", overrides={"factory": f"{DEMOS}:demo_model"})
    runs = [run_cell(dataclasses.replace(config, impl=impl)) for impl in ("pytorch", "lightning")]
    assert [r.batch_size for r in runs] == [16, 16] and all(r.samples_per_s for r in runs)
