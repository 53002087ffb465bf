"""sine_mlp as a plain PyTorch loop. Read it beside lightning_loop.py: the diff is the framework."""

from __future__ import annotations

import torch

from implementations.common import batches, to_device, train_loader
from loopbench.core.types import RunResult
from loopbench.harness.run import Run

from . import spec


def train(cfg: spec.Config, run: Run) -> RunResult:
    torch.manual_seed(run.seed)  # the initial weights come from the global RNG
    model = spec.build_model(cfg).to(run.device)
    optimizer = spec.build_optimizer(model, cfg)
    scaler = run.grad_scaler()  # float16 only; a no-op otherwise
    loader = train_loader(run.data.train, cfg.batch_size, run.seed)

    model.train()
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
        run.step(pred, loss=loss)
    return run.finish(model, metrics=lambda: spec.evaluate(model, run.data, run.device))
