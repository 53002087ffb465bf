"""The overhead probe with Lightning Fabric. Read it beside pytorch_loop.py: the diff is Fabric's plumbing."""

from __future__ import annotations

import torch
from lightning_fabric import Fabric

from implementations.common import batches, train_loader
from implementations.overhead_probe import spec
from loopbench.core.types import RunResult
from loopbench.harness.run import Run


def train(cfg: spec.Config, run: Run) -> RunResult:
    torch.set_num_threads(cfg.threads)  # the probe measures the framework, not kernel parallelism
    fabric = Fabric(**run.fabric_kwargs())
    fabric.launch()
    torch.manual_seed(run.seed)  # the initial weights come from the global RNG
    models = run.compiled(spec.build_models(cfg))
    optimizers = spec.build_optimizers(models, cfg)
    loader = fabric.setup_dataloaders(train_loader(run.data.train, cfg.batch_size, run.seed))  # batches on the device

    models.train()
    if cfg.shape == "auto":
        model, optimizer = fabric.setup(models["a"], optimizers[0])
        run.watch_forward(models["a"])  # Fabric returns a mixed-precision output in float32: the dtype that ran
        train_auto(cfg, run, fabric, model, optimizer, loader)
    else:
        (a, b), (opt_a, opt_b) = models.values(), optimizers
        wrapped = [*fabric.setup(a, opt_a), *fabric.setup(b, opt_b)]
        run.watch_forward(a)
        train_manual(cfg, run, fabric, wrapped, loader)
    return run.finish(models, metrics=lambda: spec.evaluate(models, run.data, run.device))


def train_auto(cfg, run, fabric, model, optimizer, loader) -> None:
    """One optimizer and a per-step scheduler: the shape of the CIFAR and EfficientNet loops."""
    scheduler = spec.build_scheduler(optimizer.optimizer, cfg)
    for batch in batches(loader, cfg.steps):
        x, y = batch
        optimizer.zero_grad(set_to_none=True)
        with fabric.autocast():
            pred = model(x)
            loss = spec.loss_fn(pred, y)
        fabric.backward(loss)
        optimizer.step()
        scheduler.step()  # per batch
        run.step(pred, loss=loss)


def train_manual(cfg, run, fabric, wrapped, loader) -> None:
    """Two models, two optimizers, one updated after the other: the shape of the GAN loop."""
    a, opt_a, b, opt_b = wrapped
    for batch in batches(loader, cfg.steps):
        x, y = batch

        # (1) update a
        b.requires_grad_(False)  # what toggle_optimizer(opt_a) does
        with fabric.autocast():
            pred = a(x)
            loss_a = spec.loss_fn(pred, y)
        opt_a.zero_grad(set_to_none=True)
        fabric.backward(loss_a)
        opt_a.step()
        b.requires_grad_(True)

        # (2) update b
        a.requires_grad_(False)  # what toggle_optimizer(opt_b) does
        with fabric.autocast():
            loss_b = spec.loss_fn(b(x), y)
        opt_b.zero_grad(set_to_none=True)
        fabric.backward(loss_b)
        opt_b.step()
        a.requires_grad_(True)
        run.step(pred, loss_a=loss_a, loss_b=loss_b)
