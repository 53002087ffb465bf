"""What `configure_optimizers` returned, in every form Lightning documents, as plain optimizers and schedulers.

The forms: one optimizer; a list or tuple of them; two lists (optimizers, schedulers); a dict with "optimizer"
and an optional "lr_scheduler" (a scheduler or its config dict) and "monitor"; a list of such dicts. A scheduler's
config has "interval" ("epoch", the default, or "step"), "frequency" (1) and, for ReduceLROnPlateau, "monitor":
the logged metric it steps on. The plain loop steps each where the Trainer would (pytorch_loop.py), through the
module's lr_scheduler_step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from loopbench.core.types import UsageError

KEYS = {"scheduler", "interval", "frequency", "monitor", "strict", "name", "reduce_on_plateau"}


@dataclass(frozen=True)
class Scheduled:
    """A scheduler and when to step it: the fields of Lightning's LRSchedulerConfig that decide the steps."""

    scheduler: Any
    interval: str = "epoch"
    frequency: int = 1
    reduce_on_plateau: bool = False
    monitor: str | None = None
    strict: bool = True
    name: str | None = None


@dataclass
class Optimization:
    optimizers: list[torch.optim.Optimizer]
    schedulers: list[Scheduled] = field(default_factory=list)

    def step_schedulers(self, interval: str, index: int, step: Callable[[Any, Any], None], plateau: bool = False,
                        metrics: dict[str, Any] | None = None) -> None:  # fmt: skip
        """Step the schedulers of `interval` whose frequency divides `index` (1-based, as the Trainer counts) through
        `step(scheduler, metric)`: the plateau ones (on their monitored metric) or the others, as `plateau` says."""
        for s in self.schedulers:
            if s.interval != interval or s.reduce_on_plateau != plateau or index % s.frequency:
                continue
            metric = None
            if plateau:
                metric = (metrics or {}).get(s.monitor)
                if metric is None:
                    if s.strict:
                        raise UsageError(f"ReduceLROnPlateau conditioned on metric {s.monitor}, which is not "
                                         f"available; logged: {sorted(metrics or {})}")  # fmt: skip
                    continue
            step(s.scheduler, metric)


def _scheduled(item: Any, monitor: str | None, factory: str) -> Scheduled:
    if isinstance(item, dict):
        unknown = set(item) - KEYS
        if "scheduler" not in item or unknown:
            raise UsageError(f"{factory}: a scheduler config needs 'scheduler' (and no {sorted(unknown)})")
        fields = {k: v for k, v in item.items() if k in KEYS}
        plateau = isinstance(item["scheduler"], torch.optim.lr_scheduler.ReduceLROnPlateau)
        fields.setdefault("reduce_on_plateau", plateau)
        fields.setdefault("monitor", monitor)
        s = Scheduled(**fields)
    else:
        plateau = isinstance(item, torch.optim.lr_scheduler.ReduceLROnPlateau)
        s = Scheduled(item, reduce_on_plateau=plateau, monitor=monitor)
    if s.reduce_on_plateau and s.monitor is None:
        raise UsageError(f"{factory}: ReduceLROnPlateau needs a 'monitor' in configure_optimizers' dict")
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
        scheduler = returned.get("lr_scheduler")
        schedulers = [_scheduled(scheduler, returned.get("monitor"), factory)] if scheduler else []
        return Optimization([returned["optimizer"]], schedulers)
    if isinstance(returned, (list, tuple)) and returned:
        if len(returned) == 2 and all(isinstance(x, (list, tuple)) for x in returned):  # (optimizers, schedulers)
            return Optimization(list(returned[0]), [_scheduled(s, None, factory) for s in returned[1]])
        if all(isinstance(x, dict) for x in returned):
            parts = [configure(x, factory) for x in returned]
            return Optimization([o for p in parts for o in p.optimizers], [s for p in parts for s in p.schedulers])
        if all(isinstance(x, torch.optim.Optimizer) for x in returned):
            return Optimization(list(returned))
    raise UsageError(f"{factory}: configure_optimizers returned {type(returned).__name__}, not one of the forms "
                     "Lightning documents (an optimizer, a list, two lists, a dict, a list of dicts)")  # fmt: skip
