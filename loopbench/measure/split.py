"""The in-place split: how much of each step is the model's own work, and how much is everything else.

The model's own work is its forward and loss (every call of an nn.Module from outside any other), its
backward (`Tensor.backward`) and its optimizer update (`Optimizer.step`, less the closure that Lightning
runs inside it: the training step, which is timed by its own parts). The rest of a step is data fetch,
hooks, logging and the loop's or the Trainer's bookkeeping. The timers sit at the same points on both
sides, through torch's global module and optimizer hooks and one wrapped method, so neither loop changes;
rest(Lightning) - rest(plain) is then the Trainer's own time per step, with the model's work cancelled
out. Host time only: on CPU that is the step; on CUDA the device runs behind the host, so the split is
not taken there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch.nn.modules import module as nn_module
from torch.optim import optimizer as optim_module


class Split:
    """Seconds of the model's own work in each step, between `tick()`s; `close()` removes every timer."""

    def __init__(self) -> None:
        self.work_times_s: list[float] = []
        self.paused = False  # between steps (validation, checkpoints): nothing counted
        self._work = 0.0  # this step's so far
        self._depth = 0  # nesting of timed regions: only the outermost one counts
        self._since = 0.0
        self._backward = torch.Tensor.backward
        self._handles = [
            nn_module.register_module_forward_pre_hook(self._forward_pre),
            nn_module.register_module_forward_hook(self._forward_post, always_call=True),
            optim_module.register_optimizer_step_pre_hook(self._step_pre),
            optim_module.register_optimizer_step_post_hook(self._step_post),
        ]
        split, backward = self, self._backward

        def timed_backward(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> None:
            split.enter()
            try:
                return backward(tensor, *args, **kwargs)
            finally:
                split.exit()

        torch.Tensor.backward = timed_backward

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        torch.Tensor.backward = self._backward

    # -- the timed regions: forward, backward, the optimizer's update --------------------------

    def enter(self) -> None:
        if self._depth == 0:
            self._since = time.perf_counter()
        self._depth += 1

    def exit(self) -> None:
        self._depth -= 1
        if self._depth == 0 and not self.paused:
            self._work += time.perf_counter() - self._since

    def _forward_pre(self, module: torch.nn.Module, args: Any) -> None:
        self.enter()

    def _forward_post(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        self.exit()

    def _step_pre(self, optimizer: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        self.enter()
        closure = kwargs.get("closure", args[1] if len(args) > 1 else None)
        if closure is None:
            return None
        kwargs = {**kwargs, "closure": self._outside(closure)}  # Lightning's training step runs inside step()
        return args[:1], kwargs

    def _step_post(self, optimizer: Any, args: tuple, kwargs: dict) -> None:
        self.exit()

    def _outside(self, closure: Callable[[], Any]) -> Callable[[], Any]:
        """`closure`, its time taken out of the update's (its forward and backward are timed on their own)."""

        def run() -> Any:
            self.exit()
            try:
                return closure()
            finally:
                self.enter()

        return run

    # -- per step ------------------------------------------------------------------------------

    def tick(self) -> None:
        """A step ended: its work is recorded, the next one's starts at zero."""
        self.work_times_s.append(self._work)
        self._work = 0.0
