"""A user's LightningModule, trained by the Trainer as it is. Read it beside pytorch_loop.py."""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from implementations.module import spec
from loopbench.core.types import RunResult
from loopbench.harness.run import Run


class StepRecorder(pl.Callback):
    """Hands each batch's loss to the harness after the optimizer step(s): the only addition to the user's job."""

    def __init__(self, cfg: spec.Config, run: Run, first: spec.FirstOutput):
        self.cfg, self.run, self.first = cfg, run, first

    def on_train_start(self, trainer, pl_module):
        self.run.batch_size = spec.samples_per_batch(trainer.train_dataloader)
        if not pl_module.automatic_optimization:  # global_step counts every optimizer's steps, a run counts batches
            trainer.fit_loop.epoch_loop.max_steps = self.cfg.steps * len(trainer.optimizers)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if (batch_idx + 1) % self.cfg.accumulate_grad_batches == 0:  # one optimizer step: one step of the run
            self.run.step(self.first.tensor, loss=spec.loss_of(outputs, self.cfg.factory))


def train(cfg: spec.Config, run: Run) -> RunResult:
    torch.manual_seed(run.seed)  # the module's initial weights come from the global RNG
    module, data = spec.load(cfg)
    first = spec.FirstOutput()

    kwargs = run.trainer_kwargs()
    kwargs["callbacks"] = [*kwargs.get("callbacks", []), StepRecorder(cfg, run, first)]
    if cfg.accumulate_grad_batches > 1:
        kwargs["accumulate_grad_batches"] = cfg.accumulate_grad_batches
    if cfg.gradient_clip_val:
        kwargs["gradient_clip_val"] = cfg.gradient_clip_val
    trainer = pl.Trainer(max_steps=cfg.steps, limit_val_batches=0, **kwargs)
    if isinstance(data, pl.LightningDataModule):
        trainer.fit(module, datamodule=data)
    else:
        trainer.fit(module, data)
    first.close()

    return run.finish(module, metrics=lambda: spec.evaluate(module, run.data, run.device))
