"""A user's LightningModule, trained by the Trainer as its job says: the Trainer of the package the module was
written against, its settings and callbacks, its data. Read it beside pytorch_loop.py.

The only additions to the job, the same on both sides: a recorder callback (callbacks.py: each step's loss, each
batch's start, each validation), a record of every value the module logs, and, where the job reads self.logger,
a logger that records what it is asked (plain.Logger's twin). Each Trainer under comparison keeps its own logger,
progress bar, summary and sanity-check settings (loopbench/core/trainers.py), except that a job with a checkpoint
callback keeps checkpointing on.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import torch

from implementations.module import callbacks as cbs
from implementations.module import plain, spec
from loopbench.core.types import RunResult
from loopbench.harness.run import Run

KEPT_ON = {"Checkpoint": "enable_checkpointing", "ProgressBar": "enable_progress_bar",
           "ModelSummary": "enable_model_summary"}  # fmt: skip
FROM_SETTINGS = ("max_epochs", "max_steps", "limit_train_batches", "limit_val_batches", "val_check_interval",
                 "check_val_every_n_epoch", "gradient_clip_val", "gradient_clip_algorithm", "accumulate_grad_batches",
                 "log_every_n_steps", "inference_mode", "deterministic", "benchmark")  # fmt: skip


def train(cfg: spec.Config, run: Run) -> RunResult:
    torch.manual_seed(run.seed)  # the module's initial weights come from the global RNG
    job = spec.load(cfg)
    module, lightning = job.module, job.lightning
    first = spec.FirstOutput()
    logged = LoggedThrough(module)

    kwargs = run.trainer_kwargs(package=lightning.__name__)
    kwargs |= {k: job.settings[k] for k in FROM_SETTINGS if spec.named(job.settings[k], spec.SETTINGS[k])}
    kwargs |= job.others  # a setting the plain loop does not mirror: the Trainers run it alone
    callbacks = [*job.callbacks, cbs.recorder(lightning.Callback, run, first, logged, job.stop_after)]
    for kind, switch in KEPT_ON.items():  # what the job's own callbacks need, every Trainer keeps (barebones refuses)
        if any(isinstance(cb, getattr(lightning.callbacks, kind)) for cb in callbacks) and "barebones" not in kwargs:
            kwargs[switch] = True
    if cfg.logger:
        kwargs["logger"] = recording_logger(lightning, run.tmpdir)
    run.data.info["job"] = spec.described(job)
    trainer = lightning.Trainer(**kwargs, callbacks=callbacks)
    if isinstance(job.data, lightning.LightningDataModule):
        trainer.fit(module, datamodule=job.data)
    else:
        trainer.fit(module, train_dataloaders=job.data, val_dataloaders=job.val_data)
    first.close()

    logged = logged.floats() | plain.calls(kwargs.get("logger") if cfg.logger else None)
    result = run.finish(module, metrics=lambda: spec.evaluate(module, run.data, run.device), logged=logged)
    spec.finite(cfg.factory, result.losses)
    return result


class LoggedThrough:
    """Every value the module logs, kept as it is handed to `self.log` (the Trainer's own log then runs as
    always); the sanity check's are left out, since the plain loop runs none."""

    def __init__(self, module: Any):
        self.module = module
        self.values: dict[str, list[Any]] = {}
        log = module.log

        def recorded(name: str, value: Any, *args: Any, **kwargs: Any) -> None:
            if not module.trainer.sanity_checking:
                shown = value._forward_cache if hasattr(value, "_forward_cache") else value
                kept = shown.detach().clone() if isinstance(shown, torch.Tensor) else shown
                self.values.setdefault(f"{module._current_fx_name}/{name}", []).append(kept)
            log(name, value, *args, **kwargs)

        module.log = recorded

    floats = plain.Logged.floats


def recording_logger(lightning: ModuleType, save_dir: str) -> Any:
    """plain.Logger as a Lightning Logger of the module's package: the Trainer logs to it what it logs to any."""

    class Recording(plain.Logger, lightning.loggers.Logger):
        def __init__(self, save_dir: str):
            lightning.loggers.Logger.__init__(self)
            plain.Logger.__init__(self, save_dir)

    return Recording(save_dir)
