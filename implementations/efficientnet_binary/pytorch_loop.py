"""EfficientNet-B0 binary classifier as a plain PyTorch loop. Read it beside lightning_loop.py."""

from __future__ import annotations

import torch

from implementations.common import batches, deterministic_warn, to_device, train_loader
from implementations.efficientnet_binary import spec
from loopbench.harness import Run
from loopbench.types import RunResult


def train(cfg: spec.Config, run: Run) -> RunResult:
    deterministic_warn()  # as Trainer(deterministic="warn")
    torch.manual_seed(run.seed)  # initial weights, then dropout and stochastic depth, use the global RNG
    model = spec.build_model(cfg).to(run.device)
    criterion = spec.build_loss(run.data, cfg).to(run.device)
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
            loss = criterion(logits, y)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # where Lightning unscales (a gradient-clipping hook would go here)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()  # per batch
        run.step(logits, loss=loss)

    return run.finish(model, metrics=spec.evaluate(model, run.data, run.device))
