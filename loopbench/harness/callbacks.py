"""What the harness adds to a Lightning run in epoch mode: timing and recording, nothing that trains.

ModelCheckpoint and EarlyStopping are Lightning's own, configured as users write them; the only
additions are a callback that times each validation and reads back what Lightning logged, and a
ModelCheckpoint whose file writes are timed. Imported only by Lightning runs.
"""

from __future__ import annotations

import os
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint


class ValidationTimer(pl.Callback):
    """Times each validation loop (the sanity check apart) and records the `val_*` values Lightning logged."""

    def __init__(self, run: Any):
        self.run, self._timing = run, None

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._timing = self.run.between_steps("sanity check" if trainer.sanity_checking else "validation")
        self._timing.__enter__()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._timing.__exit__(None, None, None)
        if not trainer.sanity_checking:  # runs before the checkpoint and early-stopping callbacks (they go last)
            logged = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")}
            self.run.record_validation(logged)


class TimedCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint; each write is timed and the run told where the best weights are."""

    def __init__(self, run: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.run = run

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        with self.run.between_steps("checkpoint"):
            super()._save_checkpoint(trainer, filepath)
        self.run.record_best(filepath)


def epoch_callbacks(run: Any, monitor: str, mode: str, patience: int) -> list[pl.Callback]:
    """The callbacks of a job that validates every epoch, keeps the best weights and may stop early."""
    callbacks = [ValidationTimer(run)]
    if patience:
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=patience))
    folder = os.path.join(run.tmpdir, "checkpoints")
    return [*callbacks, TimedCheckpoint(run, dirpath=folder, monitor=monitor, mode=mode, save_top_k=1)]
