"""Lightning Fabric: each task's plain loop with Fabric's device, precision and data-parallel plumbing, trained to the
plain loop's bits in every CPU precision (the cases are the first of each task's own parity tests, so that a test
runner that ran those reuses their plain runs; the DDP cells are in test_ddp's batch). Fabric hands a mixed-precision
forward's output back in float32: a loss that reads that dtype computes otherwise (shown below). A task without a
Fabric loop is refused in one line."""

import json

import pytest
import torch

from implementations.efficientnet_binary import spec as efficientnet
from loopbench.analysis.parity import compare_cell
from loopbench.cli import main
from loopbench.core.precision import PRECISIONS
from tests.helpers import assert_bitwise_parity, train

FIRST = {"seed": 0, "steps": None, "batch_size": None, "overrides": {}}  # the smoke preset, seed 0
ONE_STEP = {"seed": 0, "steps": 1, "batch_size": 16, "overrides": {"train_size": 16, "test_size": 16}}
SMALL = {  # float16 and bfloat16 where the CPU emulates them (slow): CIFAR as its own tests run it; EfficientNet's
    # backward takes seconds a step there (test_parity_efficientnet_binary crosses an epoch's end): one step
    ("cifar_cnn", "16-mixed"): {
        "seed": 0,
        "steps": 3,
        "batch_size": 32,
        "overrides": {"train_size": 64, "test_size": 64},
    },
    ("efficientnet_binary", "16-mixed"): ONE_STEP,
    ("efficientnet_binary", "bf16-mixed"): ONE_STEP,
}
CASES = [
    pytest.param(task, {"precision": p, **SMALL.get((task, p), FIRST)}, id=f"{task}-{p}")
    for task in ("cifar_cnn", "mnist_gan", "efficientnet_binary")
    for p in PRECISIONS
] + [
    pytest.param("overhead_probe", {"steps": 20, "overrides": {"shape": s}}, id=f"overhead_probe-{s}")
    for s in ("auto", "manual")
]


@pytest.mark.slow
@pytest.mark.parametrize(("task", "kwargs"), CASES)
def test_fabric_trains_the_plain_loops_bits(task, kwargs):
    plain, fabric = assert_bitwise_parity(task, "fabric", **kwargs)
    assert fabric.config["impl"] == "fabric" and fabric.metrics == plain.metrics
    assert fabric.precision_via.startswith("Fabric(")


def test_the_parity_verb_compares_fabric_with_the_plain_loop(tmp_path, capsys):
    out = tmp_path / "parity.json"
    argv = ["parity", "--task", "cifar_cnn", "--against", "fabric", "--steps", "4", "--json", str(out)]
    assert main(argv) == 0
    assert "fabric vs pytorch: bitwise" in capsys.readouterr().out
    assert json.loads(out.read_text())["verdict"] == "bitwise"


def test_a_task_without_a_fabric_loop_is_refused_in_one_line(tmp_path, capsys):
    for name in ("spec.py", "pytorch_loop.py", "lightning_loop.py"):
        (tmp_path / name).write_text("")
    assert main(["run", "--task", str(tmp_path), "--impl", "fabric", "--steps", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"task {tmp_path.name} has no fabric implementation (fabric_loop.py)"), err
    assert len(err.splitlines()) == 1


@pytest.mark.slow
def test_fabric_returns_the_forward_in_float32_so_a_loss_that_reads_its_dtype_computes_otherwise(monkeypatch):
    """Fabric converts what a mixed-precision forward returns to float32; the plain loop (and the Trainer's
    training_step) get the autocast output. A loss that takes its dtype from the logits (EfficientNet's smoothed
    targets, made in the logits' dtype instead of float32) then computes otherwise from the first step."""

    def targets_in_the_logits_dtype(self, logits, targets):
        smoothed = targets.to(logits.dtype) * (1 - self.smoothing) + 0.5 * self.smoothing
        return torch.nn.BCEWithLogitsLoss.forward(self, logits.squeeze(1), smoothed)

    monkeypatch.setattr(efficientnet.SmoothedBCEWithLogits, "forward", targets_in_the_logits_dtype)
    one_step = {"precision": "bf16-mixed", **ONE_STEP}
    plain, fabric = (train("efficientnet_binary", impl, **one_step) for impl in ("pytorch", "fabric"))
    assert plain.forward_dtype == fabric.forward_dtype == "bfloat16"  # the forward ran in bfloat16 on both sides
    report = compare_cell(plain, fabric)
    assert report.verdict == "mismatch" and report.first_differing_step == 0, report.line()
