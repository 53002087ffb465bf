"""A user's own LightningModule as a task: `loopbench module PKG.MOD:FACTORY`.

The factory (no arguments) returns a LightningModule, or a (module, data) pair where data is a DataLoader or
a LightningDataModule; without data the module's own `train_dataloader` serves. Both loops call it after
seeding, so both start from the same weights. lightning_loop.py hands the module to the Trainer as it is;
pytorch_loop.py trains it with a plain loop built from the module's own hooks, in the Trainer's order of
calls (that order decides what the random generators draw). What the plain loop cannot mirror is refused in
one line (`unmirrored`), never dropped.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn.modules import module as nn_module

from implementations.common import Data, Harness
from loopbench.core.types import DataError, UsageError


@dataclass(frozen=True)
class Config:
    factory: str = ""  # PKG.MOD:FACTORY
    steps: int = 200  # optimizer steps
    warmup_steps: int = 20
    batch_size: int = 1  # the module's own loader decides its batch (recorded from it; 1 where it has none)
    accumulate_grad_batches: int = 1  # Trainer(accumulate_grad_batches=...), mirrored by the plain loop
    gradient_clip_val: float = 0.0  # Trainer(gradient_clip_val=...) by norm; 0: none


PRESETS = {"smoke": Config(steps=8, warmup_steps=2), "quick": Config(), "full": Config(steps=2_000, warmup_steps=100)}
METRICS = ()  # a user's module has no held-out evaluation here: parity is on the losses and the weights
HARNESS = Harness(segment=(10, 5), count=(8, 2), probe_shape="auto", by_time=True)  # by time: its step is unknown

# The hooks the plain loop calls as the Trainer does; any other hook a module overrides is refused.
MIRRORED = {
    "training_step", "configure_optimizers", "train_dataloader", "forward", "transfer_batch_to_device",
    "optimizer_zero_grad", "backward", "optimizer_step", "prepare_data", "setup", "configure_model",
    # never called while training without validation: harmless to have
    "validation_step", "test_step", "predict_step", "val_dataloader", "test_dataloader", "predict_dataloader",
    "on_validation_epoch_end", "on_test_epoch_end", "teardown",
}  # fmt: skip


def check(cfg: Config) -> str | None:
    if not cfg.factory:
        return "the module task needs a factory: loopbench module PKG.MOD:FACTORY"
    if cfg.accumulate_grad_batches < 1:
        return f"accumulate_grad_batches must be at least 1, got {cfg.accumulate_grad_batches}"
    return None


def build_data(cfg: Config, source) -> Data:
    if source.kind == "real":
        raise DataError("a module brings its own data; use --data synthetic")
    return Data(train=(), test=(), info={"source": "the module's own", "dataset": cfg.factory})


def load(cfg: Config) -> tuple[Any, Any]:
    """(LightningModule, its data or None): the factory called once. Seed first."""
    import pytorch_lightning as pl

    text = cfg.factory
    if os.getcwd() not in sys.path:  # PKG.MOD from the folder the command ran in, as `python -m` finds it
        sys.path.insert(0, os.getcwd())
    path, _, name = text.partition(":")
    if not path or not name:
        raise UsageError(f"{text!r}: name the factory as PKG.MOD:FACTORY")
    try:
        factory = getattr(importlib.import_module(path), name)
    except ImportError as e:
        raise UsageError(f"{text}: cannot import {path} ({type(e).__name__}: {e})") from None
    except AttributeError:
        raise UsageError(f"{text}: {path} has no {name}") from None
    made = factory()
    module, data = made if isinstance(made, tuple) and len(made) == 2 else (made, None)
    if not isinstance(module, pl.LightningModule):
        raise UsageError(f"{text} returned {type(module).__name__}, not a LightningModule (or a (module, data) pair)")
    if data is not None and not isinstance(data, (torch.utils.data.DataLoader, pl.LightningDataModule)):
        raise UsageError(f"{text}: its data is a {type(data).__name__}, not a DataLoader or a LightningDataModule")
    if data is None and not overrides(module, "train_dataloader"):
        raise UsageError(f"{text}: the module has no training data (no train_dataloader, and no data returned)")
    return module, data


def samples_per_batch(loader: Any) -> int:
    """The loader's batch size, as samples/s counts them (1 where it has none: a batch sampler's own)."""
    return getattr(loader, "batch_size", None) or 1


def overrides(module: Any, hook: str) -> bool:
    """Does the module's class define `hook` itself, rather than inherit Lightning's?"""
    import pytorch_lightning as pl

    return getattr(type(module), hook, None) is not getattr(pl.LightningModule, hook, None)


def unmirrored(module: Any, cfg: Config, precision: str) -> str | None:
    """Why the plain loop cannot train this module as the Trainer would (one line), or None."""
    import pytorch_lightning as pl

    hooks = [h for h in dir(pl.LightningModule) if h.startswith(("on_", "configure_", "lr_scheduler_step"))]
    hooks += ["training_step", "backward", "optimizer_step", "optimizer_zero_grad", "transfer_batch_to_device"]
    extra = sorted(h for h in set(hooks) - MIRRORED if overrides(module, h))
    if extra:
        return f"{cfg.factory}: overrides {', '.join(extra)}, which the plain loop does not mirror"
    if precision == "16-mixed" and overrides(module, "optimizer_step"):
        return f"{cfg.factory}: an optimizer_step override in 16-mixed steps around Lightning's GradScaler"
    if not module.automatic_optimization and precision == "16-mixed":
        return f"{cfg.factory}: manual optimization in 16-mixed needs Lightning's loss scaling inside manual_backward"
    if not module.automatic_optimization and (cfg.accumulate_grad_batches > 1 or cfg.gradient_clip_val):
        return f"{cfg.factory}: manual optimization does its own accumulation and clipping; the Trainer refuses both"
    return None


def loss_of(output: Any, factory: str) -> torch.Tensor:
    """The loss a training step returned: a tensor, or a dict's "loss"."""
    loss = output.get("loss") if isinstance(output, dict) else output
    if not isinstance(loss, torch.Tensor):
        raise UsageError(f"{factory}: training_step returned {type(output).__name__}, not a loss tensor (or a dict "
                         "with 'loss'); a step that skips its update has no plain equivalent here")  # fmt: skip
    return loss


class FirstOutput:
    """The dtype of the first floating output of an outermost module call in training: what the forward ran in."""

    def __init__(self) -> None:
        self.tensor: torch.Tensor | None = None
        self._depth = 0
        self._handles = [
            nn_module.register_module_forward_pre_hook(self._pre),
            nn_module.register_module_forward_hook(self._post, always_call=True),
        ]

    def _pre(self, module: torch.nn.Module, args: Any) -> None:
        self._depth += 1

    def _post(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        self._depth -= 1
        if self._depth == 0 and self.tensor is None and module.training:
            first = output[0] if isinstance(output, (tuple, list)) and output else output
            if isinstance(first, torch.Tensor) and first.is_floating_point():
                self.tensor = first.detach()
                self.close()

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def evaluate(module: Any, data: Data, device: torch.device) -> dict[str, float]:
    return {}
