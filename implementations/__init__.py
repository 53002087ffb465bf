"""The code under comparison. The harness knows tasks only through this registry.

A task is a package `implementations/<task>/` with
  spec.py            Config (frozen dataclass), PRESETS, build_data(cfg, source), the models, loss,
                     optimizer/scheduler factories and evaluate(): everything both loops share;
  pytorch_loop.py    def train(cfg, run) -> RunResult, a plain PyTorch loop;
  lightning_loop.py  def train(cfg, run) -> RunResult, a LightningModule + Trainer.
Imports are lazy so that the CLI answers --help and bad input without loading Lightning.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType

from loopbench.core.trainers import TRAINERS

TASKS = ("mnist_gan", "efficientnet_binary", "cifar_cnn")  # the default matrix
PROBES = ("overhead_probe",)  # jobs that measure the framework itself; runnable by name, not in the matrix
RUNNABLE = TASKS + PROBES
IMPLS = {  # the default matrix
    "pytorch": "pytorch_loop",
    "lightning": "lightning_loop",  # lean Trainer: the fair comparison
    "lightning-defaults": "lightning_loop",  # the Trainer as a new user gets it, with self.log
}
# Every Trainer of loopbench.core.trainers runs the same LightningModule: the ladder's variants too, by name.
ALL_IMPLS = IMPLS | {name: "lightning_loop" for name in TRAINERS}


def spec(task: str) -> ModuleType:
    if task not in RUNNABLE:
        raise KeyError(f"unknown task {task!r}; choose from {', '.join(RUNNABLE)}")
    return importlib.import_module(f"implementations.{task}.spec")


def train_fn(task: str, impl: str) -> Callable:
    spec(task)
    if impl not in ALL_IMPLS:
        raise KeyError(f"unknown implementation {impl!r}; choose from {', '.join(ALL_IMPLS)}")
    return importlib.import_module(f"implementations.{task}.{ALL_IMPLS[impl]}").train
