"""The arguments a cell's Trainer and Fabric take: its device, its precision as labelled, its processes, and the
Trainer's own setup (loopbench/core/trainers.py). Run.trainer_kwargs and Run.fabric_kwargs hand them to the loops."""

from __future__ import annotations

import importlib
from typing import Any

from loopbench.core.precision import lightning_needs_plugin
from loopbench.core.types import UsageError

Run = Any  # loopbench.harness.run.Run, which imports this module: named, not imported


def trainer_kwargs(
    run: Run, monitor: tuple[str, str] | None = None, find_unused_parameters: bool = False,
    package: str = "pytorch_lightning",
) -> dict[str, Any]:  # fmt: skip
    """Trainer arguments for this cell: its Trainer of loopbench.trainers on this device and precision,
    and where the task validates every epoch, the callbacks that keep the best weights by `monitor`
    (metric, "min" | "max") and stop early after `patience` validations without improvement.
    With several processes, strategy="ddp" (`find_unused_parameters`: its variant that lets a backward
    reach only some of the module's parameters), on `processes` devices of each of `nodes` machines.
    `package`: the Lightning the Trainer comes from (pytorch_lightning, or lightning.pytorch), whose plugin
    and logger classes it takes."""
    kwargs: dict[str, Any] = {
        "accelerator": "gpu" if run.device.type == "cuda" else "cpu",
        "devices": [run.device.index or 0] if run.device.type == "cuda" else 1,
    }
    if run.world > 1:  # started by a launcher (LOCAL_RANK set): each process joins as its rank
        strategy = "ddp_find_unused_parameters_true" if find_unused_parameters else "ddp"
        kwargs |= {"strategy": strategy} | _placement(run)
    if lightning_needs_plugin(run.config.device, run.precision.name):  # the flag would run bf16
        plugins = importlib.import_module(f"{package}.plugins")
        kwargs["plugins"] = [plugins.MixedPrecision(run.precision.lightning, run.device.type, run.grad_scaler())]
    else:
        kwargs["precision"] = run.precision.lightning
    if run.trainer_setup.writes_files:
        kwargs["default_root_dir"] = run.tmpdir  # logs and checkpoints, never the work tree
    kwargs |= run.trainer_setup.args
    if run.trainer_setup.csv_logger:  # what logger=True gives where tensorboard is not installed
        kwargs["logger"] = importlib.import_module(f"{package}.loggers").CSVLogger(run.tmpdir)
    if monitor and getattr(run.cfg, "validate_every_epoch", False):
        if kwargs.get("barebones"):
            raise UsageError("Trainer(barebones=True) cannot keep checkpoints: no epoch mode for it")
        from loopbench.harness.callbacks import epoch_callbacks  # imports Lightning: a plain run never does

        kwargs["callbacks"] = epoch_callbacks(run, *monitor, run.cfg.patience)
        kwargs |= {"enable_checkpointing": True, "check_val_every_n_epoch": 1}
    return kwargs


def fabric_kwargs(run: Run, **ddp: Any) -> dict[str, Any]:
    """Fabric's arguments for this cell: this device, this precision as labelled (the plugin where the flag
    would not run it: 16-mixed on CPU, as for the Trainer), and with several processes, a DDP strategy (`ddp`:
    DistributedDataParallel's arguments where the plain loop sets them); each process joins as its rank."""
    kwargs: dict[str, Any] = {
        "accelerator": "gpu" if run.device.type == "cuda" else "cpu",
        "devices": [run.device.index or 0] if run.device.type == "cuda" else 1,
    }
    if run.world > 1:
        from lightning_fabric.strategies import DDPStrategy

        kwargs |= {"strategy": DDPStrategy(**ddp) if ddp else "ddp"} | _placement(run)
    if lightning_needs_plugin(run.config.device, run.precision.name):
        from lightning_fabric.plugins import MixedPrecision

        kwargs["plugins"] = [MixedPrecision(run.precision.lightning, run.device.type, run.grad_scaler())]
    else:
        kwargs["precision"] = run.precision.lightning
    return kwargs


def _placement(run: Run) -> dict[str, int]:
    """Where the processes are, as the Trainer and Fabric take it: devices per node, and nodes beyond one."""
    nodes = {"num_nodes": run.config.nodes} if run.config.nodes > 1 else {}
    return {"devices": run.config.processes} | nodes
