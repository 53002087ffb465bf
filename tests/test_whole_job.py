"""The whole job: validation after every epoch through each framework's own path, the best weights kept,
early stopping, and what the time between epochs costs."""

import pytest
import torch

import implementations
from implementations.common import eval_loader, validation_epoch
from loopbench.analysis.parity import compare
from loopbench.core.types import RunConfig
from tests.helpers import train, trained

EPOCHS = {"validate_every_epoch": True}  # the smoke sets have 8 batches per epoch: 24 steps = 3 epochs


CELLS = [(task, "lightning") for task in implementations.TASKS] + [("cifar_cnn", "lightning-defaults")]


@pytest.mark.parametrize(("task", "impl"), CELLS)  # the default Trainer adds a sanity check and a logger
def test_validation_metrics_and_the_kept_weights_are_the_same_through_both_paths(task, impl):
    reference = trained(task, "pytorch", steps=24, overrides=EPOCHS)
    candidate = trained(task, impl, steps=24, overrides=EPOCHS)
    report = compare(reference, candidate)
    assert report.verdict == "bitwise" and report.holds, report.line()
    assert report.val_metrics_equal and len(report.val_metrics) == 3
    assert report.best_epochs[0] == report.best_epochs[1] and report.best_weights_equal
    monitor = implementations.spec(task).MONITOR[0]
    assert all(monitor in row[impl] and monitor in row["pytorch"] for row in report.val_metrics)
    for r in (reference, candidate):  # timed apart from the steps: a validation per epoch, a write per new best
        assert len(r.between_steps_s["validation"]) == 3 and len(r.between_steps_s["checkpoint"]) >= 1
        assert r.job_s >= r.end_to_end_s > 0


@pytest.mark.parametrize("task", implementations.TASKS)
def test_validation_draws_nothing_that_training_sees(task):
    """Training with a validation after every epoch gives the losses and weights of training without."""
    plain = train(task, "pytorch", steps=24)
    validated = trained(task, "lightning", steps=24, overrides=EPOCHS)  # the run the test above compares
    assert plain.losses == validated.losses and plain.weights_digest == validated.weights_digest


def test_the_last_epochs_logged_metrics_are_those_of_the_final_weights():
    """What Lightning logged after the last epoch equals the plain validation loop run afresh on the weights."""
    from implementations.settings import task_config
    from loopbench.harness.run import Run

    config = RunConfig("cifar_cnn", "lightning", steps=24, overrides=EPOCHS)
    result = trained("cifar_cnn", "lightning", steps=24, overrides=EPOCHS)
    spec = implementations.spec("cifar_cnn")
    cfg = task_config(config)
    model = spec.build_model(cfg)
    model.load_state_dict(result.weights)
    data = spec.build_data(cfg, type("Source", (), {"kind": "synthetic", "dir": None})())
    run = Run(config, cfg, data)
    fresh = validation_epoch(
        model,
        eval_loader(data.test, cfg.val_batch_size),
        spec.val_metrics(),
        lambda b, i: spec.val_outputs(model, b, i, cfg),
        run,
    )
    assert fresh == pytest.approx(result.val_metrics[-1], rel=1e-6)


@pytest.mark.parametrize("impl", ["pytorch", "lightning"])
def test_early_stopping_stops_both_sides_at_the_same_epoch(impl):
    # on the smoke set EfficientNet's AUROC stays at 0.5: never better than epoch 1, so patience 1 stops after epoch 2
    result = train("efficientnet_binary", impl, steps=40, overrides=EPOCHS | {"patience": 1})
    assert result.steps_run == 16 and len(result.val_metrics) == 2 and result.best_epoch == 1
    assert len(result.losses["loss"]) == 16


def test_the_per_batch_average_of_auroc_is_not_the_epoch_auroc():
    """The trap: `self.log("val_auroc", auroc_of_this_batch, on_epoch=True)` averages batch values."""
    from torchmetrics.functional.classification import binary_auroc

    g = torch.Generator().manual_seed(0)
    target = (torch.rand(512, generator=g) < 0.15).long()
    scores = (target * 0.6 + torch.rand(512, generator=g)).clamp(0, 1)
    batches = [(scores[i : i + 32], target[i : i + 32]) for i in range(0, 512, 32)]
    averaged = sum(float(binary_auroc(s, t)) for s, t in batches) / len(batches)
    epoch = float(binary_auroc(scores, target))
    assert abs(averaged - epoch) > 1e-3


def test_the_report_has_a_between_epochs_table(tmp_path):
    from loopbench.report import write_report

    results = [trained("mnist_gan", impl, steps=24, overrides=EPOCHS) for impl in ("pytorch", "lightning")]
    text = write_report(results, tmp_path).read_text()
    assert "## Between epochs: validation and checkpoints" in text
    assert "validation s/epoch" in text and "checkpoint s/write" in text
