"""EfficientNet-B0 binary classifier in Lightning. Read it beside pytorch_loop.py."""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from implementations.common import eval_loader, train_loader
from implementations.efficientnet_binary import spec
from loopbench.core.types import RunResult
from loopbench.harness.run import Run


class BinaryModule(pl.LightningModule):
    def __init__(self, cfg: spec.Config, run: Run):
        super().__init__()
        self.cfg, self.run = cfg, run
        self.val_metrics = spec.val_metrics()  # torchmetrics objects: moved with the module, logged below
        self.model = spec.build_model(cfg)
        self.criterion = spec.build_loss(run.data, cfg)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.model(x)
        loss = self.criterion(logits, y)
        if self.run.log_every_step:
            self.log("train_loss", loss)
        return {"loss": loss, "logits": logits.detach()}

    def validation_step(self, batch, batch_idx):
        self.val_metrics.update(*spec.val_outputs(self.model, batch, batch_idx, self.cfg))
        self.log_dict(self.val_metrics)  # the metric objects: computed over the epoch at its end

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.run.step(outputs["logits"], loss=outputs["loss"])

    def configure_optimizers(self):
        optimizer = spec.build_optimizer(self.model, self.cfg)
        scheduler = spec.build_scheduler(optimizer, self.cfg)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def train(cfg: spec.Config, run: Run) -> RunResult:
    torch.manual_seed(run.seed)  # initial weights, then dropout and stochastic depth, use the global RNG
    module = BinaryModule(cfg, run)
    loader = train_loader(run.data.train, cfg.batch_size, run.seed, pin_memory=run.device.type == "cuda")

    trainer = pl.Trainer(max_steps=cfg.steps, deterministic="warn", **run.trainer_kwargs(spec.MONITOR))
    val_loader = eval_loader(run.data.test, cfg.val_batch_size) if cfg.validate_every_epoch else None
    trainer.fit(run.compiled(module, trainer=True), loader, val_loader)

    return run.finish(module.model, metrics=lambda: spec.evaluate(module.model, run.data, run.device))
