"""`loopbench module`: a user's own LightningModule and the job its authors run, trained by the Trainers and by a
plain loop from its hooks; each gap a real module opens, with a positive control that breaks the plain side."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest
import torch

from implementations.module import callbacks as cbs
from implementations.module import plain
from implementations.module import pytorch_loop as loop
from implementations.module.optimizers import Optimization, configure
from loopbench.cli import main
from loopbench.commands.job_check import check_module
from loopbench.core.store import load_results
from loopbench.core.types import RunConfig, RunResult, UsageError
from loopbench.report import job as job_report
from loopbench.report import tables
from loopbench.report.first import verdict_line

DEMOS = "examples.demos.factories"
JOBS = "tests.fixtures.jobs"


def parity(job: str, tmp_path, *more: str) -> tuple[int, dict]:
    out = tmp_path / f"{job}.json"
    code = main(["parity", "--task", "module", "--set", f"factory={JOBS}:{job}", "--warmup-steps", "1", *more,
                 "--json", str(out)])  # fmt: skip
    return code, json.loads(out.read_text()) if out.exists() else {}


LOGGER = ("--set", "logger=True")


@pytest.mark.parametrize(
    ("job", "more"),
    [
        ("no_batch_idx", ()),  # training_step(self, batch), validation_step(self, batch)
        ("manual_none", ()),  # manual optimization, toggle_optimizer, a step that returns nothing
        ("reads_trainer", ()),  # self.trainer in setup, configure_optimizers (OneCycleLR) and training_step
        ("every_hook", ()),  # every hook family, validating twice an epoch
        ("callbacks", ()),  # a user's, fine-tuning, EarlyStopping, ModelCheckpoint, LearningRateMonitor (a logger: the
        # check finds it needs one), plateau
        ("logger_images", LOGGER),  # self.logger.experiment.add_image
        ("lightning_namespace", ()),  # import lightning as L
        ("streamed_with_length", ()),  # an IterableDataset with a length
    ],
)
def test_each_kind_of_job_trains_the_same_model_on_both_sides(job, more, tmp_path, capsys):
    code, report = parity(job, tmp_path, *more)
    assert code == 0 and report["verdict"] == "bitwise", capsys.readouterr().out
    assert report["logged_difference"] is None and report["logged_values"] > 0


def _skip(hook: str, via: str = "hook"):
    """A plain loop that forgets one hook (`via`: Loop.hook, the callbacks' and the module's; Loop.call, the
    module's alone)."""
    real = getattr(loop.Loop, via)

    def skipping(self, *args, **kwargs):
        name = args[0] if via == "hook" else args[1]
        return None if name == hook else real(self, *args, **kwargs)

    return skipping


def _deaf_logger(init):
    def deaf(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.trainer.__dict__["_logger"]._experiment = plain.Experiment({})  # its calls go nowhere

    return deaf


def _without(kind: type):
    real = cbs.plain_callbacks
    return lambda given, lightning, recorder: [c for c in real(given, lightning, recorder) if not isinstance(c, kind)]


@pytest.mark.parametrize(
    ("job", "more", "broken"),
    [
        ("every_hook", (), (loop.Loop, "hook", _skip("on_train_batch_start"))),
        ("every_hook", (), (loop.Loop, "hook", _skip("on_after_backward"))),
        ("every_hook", (), (loop.Loop, "hook", _skip("on_validation_batch_end"))),
        ("every_hook", (), (loop.Loop, "hook", _skip("on_train_epoch_end"))),
        ("no_batch_idx", (), (loop.Loop, "call", _skip("on_validation_model_eval", via="call"))),  # dropout on
        ("manual_none", (), (loop.Loop, "hook", _skip("on_train_batch_start"))),
        ("reads_trainer", (), (loop.Loop, "_stepping_batches", lambda self, n: 4 * n)),  # twice the steps
        ("callbacks", LOGGER, (cbs, "plain_callbacks", None)),  # the user's weight-changing callback dropped
        ("callbacks", LOGGER, (Optimization, "step_schedulers", lambda self, *a, **k: None)),  # no scheduler steps
        ("logger_images", LOGGER, (loop.Loop, "__init__", None)),  # the plain side's logger records nothing
    ],
    ids=lambda x: x if isinstance(x, str) else None,
)
def test_a_plain_side_that_skips_a_hook_or_drops_a_callback_is_a_mismatch(job, more, broken, tmp_path, monkeypatch):
    owner, name, value = broken
    if owner is cbs:
        from tests.fixtures.jobs import Shrink

        value = _without(Shrink)
    if name == "__init__":
        value = _deaf_logger(loop.Loop.__init__)
    monkeypatch.setattr(owner, name, value)
    code, report = parity(job, tmp_path, *more)
    assert code == 1 and not report["holds"], report


@pytest.mark.parametrize(
    ("factory", "expected"),
    [
        ("tests.fixtures.nowhere:f", "cannot import tests.fixtures.nowhere"),
        (f"{JOBS}:missing", f"{JOBS} has no missing"),
        (f"{JOBS}", "name the factory as PKG.MOD:FACTORY"),
        (f"{JOBS}:not_a_module", "returned int, not a LightningModule"),
        (f"{JOBS}:no_data", "the module has no training data"),
        (f"{JOBS}:raises", "raised RuntimeError: no data here"),
        (f"{JOBS}:unknown_setting", "the Trainer cannot train it: TypeError: Trainer.__init__() got an unexpected"),
        (f"{JOBS}:nan_loss", "the loss is nan at step 0"),
        (f"{JOBS}:old_style", "the Trainer cannot train it: NotImplementedError: Support for `validation_epoch_end`"),
    ],
)
def test_a_job_the_verb_cannot_take_is_refused_in_one_line(factory, expected, capsys, tmp_path):
    assert main(["module", factory, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "run").exists()  # refused before anything ran


def test_a_loader_without_a_length_is_named_as_what_the_plain_loop_cannot_mirror():
    found, trainer = check_module(f"{JOBS}:streamed", {}, "32-true")
    assert found["unmirrored"].startswith("Unmirrored: its training loader has no length") and trainer.ok


def test_a_step_that_raises_later_is_a_failed_run_in_one_line(capsys):
    code = main(["parity", "--task", "module", "--set", f"factory={JOBS}:fails_later"])
    err = capsys.readouterr().err
    assert code == 1 and "error: ValueError: the step raised at step 3" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--processes", "1", "2"], "--processes: a module runs in one process"),
        (["--data", "real", "--data-dir", "."], "--data/--data-dir: a module brings its own data"),
        (["--pretrained"], "--pretrained: EfficientNet's ImageNet weights"),
        (["--set", "check=True"], "--set check=...: the verb sets it"),
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
def test_the_verb_writes_a_report_with_parity_the_trainers_own_time_and_the_phases(tmp_path, capsys):
    argv = ["module", f"{DEMOS}:boring", "--preset", "smoke", "--impls", "pytorch", "lightning", "--repeats", "6",
            "--fresh-runs", "1", "--probe-repeats", "0", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    results = load_results(tmp_path)
    assert all(r.ok for r in results) and {r.config["overrides"]["factory"] for r in results} == {f"{DEMOS}:boring"}
    report = (tmp_path / "REPORT.md").read_text()
    assert "bitwise" in report and "own time" in report and "## Where the job's time goes" in report
    # the Trainer's own time in place, from every round the drift rule kept (an interval needs 6: noise may take one)
    own = tables.overheads(results).set_index("impl").loc["lightning"]
    assert own["own ms"] > 0 and own["own time"].startswith(f"{own['own ms']:.2f} ms")
    phases = job_report.phases(results).set_index("impl")
    assert phases.loc["pytorch", "whole job s"] > phases.loc["pytorch", "training steps s"] > 0


@pytest.mark.heavy
@pytest.mark.slow
def test_a_job_the_plain_loop_cannot_mirror_still_gets_the_trainers_cost(tmp_path, capsys):
    argv = ["module", f"{JOBS}:swa", "--preset", "smoke", "--fresh-runs", "1", "--probe-repeats", "0",
            "--impls", "pytorch", "lightning", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    said = capsys.readouterr().out
    assert "parity: not checked (Unmirrored: callback StochasticWeightAveraging: averages the weights" in said
    results = load_results(tmp_path)
    assert {r.config["impl"] for r in results} == {"lightning"} and all(r.ok for r in results)
    row = tables.parities(results).iloc[0]
    assert row["verdict"] == "not checked" and "StochasticWeightAveraging" in row["why"]
    assert "the Trainer's time outside the model's own work" in (tmp_path / "REPORT.md").read_text()


def _fresh(impl: str, digest: str, logged: dict | None = None) -> RunResult:
    return RunResult(
        config=RunConfig(task="module", impl=impl).to_dict(),
        weights_digest=digest,
        losses={"loss": [1.0]},
        logged=logged or {},
    )


def test_a_job_that_does_not_repeat_itself_is_not_comparable():
    runs = [_fresh("pytorch", "a"), _fresh("pytorch", "b"), _fresh("lightning", "a"), _fresh("lightning", "c")]
    row = tables.parities(runs).iloc[0]
    assert row["verdict"] == "not comparable" and "two runs of pytorch and of lightning" in row["why"]
    assert tables.parities([_fresh("pytorch", "a"), _fresh("lightning", "a")]).iloc[0]["verdict"] == "bitwise"


def _optimizer() -> torch.optim.Optimizer:
    return torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1)


def test_a_logged_value_that_differs_between_two_runs_of_one_side_is_not_judged_and_the_rest_is():
    def runs(clock: list[float], acc: float) -> list[RunResult]:  # two runs a side: a wall-clock value, an accuracy
        return [_fresh(impl, "a", {"training_step/seconds": [s], "training_step/acc": [acc]})
                for impl in ("pytorch", "lightning") for s in clock]  # fmt: skip

    row = tables.parities(runs([0.1, 0.2], 0.5)).iloc[0]
    assert row["verdict"] == "bitwise" and row["holds"] and row["why"].startswith("training_step/seconds: differs")
    control = runs([0.1, 0.2], 0.5)
    control[-1].logged["training_step/acc"] = control[-2].logged["training_step/acc"] = [0.6]  # Lightning's differs
    row = tables.parities(control).iloc[0]
    assert not row["holds"] and "logged values differ: training_step/acc differs" in row["why"]
    said = verdict_line(tables.parities(control), pd.DataFrame(), {})  # the report's first line does not say "same"
    assert said == "**Same model:** 0 of 1 cells (bitwise weights; logs or validation differ)."


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
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(o)
    watched = configure({"optimizer": o, "lr_scheduler": plateau, "monitor": "val_loss"}, "f").schedulers[0]
    assert watched.reduce_on_plateau and watched.monitor == "val_loss"
    with pytest.raises(UsageError, match="ReduceLROnPlateau needs a 'monitor'"):
        configure({"optimizer": o, "lr_scheduler": plateau}, "f")
    with pytest.raises(UsageError, match="not one of the forms"):
        configure("adam", "f")


def test_samples_per_second_count_the_modules_own_batch_on_both_sides():
    from loopbench.launch.cell import run_cell

    config = RunConfig(task="module", impl="pytorch", preset="smoke", overrides={"factory": f"{DEMOS}:demo_model"})
    runs = [run_cell(dataclasses.replace(config, impl=impl)) for impl in ("pytorch", "lightning")]
    assert [r.batch_size for r in runs] == [16, 16] and all(r.samples_per_s for r in runs)


def test_a_trainer_attribute_the_plain_loop_does_not_keep_is_named_with_its_hook():
    trainer = plain.Trainer(torch.nn.Linear(1, 1), torch.device("cpu"), {k: None for k in (
        "max_epochs", "max_steps", "accumulate_grad_batches", "gradient_clip_val", "gradient_clip_algorithm",
        "val_check_interval", "check_val_every_n_epoch", "limit_train_batches", "limit_val_batches",
        "log_every_n_steps", "precision")}, None)  # fmt: skip
    trainer.hook = "on_train_start"
    with pytest.raises(plain.Unmirrored, match=r"reads self.trainer.fit_loop in on_train_start"):
        trainer.fit_loop  # noqa: B018
    assert not hasattr(trainer, "profiler")  # hasattr still answers: an AttributeError
