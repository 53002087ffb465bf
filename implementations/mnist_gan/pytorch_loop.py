"""MNIST GAN as a plain PyTorch loop. Read it beside lightning_loop.py: the diff is the framework."""

from __future__ import annotations

import torch

from implementations.common import (
    KeepBest,
    data_parallel,
    epoch_batches,
    eval_loader,
    start_distributed,
    to_device,
    train_loader,
    validation_epoch,
)
from implementations.mnist_gan import spec
from loopbench.core.types import RunResult
from loopbench.harness.run import Run


def train(cfg: spec.Config, run: Run) -> RunResult:
    distributed = start_distributed(run)  # several processes: join their group (DDP); one: nothing
    torch.manual_seed(run.seed)  # the networks' initial weights come from the global RNG
    nets = run.compiled(spec.build_nets(cfg).to(run.device))
    # DDP per net; each process keeps its own BatchNorm statistics (as GAN code commonly sets it, StyleGAN2-ADA's
    # for one), which is also what Lightning's manual optimization does: it turns DDP's per-forward broadcast off
    generator, discriminator = (
        data_parallel(nets[name], distributed, broadcast_buffers=False) for name in ("generator", "discriminator")
    )
    opt_g, opt_d = spec.build_optimizers(nets, cfg)
    scaler = run.grad_scaler()  # float16 only; a no-op otherwise
    noise = spec.noise_generator(run.seed + run.rank, run.device)  # each process its own noise
    loader = train_loader(run.data.train, cfg.batch_size, run.seed, run.device.type == "cuda", shard=distributed)
    val_loader = eval_loader(run.data.test, cfg.val_batch_size, shard=distributed)
    val_metrics = spec.val_metrics().to(run.device) if cfg.validate_every_epoch else None  # torchmetrics
    best = KeepBest(*spec.MONITOR, cfg.patience, run)  # torch.save of the best weights; early stopping

    nets.train()
    for batch, epoch_end in epoch_batches(loader, cfg.steps):
        (real,) = to_device(batch, run.device)
        z = spec.sample_noise(len(real), cfg, noise)
        with run.autocast():  # a region per forward + loss: its weight-cast cache never outlives a step
            fake = generator(z)  # one generator forward per batch, used by both updates

        # (1) update D
        generator.requires_grad_(False)  # what toggle_optimizer(opt_d) does
        with run.autocast():
            loss_d = spec.discriminator_loss(discriminator, real, fake.detach())
        opt_d.zero_grad(set_to_none=True)
        scaler.scale(loss_d).backward()
        scaler.unscale_(opt_d)
        scaler.step(opt_d)
        scaler.update()  # after each optimizer: G's loss is scaled knowing whether D's gradients overflowed
        generator.requires_grad_(True)

        # (2) update G
        discriminator.requires_grad_(False)  # what toggle_optimizer(opt_g) does: no D weight grads
        with run.autocast():  # D's weights changed: a fresh region casts them anew
            loss_g = spec.generator_loss(nets["discriminator"], fake)  # no DDP wrapper: no D gradients to sync
        opt_g.zero_grad(set_to_none=True)
        scaler.scale(loss_g).backward()
        scaler.unscale_(opt_g)
        scaler.step(opt_g)
        scaler.update()
        discriminator.requires_grad_(True)
        run.step(fake, loss_d=loss_d, loss_g=loss_g)
        if epoch_end and cfg.validate_every_epoch:
            metrics = validation_epoch(
                nets, val_loader, val_metrics, lambda b, i: spec.val_outputs(nets, b, i, cfg), run
            )
            if best.update(metrics, nets):
                break

    return run.finish(
        nets,
        metrics=lambda: spec.evaluate(nets, run.data, cfg, run.device),
        artifacts={"samples_png": spec.sample_grid(nets, cfg, run.device)},
    )
