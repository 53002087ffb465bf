"""The Trainers under comparison, as data: the lean one, the one a new user gets, and a ladder between.

Every Lightning implementation runs the same LightningModule; only the Trainer's arguments and
whether the module calls `self.log` every step differ, and that is all written here. Nothing here
imports Lightning.

The ladder answers "which part of the Trainer costs me what?": from `Trainer(barebones=True)` to the
lean Trainer, then each default turned on alone on top of the lean Trainer. Each rung is measured
against its base (paired runs of the overhead probe); the sum of the rungs set beside the default
Trainer's own cost shows what the features cost together beyond their parts (the interactions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Everything a new user gets that may cost time per step, switched off.
LEAN_ARGS: dict[str, Any] = {
    "logger": False,
    "enable_progress_bar": False,
    "enable_checkpointing": False,
    "enable_model_summary": False,
    "num_sanity_val_steps": 0,
}


@dataclass(frozen=True)
class TrainerSetup:
    args: dict[str, Any] = field(default_factory=dict)  # Trainer arguments beyond device and precision
    log_every_step: bool = False  # the module calls self.log on its losses every step, as users write it
    writes_files: bool = False  # logs or checkpoints: the Trainer gets a temporary default_root_dir
    # Lightning's default logger is TensorBoard's where tensorboard is installed, else CSV: one class everywhere,
    # so that a default Trainer's cost is the same thing on every machine
    csv_logger: bool = False


TRAINERS: dict[str, TrainerSetup] = {
    "lightning": TrainerSetup(LEAN_ARGS),  # the fair comparison
    "lightning-defaults": TrainerSetup({}, log_every_step=True, writes_files=True, csv_logger=True),  # what users get
    # the ladder's variants: each one default on top of the lean Trainer
    "lightning-barebones": TrainerSetup({"barebones": True}),
    "lightning+log": TrainerSetup(LEAN_ARGS, log_every_step=True),
    "lightning+progress-bar": TrainerSetup(LEAN_ARGS | {"enable_progress_bar": True}),
    "lightning+logger": TrainerSetup(LEAN_ARGS, writes_files=True, csv_logger=True),
    "lightning+summary": TrainerSetup(LEAN_ARGS | {"enable_model_summary": True}),
    "lightning+checkpointing": TrainerSetup(LEAN_ARGS | {"enable_checkpointing": True}, writes_files=True),
}


@dataclass(frozen=True)
class Rung:
    feature: str  # what the rung turns on, in the reader's words
    impl: str  # the implementation with it on
    base: str  # the implementation it is measured against


PLAIN, LEAN, DEFAULTS = "pytorch", "lightning", "lightning-defaults"
LADDER: tuple[Rung, ...] = (
    Rung("Trainer(barebones=True)", "lightning-barebones", PLAIN),
    Rung("barebones off (the lean Trainer: logger, bar, checkpoints, summary off)", LEAN, "lightning-barebones"),
    Rung("self.log of the loss every step", "lightning+log", LEAN),
    Rung("progress bar (TQDM)", "lightning+progress-bar", LEAN),
    Rung("logger (CSV)", "lightning+logger", LEAN),
    Rung("model summary", "lightning+summary", LEAN),
    Rung("checkpointing (ModelCheckpoint)", "lightning+checkpointing", LEAN),
)
LADDER_IMPLS: tuple[str, ...] = (PLAIN, *dict.fromkeys(r.impl for r in LADDER), DEFAULTS)


FABRIC = "fabric"  # Lightning Fabric: the plain loop's structure, with Fabric's device, precision and DDP plumbing

# What the report sets beside the plain loop, in this order: the name a reader sees, and its short label in
# the columns that give one value per implementation ("L / Ld / F").
COMPARED: dict[str, tuple[str, str]] = {
    LEAN: ("Lightning", "L"),
    DEFAULTS: ("Lightning defaults", "Ld"),
    FABRIC: ("Fabric", "F"),
}


def is_lightning(impl: str) -> bool:
    """Does `impl` run a Lightning Trainer?"""
    return impl in TRAINERS
