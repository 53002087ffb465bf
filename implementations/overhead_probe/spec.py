"""The overhead probe: a training job whose compute is negligible, so what is left is the framework.

`Linear(8, 1)` on batches of 8 from an in-memory tensor set, one torch thread: a plain-loop step
costs on the order of 100 us here, so a Trainer's fixed cost per optimizer step (hooks, logging,
progress bar) is a large, measurable fraction of it. Two shapes, as the tasks use Lightning:
- `auto`: one optimizer (SGD) and a per-step scheduler, automatic optimization (CIFAR/EfficientNet);
- `manual`: two models, two optimizers, manual optimization with toggle_optimizer (the GAN).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from implementations.common import Data, out_of_range
from loopbench.core.types import DataError

SHAPES = ("auto", "manual")


@dataclass(frozen=True)
class Config:
    steps: int = 3_000  # batches; each is one optimizer step (auto) or two (manual)
    batch_size: int = 8
    warmup_steps: int = 300  # steps left out of the timing window
    shape: str = "auto"  # auto | manual
    features: int = 8
    lr: float = 0.01  # SGD
    gamma: float = 0.9999  # per-step exponential learning-rate decay (auto: the scheduler's work)
    threads: int = 1  # torch threads: the probe measures the framework, not kernel parallelism
    train_size: int = 4_096  # 512 batches per epoch: a quick run crosses epoch boundaries
    test_size: int = 256
    data_seed: int = 0
    # experiments only (experiments/trainer_cache.py): the model's own work made longer in four ways
    ballast_mib: float = 0.0  # MiB of memory each forward reads: evicts the caches
    spin: int = 0  # 64x64 matmuls each forward runs: compute that stays in the L1 cache
    busy_ms: float = 0.0  # ms each forward spins on the clock: a longer step, little code, no data
    idle_ms: float = 0.0  # ms each forward sleeps: a longer step, the core left to others


PRESETS = {"smoke": Config(steps=20, warmup_steps=2, train_size=64), "quick": Config(), "full": Config()}
METRICS = ("test_mse",)  # what evaluate() returns


def check(cfg: Config) -> str | None:
    """What is wrong with a config that parses (one line for the user), or None."""
    if cfg.shape not in SHAPES:
        return f"shape must be one of {', '.join(SHAPES)}, got {cfg.shape!r}"
    return out_of_range(
        cfg,
        features=(1, math.inf),
        threads=(1, 1025),
        gamma=(0.5, 1.0001),
        ballast_mib=(0, 4097),
        spin=(0, 10**5),
        busy_ms=(0, 10**4),
        idle_ms=(0, 10**4),
    )


def build_data(cfg: Config, source) -> Data:
    if source.kind == "real":
        raise DataError("the overhead probe has no real data set; use --data synthetic")
    g = torch.Generator().manual_seed(cfg.data_seed)
    n = cfg.train_size + cfg.test_size
    x = torch.randn(n, cfg.features, generator=g)
    y = x @ torch.linspace(-1, 1, cfg.features).unsqueeze(1) + 0.1 * torch.randn(n, 1, generator=g)
    train = TensorDataset(x[: cfg.train_size], y[: cfg.train_size])
    test = TensorDataset(x[cfg.train_size :], y[cfg.train_size :])
    info = {"source": "synthetic", "dataset": "linear regression", "train_size": cfg.train_size}
    return Data(train, test, info)


class Loaded(nn.Linear):
    """A Linear whose forward first reads `ballast_mib` MiB (evicting the caches), runs `spin` 64x64 matmuls
    (compute that stays in L1), spins on the clock for `busy_ms` and sleeps for `idle_ms`: longer model work of
    four kinds, same weights, same bits, no random draws."""

    def __init__(self, features: int, cfg: Config):
        super().__init__(features, 1)
        self.ballast = torch.ones(int(cfg.ballast_mib * 2**20) // 4)  # plain attributes: no state, never moved
        self.small = torch.full((64, 64), 1 / 64)
        self.spin, self.busy_s, self.idle_s = cfg.spin, cfg.busy_ms / 1e3, cfg.idle_ms / 1e3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.ballast.numel():
            self.ballast.sum()
        m = self.small
        for _ in range(self.spin):
            m = m @ self.small
        end = time.perf_counter() + self.busy_s
        while time.perf_counter() < end:
            pass
        if self.idle_s:
            time.sleep(self.idle_s)
        return super().forward(x)


def build_models(cfg: Config) -> nn.ModuleDict:
    """One Linear for `auto`; two (a and b, each with its own optimizer) for `manual`. Seed first."""
    names = ("a",) if cfg.shape == "auto" else ("a", "b")
    if cfg.ballast_mib or cfg.spin or cfg.busy_ms or cfg.idle_ms:
        return nn.ModuleDict({name: Loaded(cfg.features, cfg) for name in names})
    return nn.ModuleDict({name: nn.Linear(cfg.features, 1) for name in names})


def build_optimizers(models: nn.ModuleDict, cfg: Config) -> list[torch.optim.SGD]:
    return [torch.optim.SGD(m.parameters(), lr=cfg.lr) for m in models.values()]


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: Config) -> torch.optim.lr_scheduler.ExponentialLR:
    return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=cfg.gamma)


def loss_fn(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(pred, y)


@torch.no_grad()
def evaluate(models: nn.ModuleDict, data: Data, device: torch.device) -> dict[str, float]:
    """Test MSE of the (mean) prediction; draws no random numbers."""
    x, y = (t.to(device) for t in data.test.tensors)
    pred = torch.stack([m(x) for m in models.values()]).mean(0)
    return {"test_mse": float(loss_fn(pred, y))}
