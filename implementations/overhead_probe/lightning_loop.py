"""The overhead probe in Lightning. Read it beside pytorch_loop.py: the diff is the framework."""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from implementations.common import train_loader
from implementations.overhead_probe import spec
from loopbench.core.types import RunResult
from loopbench.harness.run import Run


class ProbeModule(pl.LightningModule):
    def __init__(self, cfg: spec.Config, run: Run):
        super().__init__()
        self.automatic_optimization = cfg.shape == "auto"
        self.cfg, self.run = cfg, run
        self.models = spec.build_models(cfg)

    def training_step(self, batch, batch_idx):
        return self.train_auto(batch) if self.cfg.shape == "auto" else self.train_manual(batch)

    def train_auto(self, batch):
        """One optimizer and a per-step scheduler: the shape of the CIFAR and EfficientNet modules."""
        x, y = batch
        pred = self.models["a"](x)
        loss = spec.loss_fn(pred, y)
        if self.run.log_every_step:
            self.log("train_loss", loss)
        return {"loss": loss, "pred": pred.detach()}

    def train_manual(self, batch):
        """Two models, two optimizers, one updated after the other: the shape of the GAN module."""
        x, y = batch
        a, b = self.models.values()
        opt_a, opt_b = self.optimizers()

        # (1) update a
        self.toggle_optimizer(opt_a)
        pred = a(x)
        loss_a = spec.loss_fn(pred, y)
        opt_a.zero_grad(set_to_none=True)
        self.manual_backward(loss_a)
        opt_a.step()
        self.untoggle_optimizer(opt_a)

        # (2) update b
        self.toggle_optimizer(opt_b)
        loss_b = spec.loss_fn(b(x), y)
        opt_b.zero_grad(set_to_none=True)
        self.manual_backward(loss_b)
        opt_b.step()
        self.untoggle_optimizer(opt_b)
        if self.run.log_every_step:
            self.log_dict({"loss_a": loss_a, "loss_b": loss_b})
        return {"pred": pred.detach(), "loss_a": loss_a, "loss_b": loss_b}

    def on_train_batch_end(self, outputs, batch, batch_idx):
        losses = {k: v for k, v in outputs.items() if k != "pred"}
        self.run.step(outputs["pred"], **losses)

    def configure_optimizers(self):
        optimizers = spec.build_optimizers(self.models, self.cfg)
        if self.cfg.shape == "manual":
            return optimizers
        scheduler = spec.build_scheduler(optimizers[0], self.cfg)
        return {"optimizer": optimizers[0], "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def train(cfg: spec.Config, run: Run) -> RunResult:
    torch.set_num_threads(cfg.threads)  # the probe measures the framework, not kernel parallelism
    torch.manual_seed(run.seed)  # the initial weights come from the global RNG
    module = ProbeModule(cfg, run)
    loader = train_loader(run.data.train, cfg.batch_size, run.seed)

    optimizer_steps = cfg.steps * (2 if cfg.shape == "manual" else 1)  # global_step counts optimizer steps
    trainer = pl.Trainer(max_steps=optimizer_steps, **run.trainer_kwargs())
    trainer.fit(run.compiled(module, trainer=True), loader)

    return run.finish(module.models, metrics=lambda: spec.evaluate(module.models, run.data, run.device))
