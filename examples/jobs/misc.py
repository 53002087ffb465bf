# Modules in the styles of Lightning's docs and common public projects.
import copy

import lightning as L
import pytorch_lightning as pl
import torch
import torch.nn as nn
import torch.nn.functional as F
from lightning.pytorch.callbacks import EarlyStopping
from torch.utils.data import DataLoader, TensorDataset, random_split


def _blobs(n=256, d=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    return TensorDataset(x, (x[:, 0] + x[:, 1] > 0).long())


class DocsModel(L.LightningModule):
    """The LightningModule page's LitModel: hooks to log, EarlyStopping on val_loss, the docs' gradient_clip_val."""

    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(20, 64)
        self.l2 = nn.Linear(64, 2)

    def forward(self, x):
        return self.l2(torch.relu(self.l1(x)))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True, logger=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.02)


def docs():
    train, val = random_split(_blobs(), [224, 32], generator=torch.Generator().manual_seed(0))
    return {
        "module": DocsModel(),
        "data": DataLoader(train, batch_size=32, shuffle=True),
        "val_data": DataLoader(val, batch_size=32),
        "trainer": {"max_epochs": 5, "gradient_clip_val": 0.5},
        "callbacks": [EarlyStopping(monitor="val_loss", mode="min", patience=2)],
    }


class BYOL(pl.LightningModule):
    """A BYOL-style target network, its EMA updated in on_train_batch_end with a momentum read from self.trainer."""

    def __init__(self):
        super().__init__()
        self.online = nn.Sequential(nn.Linear(20, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 32))
        self.predictor = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 32))
        self.target = copy.deepcopy(self.online)
        for p in self.target.parameters():
            p.requires_grad = False

    def training_step(self, batch, batch_idx):
        x, _ = batch
        v1, v2 = x + 0.1 * torch.randn_like(x), x + 0.1 * torch.randn_like(x)
        p = F.normalize(self.predictor(self.online(v1)), dim=-1)
        with torch.no_grad():
            z = F.normalize(self.target(v2), dim=-1)
        loss = 2 - 2 * (p * z).sum(dim=-1).mean()
        self.log("loss", loss)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        tau = (
            1
            - (1 - 0.99)
            * (torch.cos(torch.tensor(3.14159 * self.global_step / self.trainer.estimated_stepping_batches)) + 1)
            / 2
        )
        for po, pt in zip(self.online.parameters(), self.target.parameters(), strict=False):
            pt.data = tau * pt.data + (1 - tau) * po.data

    def configure_optimizers(self):
        return torch.optim.SGD(
            list(self.online.parameters()) + list(self.predictor.parameters()), lr=0.05, momentum=0.9
        )


def byol():
    return {
        "module": BYOL(),
        "data": DataLoader(_blobs(), batch_size=32, shuffle=True, drop_last=True),
        "trainer": {"max_epochs": 3},
    }


class OldGAN(pl.LightningModule):
    """Written for Lightning 1.x: training_step(batch, batch_idx, optimizer_idx), two optimizers, automatic."""

    def __init__(self):
        super().__init__()
        self.g, self.d = nn.Linear(8, 20), nn.Linear(20, 1)

    def training_step(self, batch, batch_idx, optimizer_idx):
        x, _ = batch
        z = torch.randn(x.size(0), 8)
        if optimizer_idx == 0:
            return F.softplus(-self.d(self.g(z))).mean()
        return F.softplus(-self.d(x)).mean() + F.softplus(self.d(self.g(z).detach())).mean()

    def configure_optimizers(self):
        return [torch.optim.Adam(self.g.parameters()), torch.optim.Adam(self.d.parameters())], []


def old_gan():
    return {"module": OldGAN(), "data": DataLoader(_blobs(), batch_size=32), "trainer": {"max_epochs": 1}}


class Placed(pl.LightningModule):
    """Reads self.trainer.strategy.root_device in forward (as some projects place their buffers), logs with
    self.log_dict, prints with self.print, and accumulates gradients over 2 batches with clipping by value."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(20, 32), nn.Dropout(0.1), nn.ReLU(), nn.Linear(32, 2))

    def forward(self, x):
        noise = torch.zeros(1, device=self.trainer.strategy.root_device)
        return self.net(x + noise)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.log_dict({"loss": loss, "acc": (logits.argmax(1) == y).float().mean()})
        if batch_idx == 0:
            self.print(f"epoch {self.current_epoch}: first loss {loss.item():.3f}")
        return loss

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.1)
        return {
            "optimizer": opt,
            "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.StepLR(opt, 2), "interval": "step", "frequency": 2},
        }


def placed():
    return {
        "module": Placed(),
        "data": DataLoader(_blobs(), batch_size=16, shuffle=True),
        "trainer": {
            "max_epochs": 2,
            "accumulate_grad_batches": 2,
            "gradient_clip_val": 0.5,
            "gradient_clip_algorithm": "value",
        },
    }


class DataModule(pl.LightningDataModule):
    """A project template's data module: setup splits with random_split, three loaders, batch size in hparams."""

    def __init__(self, batch_size=32):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        self.train, self.val, self.test = random_split(
            _blobs(320), [256, 32, 32], generator=torch.Generator().manual_seed(42)
        )

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=self.hparams.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=self.hparams.batch_size)

    def test_dataloader(self):
        return DataLoader(self.test, batch_size=self.hparams.batch_size)


class TemplateModule(pl.LightningModule):
    """A widely copied project template's module: torchmetrics objects and MeanMetric, best-so-far tracking with
    MaxMetric at validation epoch end, Adam + ReduceLROnPlateau on val/loss, the test step unused in fit."""

    def __init__(self):
        super().__init__()
        import torchmetrics

        self.net = nn.Sequential(nn.Linear(20, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 2))
        self.criterion = nn.CrossEntropyLoss()
        self.train_acc = torchmetrics.Accuracy(task="multiclass", num_classes=2)
        self.val_acc = torchmetrics.Accuracy(task="multiclass", num_classes=2)
        self.train_loss, self.val_loss = torchmetrics.MeanMetric(), torchmetrics.MeanMetric()
        self.val_acc_best = torchmetrics.MaxMetric()

    def on_train_start(self):
        self.val_loss.reset()
        self.val_acc.reset()
        self.val_acc_best.reset()

    def model_step(self, batch):
        x, y = batch
        logits = self.net(x)
        return self.criterion(logits, y), logits.argmax(dim=1), y

    def training_step(self, batch, batch_idx):
        loss, preds, targets = self.model_step(batch)
        self.train_loss(loss)
        self.train_acc(preds, targets)
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, preds, targets = self.model_step(batch)
        self.val_loss(loss)
        self.val_acc(preds, targets)
        self.log("val/loss", self.val_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("val/acc", self.val_acc, on_step=False, on_epoch=True, prog_bar=True)

    def on_validation_epoch_end(self):
        acc = self.val_acc.compute()
        self.val_acc_best(acc)
        self.log("val/acc_best", self.val_acc_best.compute(), sync_dist=True, prog_bar=True)

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=0.001, weight_decay=0.0)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=10)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": "val/loss", "interval": "epoch", "frequency": 1},
        }


def template():
    return {
        "module": TemplateModule(),
        "data": DataModule(),
        "trainer": {"max_epochs": 3, "check_val_every_n_epoch": 1},
        "callbacks": [
            pl.callbacks.ModelCheckpoint(monitor="val/acc", mode="max", save_last=True),
            pl.callbacks.EarlyStopping(monitor="val/acc", patience=100, mode="max"),
        ],
    }
