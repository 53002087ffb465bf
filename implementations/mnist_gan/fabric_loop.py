"""MNIST GAN with Lightning Fabric. Read it beside pytorch_loop.py: the diff is Fabric's plumbing."""

from __future__ import annotations

import torch
from lightning_fabric import Fabric

from implementations.common import (
    KeepBest,
    epoch_batches,
    eval_loader,
    train_loader,
    validation_epoch,
)
from implementations.mnist_gan import spec
from loopbench.core.types import RunResult
from loopbench.harness.run import Run


def train(cfg: spec.Config, run: Run) -> RunResult:
    # each process keeps its own BatchNorm statistics under DDP, as the plain loop's DDP per net
    fabric = Fabric(**run.fabric_kwargs(broadcast_buffers=False))
    fabric.launch()  # several processes (started by the launcher): join their group (DDP); one: nothing
    torch.manual_seed(run.seed)  # the networks' initial weights come from the global RNG
    nets = run.compiled(spec.build_nets(cfg))
    opt_g, opt_d = spec.build_optimizers(nets, cfg)
    generator, opt_g = fabric.setup(nets["generator"], opt_g)  # on the device; DDP per net; the GradScaler's steps
    discriminator, opt_d = fabric.setup(nets["discriminator"], opt_d)
    run.watch_forward(nets["generator"])  # Fabric returns a mixed-precision output in float32: the dtype that ran
    noise = spec.noise_generator(run.seed + run.rank, run.device)  # each process its own noise
    # Fabric shards the loader (a DistributedSampler in place of the shuffle) and moves each batch to the device
    loader = fabric.setup_dataloaders(train_loader(run.data.train, cfg.batch_size, run.seed, run.device.type == "cuda"))
    val_loader = eval_loader(run.data.test, cfg.val_batch_size, shard=fabric.world_size > 1)
    val_metrics = spec.val_metrics().to(run.device) if cfg.validate_every_epoch else None  # torchmetrics
    best = KeepBest(*spec.MONITOR, cfg.patience, run)  # torch.save of the best weights; early stopping

    nets.train()
    for batch, epoch_end in epoch_batches(loader, cfg.steps):
        (real,) = batch
        z = spec.sample_noise(len(real), cfg, noise)
        with fabric.autocast():  # a region per forward + loss: its weight-cast cache never outlives a step
            fake = generator(z)  # one generator forward per batch, used by both updates

        # (1) update D
        generator.requires_grad_(False)  # what toggle_optimizer(opt_d) does
        with fabric.autocast():
            loss_d = spec.discriminator_loss(discriminator, real, fake.detach())
        opt_d.zero_grad(set_to_none=True)
        fabric.backward(loss_d)  # scaled where a GradScaler is
        opt_d.step()  # unscales, steps and updates the scaler: G's loss is scaled knowing whether D's overflowed
        generator.requires_grad_(True)

        # (2) update G
        discriminator.requires_grad_(False)  # what toggle_optimizer(opt_g) does: no D weight grads
        with fabric.autocast():  # D's weights changed: a fresh region casts them anew
            loss_g = spec.generator_loss(nets["discriminator"], fake)  # no DDP wrapper: no D gradients to sync
        opt_g.zero_grad(set_to_none=True)
        fabric.backward(loss_g)
        opt_g.step()
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
