"""CIFAR-10 CNN as a plain PyTorch loop. Read it beside lightning_loop.py: the diff is the framework."""

from __future__ import annotations

import torch

from implementations.cifar_cnn import spec
from implementations.common import batches, to_device, train_loader
from loopbench.harness import Run
from loopbench.types import RunResult


def train(cfg: spec.Config, run: Run) -> RunResult:
    torch.manual_seed(run.seed)  # the model's initial weights come from the global RNG
    model = spec.build_model(cfg).to(run.device)
    optimizer = spec.build_optimizer(model, cfg)
    scheduler = spec.build_scheduler(optimizer, cfg)
    scaler = run.grad_scaler()  # float16 only; a no-op otherwise
    loader = train_loader(run.data.train, cfg.batch_size, run.seed, pin_memory=run.device.type == "cuda")

    model.train()
    for batch in batches(loader, cfg.steps):
        x, y = to_device(batch, run.device)
        optimizer.zero_grad(set_to_none=True)
        with run.autocast():  # forward and loss; backward and step outside, as PyTorch's AMP recipe
            logits = model(x)
            loss = spec.loss_fn(logits, y, cfg)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # where Lightning unscales (a gradient-clipping hook would go here)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()  # per batch
        run.step(logits, loss=loss)

    return run.finish(model, metrics=spec.evaluate(model, run.data, run.device))
