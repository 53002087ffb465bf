# Lightning tutorials, "Barlow Twins Tutorial": two augmented views, a projection head, the cross-correlation loss,
# a warm-up + cosine LambdaLR per step, and the OnlineFineTuner callback training a linear probe on the frozen
# encoder's features in on_train_batch_end with its own optimizer (made in on_fit_start), logging its accuracy.
from collections.abc import Sequence
from functools import partial

import lightning as L
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.transforms as transforms
from lightning.pytorch import Callback, LightningModule
from torch import Tensor
from torch.utils.data import DataLoader
from torchmetrics.functional import accuracy
from torchvision.models.resnet import resnet18

from examples.jobs.data import FakeImages


class BarlowTwinsTransform:
    def __init__(self, train=True, input_height=32, gaussian_blur=False, jitter_strength=0.5, normalize=None):
        color_jitter = transforms.ColorJitter(
            0.8 * jitter_strength, 0.8 * jitter_strength, 0.8 * jitter_strength, 0.2 * jitter_strength
        )
        color_transform = [transforms.RandomApply([color_jitter], p=0.8), transforms.RandomGrayscale(p=0.2)]
        self.color_transform = transforms.Compose(color_transform)
        self.final_transform = (
            transforms.ToTensor() if normalize is None else transforms.Compose([transforms.ToTensor(), normalize])
        )
        self.transform = transforms.Compose(
            [
                transforms.RandomResizedCrop(input_height),
                transforms.RandomHorizontalFlip(p=0.5),
                self.color_transform,
                self.final_transform,
            ]
        )
        self.finetune_transform = (
            transforms.Compose(
                [
                    transforms.RandomCrop(32, padding=4, padding_mode="reflect"),
                    transforms.RandomHorizontalFlip(),
                    transforms.ToTensor(),
                ]
            )
            if train
            else transforms.ToTensor()
        )

    def __call__(self, sample):
        return self.transform(sample), self.transform(sample), self.finetune_transform(sample)


class ProjectionHead(nn.Module):
    def __init__(self, input_dim=512, hidden_dim=512, output_dim=128):
        super().__init__()
        self.projection_head = nn.Sequential(
            nn.Linear(input_dim, hidden_dim, bias=True),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, output_dim, bias=False),
        )

    def forward(self, x):
        return self.projection_head(x)


class BarlowTwinsLoss(nn.Module):
    def __init__(self, batch_size, lambda_coeff=5e-3, z_dim=128):
        super().__init__()
        self.z_dim, self.batch_size, self.lambda_coeff = z_dim, batch_size, lambda_coeff

    def off_diagonal_ele(self, x):
        n, _m = x.shape
        return x.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()

    def forward(self, z1, z2):
        z1_norm = (z1 - torch.mean(z1, dim=0)) / torch.std(z1, dim=0)
        z2_norm = (z2 - torch.mean(z2, dim=0)) / torch.std(z2, dim=0)
        cross_corr = torch.matmul(z1_norm.T, z2_norm) / self.batch_size
        on_diag = torch.diagonal(cross_corr).add_(-1).pow_(2).sum()
        off_diag = self.off_diagonal_ele(cross_corr).pow_(2).sum()
        return on_diag + self.lambda_coeff * off_diag


def fn(warmup_steps, step):
    return float(step / warmup_steps) if step < warmup_steps else 1.0


def linear_warmup_decay(warmup_steps):
    return partial(fn, warmup_steps)


class BarlowTwins(LightningModule):
    def __init__(
        self,
        encoder,
        encoder_out_dim,
        num_training_samples,
        batch_size,
        lambda_coeff=5e-3,
        z_dim=128,
        learning_rate=1e-4,
        warmup_epochs=10,
        max_epochs=200,
    ):
        super().__init__()
        self.encoder = encoder
        self.projection_head = ProjectionHead(input_dim=encoder_out_dim, hidden_dim=encoder_out_dim, output_dim=z_dim)
        self.loss_fn = BarlowTwinsLoss(batch_size=batch_size, lambda_coeff=lambda_coeff, z_dim=z_dim)
        self.learning_rate, self.warmup_epochs, self.max_epochs = learning_rate, warmup_epochs, max_epochs
        self.train_iters_per_epoch = num_training_samples // batch_size

    def forward(self, x):
        return self.encoder(x)

    def shared_step(self, batch):
        (x1, x2, _), _ = batch
        z1 = self.projection_head(self.encoder(x1))
        z2 = self.projection_head(self.encoder(x2))
        return self.loss_fn(z1, z2)

    def training_step(self, batch, batch_idx):
        loss = self.shared_step(batch)
        self.log("train_loss", loss, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch, batch_idx):
        loss = self.shared_step(batch)
        self.log("val_loss", loss, on_step=False, on_epoch=True)

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.learning_rate)
        warmup_steps = self.train_iters_per_epoch * self.warmup_epochs
        scheduler = {
            "scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, linear_warmup_decay(warmup_steps)),
            "interval": "step",
            "frequency": 1,
        }
        return [optimizer], [scheduler]


class OnlineFineTuner(Callback):
    def __init__(self, encoder_output_dim: int, num_classes: int) -> None:
        super().__init__()
        self.optimizer: torch.optim.Optimizer
        self.encoder_output_dim, self.num_classes = encoder_output_dim, num_classes

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.online_finetuner = nn.Linear(self.encoder_output_dim, self.num_classes).to(pl_module.device)
        self.optimizer = torch.optim.Adam(pl_module.online_finetuner.parameters(), lr=1e-4)

    def extract_online_finetuning_view(self, batch: Sequence, device: str | torch.device) -> tuple[Tensor, Tensor]:
        (_, _, finetune_view), y = batch
        return finetune_view.to(device), y.to(device)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        x, y = self.extract_online_finetuning_view(batch, pl_module.device)
        with torch.no_grad():
            feats = pl_module(x)
        feats = feats.detach()
        preds = pl_module.online_finetuner(feats)
        loss = F.cross_entropy(preds, y)
        acc = accuracy(F.softmax(preds, dim=1), y, task="multiclass", num_classes=10)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        pl_module.log("online_train_acc", acc, on_step=True, on_epoch=False)
        pl_module.log("online_train_loss", loss, on_step=True, on_epoch=False)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        x, y = self.extract_online_finetuning_view(batch, pl_module.device)
        with torch.no_grad():
            feats = pl_module(x)
        feats = feats.detach()
        preds = pl_module.online_finetuner(feats)
        loss = F.cross_entropy(preds, y)
        acc = accuracy(F.softmax(preds, dim=1), y, task="multiclass", num_classes=10)
        pl_module.log("online_val_acc", acc, on_step=False, on_epoch=True, sync_dist=True)
        pl_module.log("online_val_loss", loss, on_step=False, on_epoch=True, sync_dist=True)


def make():
    batch_size, z_dim, max_epochs = 32, 128, 2
    train = FakeImages(96, (3, 32, 32), 10, mode="RGB", transform=BarlowTwinsTransform(train=True))
    val = FakeImages(32, (3, 32, 32), 10, seed=1, mode="RGB", transform=BarlowTwinsTransform(train=False))
    encoder = resnet18(weights=None)
    encoder.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    encoder.maxpool = nn.MaxPool2d(kernel_size=1, stride=1)
    encoder.fc = nn.Identity()
    model = BarlowTwins(
        encoder=encoder,
        encoder_out_dim=512,
        num_training_samples=len(train),
        batch_size=batch_size,
        z_dim=z_dim,
        max_epochs=max_epochs,
    )
    return {
        "module": model,
        "data": DataLoader(train, batch_size=batch_size, shuffle=True, drop_last=True),
        "val_data": DataLoader(val, batch_size=batch_size, shuffle=False, drop_last=True),
        "trainer": {"max_epochs": max_epochs},
        "callbacks": [OnlineFineTuner(encoder_output_dim=512, num_classes=10)],
    }
