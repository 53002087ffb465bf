"""MNIST GAN in Lightning, manual optimization. Read it beside pytorch_loop.py: the diff is the framework.

Lightning counts optimizer steps in `global_step` (two per batch here), so `max_steps` is twice the
number of batches; under 16-mixed its precision plugin updates the GradScaler after each optimizer.
The whole training_step runs in one autocast region with the weight-cast cache off, so D's weights
are cast anew for G's update; the plain loop gets the same by opening a region per update.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from implementations.common import eval_loader, train_loader
from implementations.mnist_gan import spec
from loopbench.core.types import RunResult
from loopbench.harness.run import Run


class GanModule(pl.LightningModule):
    def __init__(self, cfg: spec.Config, run: Run):
        super().__init__()
        self.automatic_optimization = False
        self.cfg, self.run = cfg, run
        self.val_metrics = spec.val_metrics()  # torchmetrics objects: moved with the module, logged below
        self.nets = spec.build_nets(cfg)
        self.noise = spec.noise_generator(run.seed + run.rank, run.device)  # each process its own noise

    def training_step(self, batch, batch_idx):
        (real,) = batch
        generator, discriminator = self.nets["generator"], self.nets["discriminator"]
        opt_g, opt_d = self.optimizers()
        z = spec.sample_noise(len(real), self.cfg, self.noise)
        fake = generator(z)  # one generator forward per batch, used by both updates

        # (1) update D
        self.toggle_optimizer(opt_d)
        loss_d = spec.discriminator_loss(discriminator, real, fake.detach())
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        # (2) update G
        self.toggle_optimizer(opt_g)
        loss_g = spec.generator_loss(discriminator, fake)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_g)
        opt_g.step()
        self.untoggle_optimizer(opt_g)
        if self.run.log_every_step:
            self.log_dict({"loss_d": loss_d, "loss_g": loss_g})
        return {"fake": fake.detach(), "loss_d": loss_d, "loss_g": loss_g}

    def validation_step(self, batch, batch_idx):
        self.val_metrics.update(*spec.val_outputs(self.nets, batch, batch_idx, self.cfg))
        self.log_dict(self.val_metrics)  # the metric objects: computed over the epoch at its end

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.run.step(outputs["fake"], loss_d=outputs["loss_d"], loss_g=outputs["loss_g"])

    def configure_optimizers(self):
        opt_g, opt_d = spec.build_optimizers(self.nets, self.cfg)
        return [opt_g, opt_d]


def train(cfg: spec.Config, run: Run) -> RunResult:
    torch.manual_seed(run.seed)  # the networks' initial weights come from the global RNG
    module = GanModule(cfg, run)
    loader = train_loader(run.data.train, cfg.batch_size, run.seed, pin_memory=run.device.type == "cuda")

    # global_step counts 2 per batch; under DDP one wrapper holds both nets and each backward reaches one of them
    trainer = pl.Trainer(max_steps=2 * cfg.steps, **run.trainer_kwargs(spec.MONITOR, find_unused_parameters=True))
    val_loader = eval_loader(run.data.test, cfg.val_batch_size) if cfg.validate_every_epoch else None
    trainer.fit(run.compiled(module, trainer=True), loader, val_loader)

    nets = module.nets
    return run.finish(
        nets,
        metrics=lambda: spec.evaluate(nets, run.data, cfg, run.device),
        artifacts={"samples_png": spec.sample_grid(nets, cfg, run.device)},
    )
