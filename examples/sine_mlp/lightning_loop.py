"""sine_mlp in Lightning. Read it beside pytorch_loop.py: the diff is the framework."""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from implementations.common import train_loader
from loopbench.core.types import RunResult
from loopbench.harness.run import Run

from . import spec


class SineModule(pl.LightningModule):
    def __init__(self, cfg: spec.Config, run: Run):
        super().__init__()
        self.cfg, self.run = cfg, run
        self.model = spec.build_model(cfg)

    def training_step(self, batch, batch_idx):
        x, y = batch
        pred = self.model(x)
        loss = spec.loss_fn(pred, y)
        if self.run.log_every_step:
            self.log("train_loss", loss)
        return {"loss": loss, "pred": pred.detach()}

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.run.step(outputs["pred"], loss=outputs["loss"])

    def configure_optimizers(self):
        return spec.build_optimizer(self.model, self.cfg)


def train(cfg: spec.Config, run: Run) -> RunResult:
    torch.manual_seed(run.seed)  # the initial weights come from the global RNG
    module = SineModule(cfg, run)
    loader = train_loader(run.data.train, cfg.batch_size, run.seed)

    trainer = pl.Trainer(max_steps=cfg.steps, **run.trainer_kwargs())
    trainer.fit(module, loader)

    return run.finish(module.model, metrics=lambda: spec.evaluate(module.model, run.data, run.device))
