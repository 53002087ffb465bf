"""CIFAR-10 CNN as a plain PyTorch loop. Read it beside lightning_loop.py: the diff is the framework."""

from __future__ import annotations

import torch

from implementations.cifar_cnn import spec
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
from loopbench.core.types import RunResult
from loopbench.harness.run import Run


def train(cfg: spec.Config, run: Run) -> RunResult:
    distributed = start_distributed(run)  # several processes: join their group (DDP); one: nothing
    torch.manual_seed(run.seed)  # the model's initial weights come from the global RNG
    model = spec.build_model(cfg).to(run.device)
    ddp_model = run.compiled(data_parallel(model, distributed))  # one process: the model itself (compiled if asked)
    optimizer = spec.build_optimizer(model, cfg)
    scheduler = spec.build_scheduler(optimizer, cfg)
    scaler = run.grad_scaler()  # float16 only; a no-op otherwise
    loader = train_loader(run.data.train, cfg.batch_size, run.seed, run.device.type == "cuda", shard=distributed)
    val_loader = eval_loader(run.data.test, cfg.val_batch_size, shard=distributed)
    val_metrics = spec.val_metrics().to(run.device) if cfg.validate_every_epoch else None  # torchmetrics
    best = KeepBest(*spec.MONITOR, cfg.patience, run)  # torch.save of the best weights; early stopping

    model.train()
    for batch, epoch_end in epoch_batches(loader, cfg.steps):
        x, y = to_device(batch, run.device)
        optimizer.zero_grad(set_to_none=True)
        with run.autocast():  # forward and loss; backward and step outside, as PyTorch's AMP recipe
            logits = ddp_model(x)
            loss = spec.loss_fn(logits, y, cfg)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # where Lightning unscales (a gradient-clipping hook would go here)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()  # per batch
        run.step(logits, loss=loss)
        if epoch_end and cfg.validate_every_epoch:
            metrics = validation_epoch(
                model, val_loader, val_metrics, lambda b, i: spec.val_outputs(ddp_model, b, i, cfg), run
            )
            if best.update(metrics, model):
                break

    return run.finish(model, metrics=lambda: spec.evaluate(model, run.data, run.device))
