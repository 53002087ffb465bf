"""What `configure_optimizers` returned, in every form Lightning documents, as plain optimizers and schedulers.

The forms: one optimizer; a list or tuple of them; two lists (optimizers, schedulers); a dict with "optimizer"
and an optional "lr_scheduler" (a scheduler or its config dict); a list of such dicts. A scheduler's config
has "interval" ("epoch", the default, or "step") and "frequency" (1); the plain loop steps it where the
Trainer would: step-interval ones after the optimizer's step when (batch index in the epoch + 1) is a
multiple of the frequency, epoch-interval ones at an epoch's end when (epoch + 1) is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from loopbench.core.types import UsageError


@dataclass(frozen=True)
class Scheduled:
    scheduler: Any
    interval: str = "epoch"
    frequency: int = 1


@dataclass
class Optimization:
    optimizers: list[torch.optim.Optimizer]
    schedulers: list[Scheduled] = field(default_factory=list)

    def step_schedulers(self, interval: str, index: int) -> None:
        """Step the schedulers of `interval` whose frequency divides `index` (1-based, as the Trainer counts)."""
        for s in self.schedulers:
            if s.interval == interval and index % s.frequency == 0:
                s.scheduler.step()


def _scheduled(item: Any, factory: str) -> Scheduled:
    if isinstance(item, dict):
        unknown = set(item) - {"scheduler", "interval", "frequency", "monitor", "strict", "name"}
        if "scheduler" not in item or unknown:
            raise UsageError(f"{factory}: a scheduler config needs 'scheduler' (and no {sorted(unknown)})")
        s = Scheduled(item["scheduler"], item.get("interval", "epoch"), item.get("frequency", 1))
    else:
        s = Scheduled(item)
    if isinstance(s.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        raise UsageError(f"{factory}: ReduceLROnPlateau steps on a metric the Trainer logs; the plain loop has none")
    if s.interval not in ("epoch", "step"):
        raise UsageError(f"{factory}: a scheduler's interval is 'epoch' or 'step', not {s.interval!r}")
    return s


def configure(returned: Any, factory: str) -> Optimization:
    """The optimizers and schedulers of a `configure_optimizers` return value, or a one-line UsageError."""
    if isinstance(returned, torch.optim.Optimizer):
        return Optimization([returned])
    if isinstance(returned, dict):
        if "optimizer" not in returned:
            raise UsageError(f"{factory}: configure_optimizers returned a dict without 'optimizer'")
        schedulers = [_scheduled(returned["lr_scheduler"], factory)] if returned.get("lr_scheduler") else []
        return Optimization([returned["optimizer"]], schedulers)
    if isinstance(returned, (list, tuple)) and returned:
        if len(returned) == 2 and all(isinstance(x, (list, tuple)) for x in returned):  # (optimizers, schedulers)
            return Optimization(list(returned[0]), [_scheduled(s, factory) for s in returned[1]])
        if all(isinstance(x, dict) for x in returned):
            parts = [configure(x, factory) for x in returned]
            return Optimization([o for p in parts for o in p.optimizers], [s for p in parts for s in p.schedulers])
        if all(isinstance(x, torch.optim.Optimizer) for x in returned):
            return Optimization(list(returned))
    raise UsageError(f"{factory}: configure_optimizers returned {type(returned).__name__}, not one of the forms "
                     "Lightning documents (an optimizer, a list, two lists, a dict, a list of dicts)")  # fmt: skip
