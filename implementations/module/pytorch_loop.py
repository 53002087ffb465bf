"""A user's LightningModule trained by a plain PyTorch loop built from its own hooks. Read it beside
lightning_loop.py: the Trainer's part is written out here, once, as a PyTorch user would write it.

The calls come in the Trainer's order, since that order decides what the random generators draw: the
data module's and the module's prepare_data and setup("fit"), configure_model, configure_optimizers, then
train_dataloader once; per batch the training step, zero_grad, backward, the optimizer's step (with the
closure the Trainer would pass it) and the step-interval schedulers; per epoch the epoch-interval ones.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytorch_lightning as pl
import torch

from implementations.module import spec
from implementations.module.optimizers import Optimization, configure
from loopbench.core.types import RunResult, UsageError
from loopbench.harness.run import Run


def train(cfg: spec.Config, run: Run) -> RunResult:
    torch.manual_seed(run.seed)  # the module's initial weights come from the global RNG
    module, data = spec.load(cfg)
    reason = spec.unmirrored(module, cfg, run.precision.name)
    if reason:
        raise UsageError(reason)
    first = spec.FirstOutput()
    datamodule = data if isinstance(data, pl.LightningDataModule) else None
    for hooks in filter(None, (datamodule, module)):  # the Trainer's set-up, in its order
        hooks.prepare_data()
    for hooks in filter(None, (datamodule, module)):
        hooks.setup("fit")
    module.configure_model()
    module.to(run.device)
    opt = configure(module.configure_optimizers(), cfg.factory)
    loader = (datamodule or module).train_dataloader() if datamodule or data is None else data
    run.batch_size = spec.samples_per_batch(loader)
    scaler = run.grad_scaler()  # float16 only; a no-op otherwise
    if module.automatic_optimization and len(opt.optimizers) != 1:
        raise UsageError(f"{cfg.factory}: automatic optimization takes one optimizer; the Trainer refuses more")
    if len(loader) % cfg.accumulate_grad_batches:  # the Trainer then steps on an epoch's last, short accumulation
        raise UsageError(f"{cfg.factory}: an epoch of {len(loader)} batches is not a whole number of accumulations")
    if not module.automatic_optimization:
        serve_manual(module, opt)

    module.train()
    batches = cfg.steps * cfg.accumulate_grad_batches
    for epoch in itertools.count():
        for batch_idx, batch in enumerate(itertools.islice(loader, min(len(loader), batches))):
            batch = to_device(module, batch, run.device)
            last_of_step = (batch_idx + 1) % cfg.accumulate_grad_batches == 0
            if module.automatic_optimization:
                loss = automatic_step(module, opt, scaler, cfg, run, batch, batch_idx, epoch, last_of_step)
            else:
                with run.autocast():
                    loss = spec.loss_of(module.training_step(batch, batch_idx), cfg.factory)
            if last_of_step:
                if module.automatic_optimization:  # in manual optimization the module steps its own
                    opt.step_schedulers("step", batch_idx + 1)
                run.step(first.tensor, loss=loss)
        batches -= min(len(loader), batches)
        if module.automatic_optimization:
            opt.step_schedulers("epoch", epoch + 1)
        if batches == 0:
            break
    first.close()

    return run.finish(module, metrics=lambda: spec.evaluate(module, run.data, run.device))


def automatic_step(module, opt: Optimization, scaler, cfg, run, batch, batch_idx, epoch, last_of_step) -> torch.Tensor:
    """One batch as the Trainer's automatic optimization runs it: the training step under autocast; zero_grad at
    the first batch of an accumulation; backward of the loss over the accumulation; at its last batch unscale,
    clip, and the optimizer's step through the module's optimizer_step (the closure returns the loss)."""
    optimizer = opt.optimizers[0]
    with run.autocast():
        loss = spec.loss_of(module.training_step(batch, batch_idx), cfg.factory)
    if batch_idx % cfg.accumulate_grad_batches == 0:  # the first batch of an accumulation
        if spec.overrides(module, "optimizer_zero_grad"):
            module.optimizer_zero_grad(epoch, batch_idx, optimizer)
        else:
            optimizer.zero_grad()
    scaled = scaler.scale(loss / cfg.accumulate_grad_batches)
    module.backward(scaled) if spec.overrides(module, "backward") else scaled.backward()
    if last_of_step:
        scaler.unscale_(optimizer)  # where Lightning unscales: before clipping
        if cfg.gradient_clip_val:
            torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.gradient_clip_val)
        if spec.overrides(module, "optimizer_step"):  # its closure: the training step already ran
            module.optimizer_step(epoch, batch_idx, optimizer, lambda: loss)
        else:
            scaler.step(optimizer)
        scaler.update()
    return loss / cfg.accumulate_grad_batches  # the loss as the Trainer hands it on: a share of the accumulation


def serve_manual(module, opt: Optimization) -> None:
    """What manual optimization asks of the Trainer, served by plain objects: the optimizers, the schedulers, and
    manual_backward as loss.backward()."""
    optimizers = opt.optimizers[0] if len(opt.optimizers) == 1 else opt.optimizers
    schedulers = [s.scheduler for s in opt.schedulers]
    module.optimizers = lambda use_pl_optimizer=True: optimizers
    module.lr_schedulers = lambda: None if not schedulers else schedulers[0] if len(schedulers) == 1 else schedulers
    module.manual_backward = lambda loss, *args, **kwargs: loss.backward(*args, **kwargs)


def to_device(module, batch: Any, device: torch.device) -> Any:
    """The module's transfer_batch_to_device where it has one, else every tensor in the batch moved."""
    if spec.overrides(module, "transfer_batch_to_device"):
        return module.transfer_batch_to_device(batch, device, 0)
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: to_device(module, v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(module, v, device) for v in batch)
    return batch
