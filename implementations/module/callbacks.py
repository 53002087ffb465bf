"""A job's callbacks on the plain side, and the recorder both sides add to the job.

The plain loop calls every callback's hooks as the Trainer does, with its stand-in trainer (plain.py): a user's
callback, Lightning's EarlyStopping and the fine-tuning callbacks run as written. Two of Lightning's callbacks that
only watch the job are mirrored by a few lines a PyTorch user would write instead (ModelCheckpoint: the state dict
saved where the monitored value improves; LearningRateMonitor: the learning rates handed to the logger). Progress
bars and model summaries are the Trainer's own display: the plain loop draws none. Callbacks that change the job
through the Trainer's loop are refused by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from implementations.module.plain import Unmirrored
from implementations.module.spec import samples_per_batch

DISPLAY = ("ProgressBar", "TQDMProgressBar", "RichProgressBar", "ModelSummary", "RichModelSummary")
REFUSED = {
    "StochasticWeightAveraging": "averages the weights through the Trainer's loop (and an extra epoch for batch norm)",
    "WeightAveraging": "averages the weights through the Trainer's loop",
    "EMAWeightAveraging": "averages the weights through the Trainer's loop",
    "GradientAccumulationScheduler": "changes the Trainer's accumulation from epoch to epoch",
    "BatchSizeFinder": "tunes the batch size with trial runs of the Trainer",
    "LearningRateFinder": "tunes the learning rate with trial runs of the Trainer",
    "Timer": "stops the job by wall-clock time, which no two runs share",
}
MONITORING = ("ModelCheckpoint", "EarlyStopping", "Checkpoint")  # called after the module's on_train_epoch_end


def lightnings(callback: Any, lightning: ModuleType) -> str | None:
    """The name of the Lightning callback class `callback` is an instance of itself (not of a subclass), or None."""
    cls = type(callback)
    return cls.__name__ if cls.__module__.startswith(f"{lightning.__name__}.callbacks") else None


def monitoring(callback: Any, lightning: ModuleType) -> bool:
    """Does the Trainer call this callback's on_train_epoch_end after the module's (a checkpoint, early stopping)?"""
    mro = type(callback).__mro__
    return isinstance(callback, Checkpoint) or any(
        c.__name__ in MONITORING and c.__module__.startswith(lightning.__name__) for c in mro
    )


def plain_callbacks(callbacks: list[Any], lightning: ModuleType, recorder: Any) -> list[Any]:
    """The callbacks the plain loop calls, in the Trainer's order: the job's, then the recorder, then the checkpoint
    callbacks (the Trainer moves those last). Refuses, by name, what the plain loop cannot call."""
    out = []
    for cb in callbacks:
        name = lightnings(cb, lightning)
        if name in REFUSED:
            raise Unmirrored(f"callback {name}: {REFUSED[name]}; the plain loop does not mirror it")
        if name in DISPLAY:
            continue
        if name == "ModelCheckpoint":
            out.append(Checkpoint(cb))
        elif name == "LearningRateMonitor":
            out.append(LearningRates(cb))
        elif any(c.__name__ in ("ModelCheckpoint", "LearningRateMonitor") for c in type(cb).__mro__[1:]):
            raise Unmirrored(f"callback {type(cb).__name__}: a subclass of Lightning's {type(cb).__mro__[1].__name__}; "
                             "the plain loop mirrors Lightning's own")  # fmt: skip
        else:
            out.append(cb)
    last = [cb for cb in out if isinstance(cb, Checkpoint)]
    return [*[cb for cb in out if not isinstance(cb, Checkpoint)], recorder, *last]


class Checkpoint:
    """ModelCheckpoint's job as a PyTorch user writes it: `torch.save` of the state dict where the monitored value
    improves (every time without a monitor), after validation or at the train epoch's end, where Lightning saves."""

    def __init__(self, of: Any):
        unsupported = [k for k in ("_every_n_train_steps", "_train_time_interval") if getattr(of, k, None)]
        if unsupported:
            raise Unmirrored(f"ModelCheckpoint({unsupported[0].lstrip('_')}=...): the plain loop saves per epoch")
        self.monitor, self.mode, self.top_k = of.monitor, of.mode, of.save_top_k
        self.every = of._every_n_epochs or 1
        self.on_train_epoch = of._save_on_train_epoch_end
        self.best: list[float] = []
        self.path: Path | None = None

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self.path = Path(trainer.default_root_dir) / "plain-checkpoint.pt"
        if self.on_train_epoch is None:  # Lightning's rule: at the train epoch's end where it validates once an epoch
            no_val = sum(trainer.num_val_batches) == 0 if trainer.num_val_batches else True
            self.on_train_epoch = trainer.check_val_every_n_epoch == 1 and (no_val or trainer.val_check_interval == 1.0)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self.on_train_epoch:
            self._save(trainer, pl_module)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if not self.on_train_epoch:
            self._save(trainer, pl_module)

    def _save(self, trainer: Any, pl_module: Any) -> None:
        if self.top_k == 0 or (trainer.current_epoch + 1) % self.every:
            return
        if self.monitor is not None:
            if self.monitor not in trainer.callback_metrics:
                raise Unmirrored(f"ModelCheckpoint(monitor={self.monitor!r}): not among the logged metrics")
            value = float(trainer.callback_metrics[self.monitor])
            ranked = sorted([*self.best, value], reverse=self.mode == "max")
            if self.top_k > 0 and value not in ranked[: self.top_k]:
                return
            self.best = ranked[: self.top_k] if self.top_k > 0 else ranked
        torch.save(pl_module.state_dict(), self.path)


class LearningRates:
    """LearningRateMonitor's job: every optimizer's learning rates to the logger, per step or per epoch."""

    def __init__(self, of: Any):
        self.interval = of.logging_interval

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self.interval != "epoch":
            self._log(trainer)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if self.interval != "step":
            self._log(trainer)

    def _log(self, trainer: Any) -> None:
        if trainer.logger is None:
            raise Unmirrored("LearningRateMonitor needs a logger")
        rates = {f"lr-{i}-{j}": g["lr"] for i, o in enumerate(trainer.optimizers) for j, g in enumerate(o.param_groups)}
        trainer.logger.log_metrics(rates, step=trainer.global_step)


VALIDATION_HOOKS = ("validation_step", "on_validation_start", "on_validation_epoch_start", "on_validation_batch_start",
                    "on_validation_batch_end", "on_validation_epoch_end")  # fmt: skip


def recorder(base: type, run: Any, first: Any, logged: Any, stop_after: int | None = None) -> Any:
    """The callback both sides add to the job (the Trainer's a subclass of Lightning's Callback, the plain loop's of
    object): it hands the harness each step's loss where an optimizer stepped, each batch's start, each validation
    and the end of training, and nothing else; with `stop_after`, it stops the job after that many steps."""

    class Recorder(base):
        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            run.batch_size = samples_per_batch(trainer.train_dataloader)

        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            run.batch_starts(first_of_epoch=batch_idx == 0)

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            accumulated = (batch_idx + 1) % trainer.accumulate_grad_batches == 0
            if pl_module.automatic_optimization and not accumulated and batch_idx + 1 != trainer.num_training_batches:
                return  # no optimizer step in this batch: one step of the run is one optimizer step
            loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
            run.step(first.tensor, **({"loss": loss} if isinstance(loss, torch.Tensor) else {}))
            if stop_after is not None and run.clock.steps >= stop_after:
                trainer.should_stop = True

        def on_sanity_check_start(self, trainer: Any, pl_module: Any) -> None:
            self.calls_before = dict(getattr(trainer.logger, "calls", {}))

        def on_sanity_check_end(self, trainer: Any, pl_module: Any) -> None:
            calls = getattr(trainer.logger, "calls", {})  # what the sanity check asked the logger: not the job's
            calls.clear()
            calls.update(self.calls_before)

        def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
            if not trainer.sanity_checking:
                run.pause()

        def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
            if trainer.sanity_checking:
                return
            names = dict.fromkeys(k.split("/", 1)[1] for k in logged.values if k.split("/", 1)[0] in VALIDATION_HOOKS)
            metrics = trainer.callback_metrics
            run.record_validation({n: float(metrics[n]) for n in names if n in metrics})
            run.resume("validation")

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            run.training_ends()

    return Recorder()
