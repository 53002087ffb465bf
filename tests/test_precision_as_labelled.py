"""What ran is what the label says: the forward's dtype is recorded and checked, and fp16 on CPU is real."""

import pytest
import torch

from implementations.common import batches, to_device, train_loader
from implementations.mnist_gan import pytorch_loop, spec
from loopbench.analysis.parity import compare
from loopbench.cli import main
from loopbench.core import checks
from loopbench.core.types import RunConfig
from loopbench.harness import frameworks
from loopbench.harness import run as harness
from loopbench.launch.cell import run_cell
from tests.helpers import train


def test_lightning_string_flag_would_run_fp16_on_cpu_as_bf16_and_is_caught(monkeypatch):
    """Without the explicit plugin, Lightning's '16-mixed' trains in bf16: the harness refuses the result."""
    monkeypatch.setattr(frameworks, "lightning_needs_plugin", lambda device, precision: False)
    with pytest.raises(RuntimeError, match="labelled 16-mixed, but the forward produced bfloat16"):
        run_cell(RunConfig("cifar_cnn", "lightning", precision="16-mixed", steps=2))


@pytest.mark.parametrize(("impl", "via"), [("pytorch", "torch.autocast("), ("lightning", "MixedPrecision(")])
def test_fp16_cell_records_float16_and_how_it_was_applied(impl, via):
    r = train("mnist_gan", impl, precision="16-mixed", steps=3)
    assert r.forward_dtype == "float16" and via in r.precision_via


def test_environment_records_the_cpu_number_formats():
    r = train("cifar_cnn", "pytorch", steps=2)
    assert isinstance(r.env["cpu_flags"], list) and r.env["cpu_capability"]
    assert set(r.env["cpu_flags"]) <= set(__import__("loopbench.measure.env").measure.env.NUMBER_FORMAT_FLAGS)


def test_fp16_is_refused_in_one_line_where_cpu_autocast_cannot_do_it(monkeypatch, capsys):
    monkeypatch.setattr(checks, "cpu_autocast_works", lambda dtype: False)
    code = main(["run", "--task", "cifar_cnn", "--impl", "pytorch", "--precision", "16-mixed"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "cannot autocast to float16" in err


def _single_region_train(cfg, run):
    """The trap: one cached autocast region around both updates, written without requires_grad toggles.

    D's weights still require grad during G's update, so autocast reuses the casts it cached before
    opt_d.step(): G trains against the old D. (With toggles, as toggle_optimizer does, autocast caches
    only leaves that require grad, and the trap closes by accident.)
    """
    torch.manual_seed(run.seed)
    nets = spec.build_nets(cfg).to(run.device)
    generator, discriminator = nets["generator"], nets["discriminator"]
    opt_g, opt_d = spec.build_optimizers(nets, cfg)
    scaler = run.grad_scaler()
    noise = spec.noise_generator(run.seed, run.device)
    loader = train_loader(run.data.train, cfg.batch_size, run.seed)
    nets.train()
    for batch in batches(loader, cfg.steps):
        (real,) = to_device(batch, run.device)
        with run.autocast():  # PyTorch's default cache: D's casts from (1) are reused in (2)
            z = spec.sample_noise(len(real), cfg, noise)
            fake = generator(z)
            loss_d = spec.discriminator_loss(discriminator, real, fake.detach())
            opt_d.zero_grad(set_to_none=True)
            scaler.scale(loss_d).backward()
            scaler.step(opt_d)
            scaler.update()
            loss_g = spec.generator_loss(discriminator, fake)
            opt_g.zero_grad(set_to_none=True)
            scaler.scale(loss_g).backward()
            scaler.step(opt_g)
            scaler.update()
        run.step(fake, loss_d=loss_d, loss_g=loss_g)
    return run.finish(nets, metrics=dict)


@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
def test_gan_single_cached_autocast_region_is_caught_as_a_mismatch(monkeypatch, precision):
    reference = train("mnist_gan", "lightning", precision=precision)
    monkeypatch.setattr(pytorch_loop, "train", _single_region_train)
    stale = train("mnist_gan", "pytorch", precision=precision)
    report = compare(reference, stale)
    # step 0's losses match (D's first Adam step moves few of its low-precision casts); then G's update
    # against stale casts of D shows: at step 1, or (float16 on a CPU without AVX-512 FP16, e.g. an AMD EPYC
    # with AVX-512 BF16 only, where float16 math goes through other kernels) at step 2
    assert report.verdict == "mismatch" and report.first_differing_step in (1, 2) and not report.weights_equal


def test_gan_single_uncached_region_is_the_same_computation(monkeypatch):
    """The control of the control: the same single region with the cache off is bitwise equal."""
    reference = train("mnist_gan", "lightning", precision="bf16-mixed")
    monkeypatch.setattr(pytorch_loop, "train", _single_region_train)
    autocast = harness.Run.autocast
    monkeypatch.setattr(harness.Run, "autocast", lambda self: _uncached(autocast(self)))
    assert compare(reference, train("mnist_gan", "pytorch", precision="bf16-mixed")).verdict == "bitwise"


def _uncached(ctx):
    ctx._cache_enabled = False
    return ctx


def test_gan_two_discriminator_forwards_in_one_cached_region_differ_in_the_last_bits(monkeypatch):
    """Why D sees real and fake in one forward: a cast used twice sums its gradients in low precision."""
    reference = train("mnist_gan", "lightning", precision="bf16-mixed")

    def two_forwards(discriminator, real, fake):
        logits_real, logits_fake = discriminator(real), discriminator(fake)
        return 0.5 * (
            torch.nn.functional.binary_cross_entropy_with_logits(logits_real, torch.ones_like(logits_real))
            + torch.nn.functional.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake))
        )

    monkeypatch.setattr(spec, "discriminator_loss", two_forwards)
    lightning_two = train("mnist_gan", "lightning", precision="bf16-mixed")
    plain_two = train("mnist_gan", "pytorch", precision="bf16-mixed")
    assert compare(reference, lightning_two).verdict == "mismatch"  # a different (equivalent) function
    report = compare(lightning_two, plain_two)
    assert report.verdict == "mismatch" and report.max_rel_loss_diff < 1e-2  # the same math, other bits


def test_cifar_cnn_fp16_positive_control_nudged_learning_rate():
    lr = __import__("implementations.cifar_cnn.spec").cifar_cnn.spec.PRESETS["smoke"].lr
    reference = train("cifar_cnn", "pytorch", precision="16-mixed")
    candidate = train("cifar_cnn", "lightning", precision="16-mixed", overrides={"lr": lr * 1.001})
    report = compare(reference, candidate)
    assert report.verdict == "mismatch" and report.first_differing_step == 1
