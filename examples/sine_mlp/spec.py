"""A task from outside the package: a small MLP fitting a sine, to show the three files a task needs.

Run it by its folder: `loopbench suite --tasks examples/sine_mlp`, or `loopbench parity --task
examples/sine_mlp --against lightning`. The loops import this file as `from . import spec`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from implementations.common import Data, Harness, out_of_range
from loopbench.core.types import DataError


@dataclass(frozen=True)
class Config:
    steps: int = 400  # optimizer steps
    batch_size: int = 32
    warmup_steps: int = 40  # steps left out of the timing window
    width: int = 64
    lr: float = 0.01  # Adam
    train_size: int = 2_048
    test_size: int = 256
    data_seed: int = 0


PRESETS = {"smoke": Config(steps=12, warmup_steps=2, train_size=256), "quick": Config(), "full": Config(steps=4_000)}
METRICS = ("test_mse",)  # what evaluate() returns
HARNESS = Harness(segment=(60, 10), count=(8, 2), probe_shape="auto")  # one optimizer, automatic optimization


def check(cfg: Config) -> str | None:
    """What is wrong with a config that parses (one line for the user), or None."""
    return out_of_range(cfg, width=(1, math.inf), lr=(0, math.inf))


def build_data(cfg: Config, source) -> Data:
    if source.kind == "real":
        raise DataError("sine_mlp has no real data set; use --data synthetic")
    g = torch.Generator().manual_seed(cfg.data_seed)
    x = torch.rand(cfg.train_size + cfg.test_size, 1, generator=g) * 2 * math.pi
    y = torch.sin(x) + 0.05 * torch.randn(x.shape, generator=g)
    n = cfg.train_size
    info = {"source": "synthetic", "dataset": "noisy sine", "train_size": n}
    return Data(TensorDataset(x[:n], y[:n]), TensorDataset(x[n:], y[n:]), info)


def build_model(cfg: Config) -> nn.Module:
    """Seed first: the initial weights come from the global RNG."""
    return nn.Sequential(nn.Linear(1, cfg.width), nn.Tanh(), nn.Linear(cfg.width, cfg.width), nn.Tanh(),
                         nn.Linear(cfg.width, 1))  # fmt: skip


def build_optimizer(model: nn.Module, cfg: Config) -> torch.optim.Adam:
    return torch.optim.Adam(model.parameters(), lr=cfg.lr)


def loss_fn(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(pred, y)


@torch.no_grad()
def evaluate(model: nn.Module, data: Data, device: torch.device) -> dict[str, float]:
    x, y = (t.to(device) for t in data.test.tensors)
    return {"test_mse": float(loss_fn(model(x), y))}
