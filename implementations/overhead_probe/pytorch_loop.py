"""The overhead probe as a plain PyTorch loop. Read it beside lightning_loop.py: the diff is the framework."""

from __future__ import annotations

import torch

from implementations.common import batches, to_device, train_loader
from implementations.overhead_probe import spec
from loopbench.core.types import RunResult
from loopbench.harness.run import Run


def train(cfg: spec.Config, run: Run) -> RunResult:
    torch.set_num_threads(cfg.threads)  # the probe measures the framework, not kernel parallelism
    torch.manual_seed(run.seed)  # the initial weights come from the global RNG
    models = run.compiled(spec.build_models(cfg).to(run.device))
    optimizers = spec.build_optimizers(models, cfg)
    scaler = run.grad_scaler()  # float16 only; a no-op otherwise
    loader = train_loader(run.data.train, cfg.batch_size, run.seed)

    models.train()
    if cfg.shape == "auto":
        train_auto(cfg, run, models["a"], optimizers[0], scaler, loader)
    else:
        train_manual(cfg, run, models, optimizers, scaler, loader)
    return run.finish(models, metrics=lambda: spec.evaluate(models, run.data, run.device))


def train_auto(cfg, run, model, optimizer, scaler, loader) -> None:
    """One optimizer and a per-step scheduler: the shape of the CIFAR and EfficientNet loops."""
    scheduler = spec.build_scheduler(optimizer, cfg)
    for batch in batches(loader, cfg.steps):
        x, y = to_device(batch, run.device)
        optimizer.zero_grad(set_to_none=True)
        with run.autocast():
            pred = model(x)
            loss = spec.loss_fn(pred, y)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()  # per batch
        run.step(pred, loss=loss)


def train_manual(cfg, run, models, optimizers, scaler, loader) -> None:
    """Two models, two optimizers, one updated after the other: the shape of the GAN loop."""
    (a, b), (opt_a, opt_b) = models.values(), optimizers
    for batch in batches(loader, cfg.steps):
        x, y = to_device(batch, run.device)

        # (1) update a
        b.requires_grad_(False)  # what toggle_optimizer(opt_a) does
        with run.autocast():
            pred = a(x)
            loss_a = spec.loss_fn(pred, y)
        opt_a.zero_grad(set_to_none=True)
        scaler.scale(loss_a).backward()
        scaler.unscale_(opt_a)
        scaler.step(opt_a)
        scaler.update()
        b.requires_grad_(True)

        # (2) update b
        a.requires_grad_(False)  # what toggle_optimizer(opt_b) does
        with run.autocast():
            loss_b = spec.loss_fn(b(x), y)
        opt_b.zero_grad(set_to_none=True)
        scaler.scale(loss_b).backward()
        scaler.unscale_(opt_b)
        scaler.step(opt_b)
        scaler.update()
        a.requires_grad_(True)
        run.step(pred, loss_a=loss_a, loss_b=loss_b)
