"""The CIFAR-10 CNN trains to the same bits in every implementation (CPU), and the check can fail."""

import pytest
import torch

from implementations.cifar_cnn import spec
from loopbench.analysis.parity import CUDA_LOSS_RTOL, compare, compare_cell
from tests.helpers import assert_bitwise_parity, requires_cuda, train

# smoke preset: 256 training images / batch 32 = 8 batches per epoch; 12 steps cross the boundary
CASES = [
    pytest.param(0, None, None, {}, id="seed0-12steps"),
    pytest.param(3, None, None, {}, id="seed3-12steps"),
    pytest.param(11, 19, 24, {}, id="seed11-19steps-batch24"),  # 10 batches/epoch, drop_last leaves 16
]
# float16 convolutions on CPU are slow: 64 images in 2 batches per epoch, 3 steps cross the boundary
FP16_CASE = pytest.param(0, 3, 32, {"train_size": 64, "test_size": 64}, id="seed0-3steps-64images")


@pytest.mark.parametrize("impl", ["lightning", "lightning-defaults"])
@pytest.mark.parametrize(
    ("precision", "seed", "steps", "batch_size", "overrides"),
    [pytest.param("32-true", *c.values, id=f"32-true-{c.id}") for c in CASES]
    # bfloat16 is emulated on CPUs without it (slow): one seed at each batch shape
    + [pytest.param("bf16-mixed", *c.values, id=f"bf16-mixed-{c.id}") for c in CASES if c.id != "seed3-12steps"]
    + [pytest.param("16-mixed", *FP16_CASE.values, id=f"16-mixed-{FP16_CASE.id}")],
)
def test_cifar_cnn_bitwise_parity_cpu(impl, precision, seed, steps, batch_size, overrides):
    reference, _ = assert_bitwise_parity(
        "cifar_cnn", impl, precision=precision, seed=seed, steps=steps, batch_size=batch_size, overrides=overrides
    )
    assert len(reference.losses["loss"]) == (steps or spec.PRESETS["smoke"].steps)


def test_cifar_cnn_parity_positive_control_extra_rng_draw(monkeypatch):
    """One extra draw from the global RNG before the model is built must be caught."""
    reference = train("cifar_cnn", "pytorch")
    build_model = spec.build_model

    def build_model_after_extra_draw(cfg):
        torch.rand(1)
        return build_model(cfg)

    monkeypatch.setattr(spec, "build_model", build_model_after_extra_draw)
    candidate = train("cifar_cnn", "lightning")
    report = compare_cell(reference, candidate)
    assert report.verdict == "mismatch" and not report.holds
    assert report.first_differing_step == 0 and not report.weights_equal


def test_cifar_cnn_parity_positive_control_nudged_learning_rate():
    """A learning rate 0.1% higher changes neither the first loss nor much else, and is still caught."""
    lr = spec.PRESETS["smoke"].lr
    reference = train("cifar_cnn", "pytorch")
    candidate = train("cifar_cnn", "lightning", overrides={"lr": lr * 1.001})
    report = compare(reference, candidate)
    assert report.verdict == "mismatch"
    assert report.first_differing_step == 1  # step 0's loss is computed before any update


def test_cifar_cnn_repeated_runs_are_deterministic():
    a, b = train("cifar_cnn", "pytorch", seed=5), train("cifar_cnn", "pytorch", seed=5)
    assert a.losses == b.losses and a.weights_digest == b.weights_digest
    assert train("cifar_cnn", "pytorch", seed=6).weights_digest != a.weights_digest


@pytest.mark.gpu
@requires_cuda
@pytest.mark.parametrize("impl", ["lightning", "lightning-defaults"])
@pytest.mark.parametrize(("precision", "rtol"), sorted(CUDA_LOSS_RTOL.items()))
def test_cifar_cnn_parity_cuda_within_tolerance(impl, precision, rtol):
    reference = train("cifar_cnn", "pytorch", device="cuda", precision=precision)
    candidate = train("cifar_cnn", impl, device="cuda", precision=precision)
    report = compare(reference, candidate, rtol)
    assert report.verdict in ("bitwise", "within_tolerance"), report.line()
