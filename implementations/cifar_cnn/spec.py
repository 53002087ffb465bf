"""CIFAR-10 CNN: everything both loops share (config, data, model, loss, optimizer, evaluation).

A ResNet-free conv net of the airbench family: a stem and three conv-pool-conv blocks with
BatchNorm and GELU, max-pooled head; SGD with Nesterov momentum, one-cycle learning rate stepped per
batch, cross-entropy with label smoothing. The `full` preset at widths 64/256/256/256 is the size of
airbench94's net; on real CIFAR-10 expect roughly 90% test accuracy after its 10 epochs (without
airbench's whitening and augmentation tricks). Synthetic data stands in offline: ten smooth colour
layouts, shifted, flipped, mixed with a distractor and drowned in noise; learnable, not trivial.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from implementations.common import Data, Harness, download, one_cycle, out_of_range

NUM_CLASSES = 10
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


@dataclass(frozen=True)
class Config:
    steps: int = 970  # optimizer steps = batches; 970 x 512 is about 10 epochs of CIFAR-10
    batch_size: int = 512
    warmup_steps: int = 20  # steps left out of the timing window
    widths: tuple[int, int, int, int] = (64, 256, 256, 256)  # stem, block1, block2, block3 channels
    lr: float = 0.2  # peak of the one-cycle schedule, for a batch of `batch_size`
    momentum: float = 0.9  # Nesterov
    weight_decay: float = 5e-4
    label_smoothing: float = 0.2
    pct_start: float = 0.25  # fraction of the steps spent warming the learning rate up
    train_size: int = 50_000  # samples (a prefix of the real training set)
    test_size: int = 10_000
    validate_every_epoch: bool = False  # the whole job: validate after each epoch, keep the best weights
    patience: int = 0  # with validate_every_epoch: stop after this many validations without a better one (0: never)
    val_batch_size: int = 256
    data_seed: int = 0  # the synthetic data set; training randomness comes from the run's seed


# quick (the CPU bench) and full run the whole job: a validation after every epoch, the best weights kept
PRESETS = {
    "smoke": Config(steps=12, batch_size=32, warmup_steps=2, widths=(8, 16, 16, 32), train_size=256, test_size=128),
    "quick": Config(
        steps=40,
        batch_size=64,
        warmup_steps=5,
        widths=(16, 32, 64, 64),
        train_size=2_048,
        test_size=1_000,
        lr=0.1,
        validate_every_epoch=True,
    ),
    "full": Config(validate_every_epoch=True),
}

METRICS = ("test_loss", "test_accuracy")  # what evaluate() returns, in that order
# one optimizer; 6 rounds (the least whose interval, the range of the pairs, covers 96.9%): four implementations a round
HARNESS = Harness(segment=(8, 2), count=(6, 2), probe_shape="auto", rounds=6)
MONITOR = ("val_accuracy", "max")  # what the epoch mode keeps the best weights by


def val_metrics() -> Any:
    """The validation metrics, as torchmetrics objects named as they are logged."""
    from torchmetrics import MetricCollection
    from torchmetrics.classification import MulticlassAccuracy

    return MetricCollection({"val_accuracy": MulticlassAccuracy(num_classes=10, average="micro")})


def val_outputs(model: nn.Module, batch: Any, batch_idx: int, cfg: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """What the validation metrics are updated with, for one batch: (logits, labels)."""
    x, y = batch
    return model(x).float(), y


def check(cfg: Config) -> str | None:
    """What is wrong with a config that parses (one line for the user), or None."""
    return out_of_range(cfg, widths=(1, math.inf), momentum=(0, 1), label_smoothing=(0, 1), pct_start=(0.01, 1))


# -- data -----------------------------------------------------------------------------------------


def synthetic_cifar(n: int, seed: int) -> TensorDataset:
    """n CIFAR-shaped (3x32x32, normalised) images of 10 classes, deterministic in `seed`.

    A class is a smooth colour layout (a random 4x4 RGB grid upsampled); each image is its class
    layout with random contrast, shifted by up to 4 px, maybe flipped, plus half of another class's
    layout as a distractor and Gaussian noise.
    """
    g = torch.Generator().manual_seed(seed)
    layouts = F.interpolate(torch.rand(NUM_CLASSES, 3, 4, 4, generator=g) * 2 - 1, size=32, mode="bilinear")
    labels = torch.randint(0, NUM_CLASSES, (n,), generator=g)
    distractors = (labels + torch.randint(1, NUM_CLASSES, (n,), generator=g)) % NUM_CLASSES
    contrast = torch.empty(n, 1, 1, 1).uniform_(0.6, 1.4, generator=g)
    x = contrast * layouts[labels] + 0.5 * layouts[distractors]
    shifts = torch.randint(-4, 5, (n, 2), generator=g)
    for dy, dx in shifts.unique(dim=0).tolist():  # at most 81 groups: vectorised per shift
        idx = ((shifts[:, 0] == dy) & (shifts[:, 1] == dx)).nonzero().squeeze(1)
        x[idx] = x[idx].roll((dy, dx), dims=(2, 3))
    flip = torch.rand(n, generator=g) < 0.5
    x[flip] = x[flip].flip(3)
    x += 0.8 * torch.randn(x.shape, generator=g)
    return TensorDataset(x, labels)


def real_cifar(root: str, train: bool, n: int) -> TensorDataset:
    """The first n images of torchvision's CIFAR-10 split, normalised, as in-memory tensors."""
    from torchvision.datasets import CIFAR10

    ds = download(CIFAR10, root, train, "CIFAR-10", "cifar-10-batches-py")
    x = torch.tensor(ds.data[:n]).permute(0, 3, 1, 2).float().div(255)
    x = (x - torch.tensor(CIFAR_MEAN).view(3, 1, 1)) / torch.tensor(CIFAR_STD).view(3, 1, 1)
    return TensorDataset(x, torch.tensor(ds.targets[:n]))


def build_data(cfg: Config, source: Any) -> Data:
    if source.kind == "real":
        root = str(source.dir)
        train, test = real_cifar(root, True, cfg.train_size), real_cifar(root, False, cfg.test_size)
        info = {"source": "real", "dataset": "CIFAR-10", "dir": str(source.dir)}
    else:
        # one draw, then split: train and test come from the same distribution
        full = synthetic_cifar(cfg.train_size + cfg.test_size, cfg.data_seed)
        x, y = full.tensors
        train = TensorDataset(x[: cfg.train_size], y[: cfg.train_size])
        test = TensorDataset(x[cfg.train_size :], y[cfg.train_size :])
        info = {"source": "synthetic", "dataset": "CIFAR-10-shaped", "data_seed": cfg.data_seed}
    return Data(train, test, info | {"train_size": len(train), "test_size": len(test), "classes": NUM_CLASSES})


# -- model, loss, optimizer -------------------------------------------------------------------------


def conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.GELU())


class ConvBlock(nn.Sequential):
    """conv -> 2x2 max-pool -> conv: halves the resolution."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(conv_bn(c_in, c_out), nn.MaxPool2d(2), conv_bn(c_out, c_out))


class CifarNet(nn.Sequential):
    def __init__(self, widths: tuple[int, int, int, int]):
        w0, w1, w2, w3 = widths
        super().__init__(
            conv_bn(3, w0),  # (B, w0, 32, 32)
            ConvBlock(w0, w1),  # (B, w1, 16, 16)
            ConvBlock(w1, w2),  # (B, w2, 8, 8)
            ConvBlock(w2, w3),  # (B, w3, 4, 4)
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),  # (B, w3)
            nn.Linear(w3, NUM_CLASSES),
        )


def build_model(cfg: Config) -> nn.Module:
    """Draws its initial weights from the global RNG: seed it first."""
    return CifarNet(cfg.widths)


def loss_fn(logits: torch.Tensor, targets: torch.Tensor, cfg: Config) -> torch.Tensor:
    return F.cross_entropy(logits, targets, label_smoothing=cfg.label_smoothing)


def build_optimizer(model: nn.Module, cfg: Config) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay
    )


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: Config) -> torch.optim.lr_scheduler.LRScheduler:
    """One-cycle over the run's length in batches, stepped once per batch."""
    return one_cycle(optimizer, cfg.lr, cfg.steps, cfg.pct_start)


# -- evaluation ---------------------------------------------------------------------------------------


@torch.no_grad()
def evaluate(model: nn.Module, data: Data, device: torch.device, batch_size: int = 1_000) -> dict[str, float]:
    """Test loss (no smoothing) and accuracy, in fp32 and eval mode; draws no random numbers."""
    model = model.to(device).eval()
    x, y = data.test.tensors
    loss_sum, correct = 0.0, 0
    for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True):
        logits = model(xb.to(device)).float()
        yb = yb.to(device)
        loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
        correct += (logits.argmax(1) == yb).sum().item()
    return {"test_loss": loss_sum / len(y), "test_accuracy": correct / len(y)}
