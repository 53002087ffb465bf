"""The MNIST GAN (two optimizers, Lightning manual optimization) trains to the same bits everywhere on CPU."""

import pytest
import torch

from implementations.mnist_gan import spec
from loopbench.analysis.parity import compare
from tests.helpers import assert_bitwise_parity, train

# smoke preset: 128 training images / batch 16 = 8 batches per epoch; 12 steps cross the boundary
CASES = [
    pytest.param(0, None, None, id="seed0-12steps"),
    pytest.param(9, 13, 24, id="seed9-13steps-batch24"),  # 5 batches/epoch: crosses two boundaries
]


@pytest.mark.parametrize("impl", ["lightning", "lightning-defaults"])
@pytest.mark.parametrize("precision", ["32-true", "16-mixed", "bf16-mixed"])
@pytest.mark.parametrize(("seed", "steps", "batch_size"), CASES)
def test_mnist_gan_bitwise_parity_cpu(impl, precision, seed, steps, batch_size):
    reference, candidate = assert_bitwise_parity(
        "mnist_gan", impl, precision=precision, seed=seed, steps=steps, batch_size=batch_size
    )
    assert set(reference.losses) == {"loss_d", "loss_g"}
    # both networks are in the digest: generator.* and discriminator.* weights
    assert {k.split(".")[0] for k in reference.weights} == {"generator", "discriminator"}
    # Lightning's global_step counts 2 optimizer steps per batch: the run still has `steps` batches
    assert len(candidate.losses["loss_g"]) == (steps or spec.PRESETS["smoke"].steps)


def test_mnist_gan_parity_positive_control_extra_noise_draw(monkeypatch):
    """One extra draw from the latent-noise generator, in one implementation only, must be caught."""
    reference = train("mnist_gan", "pytorch")
    noise_generator = spec.noise_generator

    def advanced_noise_generator(seed, device):
        g = noise_generator(seed, device)
        torch.randn(1, generator=g, device=device)
        return g

    monkeypatch.setattr(spec, "noise_generator", advanced_noise_generator)
    report = compare(reference, train("mnist_gan", "lightning"))
    assert report.verdict == "mismatch" and report.first_differing_step == 0 and not report.weights_equal


def test_mnist_gan_samples_and_metrics_are_recorded():
    r = train("mnist_gan", "pytorch")
    assert r.artifacts["samples_png"] and r.metrics["mmd"] > r.metrics["mmd_real_floor"] >= -0.01


def test_mnist_gan_learns_on_synthetic_digits():
    """120 quick-preset steps bring the generated digits measurably closer to the real ones."""
    short = train("mnist_gan", "pytorch", preset="quick", steps=5)
    trained = train("mnist_gan", "pytorch", preset="quick")
    assert trained.metrics["mmd"] < 0.5 * short.metrics["mmd"]


def test_synthetic_digits_are_deterministic_and_varied():
    a, b = spec.synthetic_digits(64, seed=0), spec.synthetic_digits(64, seed=0)
    x, y = a.tensors
    assert x.shape == (64, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(x, b.tensors[0]) and torch.equal(y, b.tensors[1])
    ink = (x > 0).float().mean((1, 2, 3))
    assert ink.min() > 0.03 and ink.max() < 0.5  # every image has strokes, none is a blob
    same_digit = x[y == y[0]]
    assert len(same_digit) > 1 and not torch.equal(same_digit[0], same_digit[1])  # jittered copies differ
