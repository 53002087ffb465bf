"""A team's own plain-PyTorch port of a job, in the place of the plain loop built from the module's hooks:
`loopbench module PKG.MOD:FACTORY --plain PKG.MOD:TRAIN`, or loopbench.testing.same_training in a test suite.

The port's contract, `train(module, data, steps) -> losses`: it gets the module the factory built (after seeding,
so with the weights the Trainer's side starts from) and the data the factory returned beside it (a DataLoader, a
LightningDataModule, or None: the module's own train_dataloader); it trains the module in place for `steps`
optimizer steps with plain PyTorch, and returns each step's loss (numbers or tensors). A step is what the Trainer's
side counts as one: an optimizer step, or under manual optimization a batch. Each step's time is taken where the
module's first optimizer steps.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from implementations.module import spec
from loopbench.core.types import RunResult, UsageError
from loopbench.harness.run import Run


def train(cfg: spec.Config, run: Run) -> RunResult:
    torch.manual_seed(run.seed)  # the module's initial weights come from the global RNG, as the Trainer side's
    job = spec.load(cfg)
    port = spec.factory_of(cfg.plain)
    first = spec.FirstOutput()
    steps = job.settings["max_steps"]
    stepped: list[Any] = []

    def one_step(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if not stepped:
            stepped.append(optimizer)  # the first optimizer that steps marks each step's end
        if optimizer is stepped[0] and first.tensor is not None:
            run.step(first.tensor)

    hook = register_optimizer_step_post_hook(one_step)
    try:
        run.batch_starts(first_of_epoch=True)
        returned = port(job.module, job.data, steps)
    except Exception as e:  # the team's own code: its error in one line
        raise UsageError(f"{cfg.plain} raised {type(e).__name__}: {spec.first_line(e)}") from None
    finally:
        hook.remove()
    run.training_ends()
    first.close()
    losses = _losses(returned, cfg.plain)
    return run.finish(job.module, metrics=lambda: {}, losses={"loss": losses} if losses else {})


def _losses(returned: Any, name: str) -> list[float]:
    if not isinstance(returned, (list, tuple)) or not all(isinstance(x, (int, float, torch.Tensor)) for x in returned):
        raise UsageError(f"{name} returned {type(returned).__name__}, not a list of each step's loss (numbers or "
                         "tensors): the port's contract is train(module, data, steps) -> losses")  # fmt: skip
    return [float(x) for x in returned]
