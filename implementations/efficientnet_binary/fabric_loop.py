"""EfficientNet-B0 binary classifier with Lightning Fabric. Read it beside pytorch_loop.py: the diff is Fabric's."""

from __future__ import annotations

import torch
from lightning_fabric import Fabric

from implementations.common import (
    KeepBest,
    deterministic_warn,
    epoch_batches,
    eval_loader,
    train_loader,
    validation_epoch,
)
from implementations.efficientnet_binary import spec
from loopbench.core.types import RunResult
from loopbench.harness.run import Run


def train(cfg: spec.Config, run: Run) -> RunResult:
    deterministic_warn()  # as Trainer(deterministic="warn")
    fabric = Fabric(**run.fabric_kwargs())
    fabric.launch()  # several processes (started by the launcher): join their group (DDP); one: nothing
    torch.manual_seed(run.seed)  # initial weights, then dropout and stochastic depth, use the global RNG
    model = spec.build_model(cfg)
    criterion = spec.build_loss(run.data, cfg).to(run.device)
    optimizer = spec.build_optimizer(model, cfg)
    scheduler = spec.build_scheduler(optimizer, cfg)
    fabric_model, fabric_optimizer = fabric.setup(run.compiled(model), optimizer)  # on the device; DDP; the scaler
    run.watch_forward(model)  # Fabric returns a mixed-precision forward's output in float32: the dtype that ran
    # Fabric shards the loader (a DistributedSampler in place of the shuffle) and moves each batch to the device
    loader = fabric.setup_dataloaders(train_loader(run.data.train, cfg.batch_size, run.seed, run.device.type == "cuda"))
    val_loader = eval_loader(run.data.test, cfg.val_batch_size, shard=fabric.world_size > 1)
    val_metrics = spec.val_metrics().to(run.device) if cfg.validate_every_epoch else None  # torchmetrics
    best = KeepBest(*spec.MONITOR, cfg.patience, run)  # torch.save of the best weights; early stopping

    fabric_model.train()
    for batch, epoch_end in epoch_batches(loader, cfg.steps):
        x, y = batch
        fabric_optimizer.zero_grad(set_to_none=True)
        with fabric.autocast():  # forward and loss, as the plain loop's autocast (Fabric's covers the forward only)
            logits = fabric_model(x)
            loss = criterion(logits, y)
        fabric.backward(loss)  # scaled where a GradScaler is
        fabric_optimizer.step()  # unscales, steps and updates the scaler
        scheduler.step()  # per batch
        run.step(logits, loss=loss)
        if epoch_end and cfg.validate_every_epoch:
            metrics = validation_epoch(
                model, val_loader, val_metrics, lambda b, i: spec.val_outputs(fabric_model, b, i, cfg), run
            )
            if best.update(metrics, model):
                break

    return run.finish(model, metrics=lambda: spec.evaluate(model, run.data, run.device))
