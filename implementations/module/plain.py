"""What the plain loop hands a LightningModule where it would ask the Trainer: plain objects a PyTorch user keeps in
local variables, nothing of Lightning's.

`Trainer` stands in for `self.trainer` (the epoch, the step, the optimizers, the loggers...). An attribute it lacks
raises `Unmirrored`, naming the attribute and the hook it was read in, so a job the loop cannot mirror is refused
in one line. `Logged` is `self.log`: it keeps every value the module logs (the parity check compares them with the
Trainer side's) and reduces the epoch-level ones as Lightning does (a batch-size-weighted mean in float32, or
max, min, sum), for the callbacks and schedulers that monitor them. `Logger` answers `self.logger` with a logger
that records what the job asks of it, on both sides alike (lightning_loop.py has its twin).
"""

from __future__ import annotations

import math
import tempfile
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import torch


class Unmirrored(AttributeError):
    """The module or a callback read something of the Trainer's that the plain loop does not keep."""


class Strategy:
    """`trainer.strategy` of one process on one device."""

    def __init__(self, device: torch.device, trainer: Trainer):
        self.root_device = device
        self._trainer = trainer

    @property
    def lightning_module(self) -> Any:
        return self._trainer.lightning_module

    world_size, global_rank, local_rank, node_rank, is_global_zero = 1, 0, 0, 0, True

    def barrier(self, *args: Any, **kwargs: Any) -> None:
        return None

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        return obj

    def reduce(self, tensor: Any, *args: Any, **kwargs: Any) -> Any:
        return tensor

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:
        return decision

    def __getattr__(self, name: str) -> Any:
        raise Unmirrored(f"self.trainer.strategy.{name}")


class State:
    """`trainer.state`: fitting, in a training or validation stage."""

    fn, status = "fit", "running"

    def __init__(self, trainer: Trainer):
        self._trainer = trainer

    @property
    def stage(self) -> str:
        return "validate" if self._trainer.validating else "train"


class Trainer:
    """The Trainer's state as the plain loop keeps it, under the names modules and callbacks read."""

    def __init__(self, module: Any, device: torch.device, settings: dict[str, Any], logger: Any):
        self.lightning_module = self.model = module
        self.strategy = Strategy(device, self)
        self.state = State(self)
        self.max_epochs, self.max_steps = settings["max_epochs"], settings["max_steps"]
        for name in ("accumulate_grad_batches", "gradient_clip_val", "gradient_clip_algorithm", "val_check_interval",
                     "check_val_every_n_epoch", "limit_train_batches", "limit_val_batches", "log_every_n_steps",
                     "precision"):  # fmt: skip
            setattr(self, name, settings[name])
        self._logger = logger
        self.logger_read = False  # the job read self.logger (or loggers): then every side gets a recording logger
        self.default_root_dir = self.log_dir = logger.log_dir if logger is not None else tempfile.gettempdir()
        self.current_epoch = self.global_step = 0
        self.is_last_batch = False  # the epoch's last batch is in flight (Lightning: its data fetcher is done)
        self.optimizers: list[torch.optim.Optimizer] = []
        self.lr_scheduler_configs: list[Any] = []
        self.callbacks: list[Any] = []
        self.num_training_batches: int | float = 0
        self.num_val_batches: list[int] = []
        self._estimated: int | float | None = None
        self.estimate: Any = None  # the loop's data set-up, which a read before it runs brings forward
        self.callback_metrics: dict[str, torch.Tensor] = {}
        self.logged_metrics: dict[str, torch.Tensor] = {}
        self.progress_bar_metrics: dict[str, torch.Tensor] = {}
        self.should_stop = False
        self.training = self.validating = self.sanity_checking = self.testing = self.predicting = False
        self.datamodule = self.train_dataloader = self.val_dataloaders = None
        self.progress_bar_callback = self.checkpoint_callback = self.early_stopping_callback = None
        self.checkpoint_callbacks: list[Any] = []
        self.world_size = self.num_devices = self.num_nodes = 1
        self.global_rank = self.local_rank = self.node_rank = 0
        self.is_global_zero = True
        self.hook = "set-up"  # the hook being run: named in a refusal
        self.fast_dev_run = False
        self.received_sigterm = False

    @property
    def estimated_stepping_batches(self) -> int | float:
        if self._estimated is None and self.estimate is not None:
            self.estimate()  # the Trainer loads the training data to answer this, wherever it is first asked
        return self._estimated

    @estimated_stepping_batches.setter
    def estimated_stepping_batches(self, value: int | float) -> None:
        self._estimated = value

    @property
    def logger(self) -> Any:
        self.logger_read = True
        return self._logger

    @property
    def loggers(self) -> list[Any]:
        self.logger_read = True
        return [self._logger] if self._logger is not None else []

    @property
    def device_ids(self) -> list[int]:
        return [self.strategy.root_device.index or 0]

    def __getattr__(self, name: str) -> Any:
        raise Unmirrored(f"reads self.trainer.{name} in {self.__dict__.get('hook', 'set-up')}, which the plain loop "
                         "does not keep")  # fmt: skip


# -- self.log ------------------------------------------------------------------------------------------------------

STEP_HOOKS = {  # where Lightning logs on_step by default (and not on_epoch); every other hook logs on_epoch
    "training_step", "on_train_batch_start", "on_train_batch_end", "on_before_backward", "backward",
    "on_after_backward", "on_before_optimizer_step", "optimizer_step", "configure_gradient_clipping",
    "clip_gradients", "on_before_zero_grad", "optimizer_zero_grad",
}  # fmt: skip
REDUCE = {"mean": "mean", "max": "max", "min": "min", "sum": "sum", torch.mean: "mean", torch.max: "max",
          torch.min: "min", torch.sum: "sum"}  # fmt: skip


class Logged:
    """`self.log` and `self.log_dict` of the plain loop: every value as logged, and the epoch-level reductions."""

    def __init__(self, device: torch.device):
        self.device = device
        self.fx = "set-up"  # the hook being run, as Lightning's _current_fx_name
        self.batch: Any = None  # the batch being run, for a batch size the module does not name
        self.values: dict[str, list[Any]] = defaultdict(list)  # "hook/name" -> each value as logged
        self.callback_metrics: dict[str, torch.Tensor] = {}
        self.stage = "train"  # or "validate": each reduces its epoch-level values apart, as Lightning's loops do
        self._epoch: dict[str, dict[str, list[Any]]] = {"train": {}, "validate": {}}  # [value, size, reduce, metric]

    def log(self, name: str, value: Any, prog_bar: bool = False, logger: bool | None = None,
            on_step: bool | None = None, on_epoch: bool | None = None, reduce_fx: Any = "mean",
            enable_graph: bool = False, sync_dist: bool = False, sync_dist_group: Any = None,
            add_dataloader_idx: bool = True, batch_size: int | None = None, metric_attribute: str | None = None,
            rank_zero_only: bool = False) -> None:  # fmt: skip
        step_default = self.fx in STEP_HOOKS
        on_step = step_default if on_step is None else on_step
        on_epoch = (not step_default) if on_epoch is None else on_epoch
        metric = value if hasattr(value, "compute") and hasattr(value, "_forward_cache") else None
        handed = metric._forward_cache if metric is not None else value  # kept as handed, as on Lightning's side
        self.values[f"{self.fx}/{name}"].append(handed.detach().clone() if isinstance(handed, torch.Tensor) else handed)
        if metric is None:
            value = value.detach().clone() if isinstance(value, torch.Tensor) else torch.tensor(
                value, device=self.device, dtype=torch.get_default_dtype())  # fmt: skip
            value = value.squeeze()
        shown = metric._forward_cache if metric is not None else value
        if on_step:
            key = f"{name}_step" if on_epoch else name
            self.callback_metrics[key] = shown
        if on_epoch:
            self._accumulate(name, metric if metric is not None else value, reduce_fx, batch_size, metric is not None)

    def log_dict(self, dictionary: Mapping[str, Any], **kwargs: Any) -> None:
        for name, value in dictionary.items():
            self.log(name, value, **kwargs)

    def _accumulate(self, name: str, value: Any, reduce_fx: Any, batch_size: int | None, is_metric: bool) -> None:
        epoch = self._epoch[self.stage]
        if is_metric:
            epoch[name] = [value, 0, "metric", value]
            return
        reduce = REDUCE.get(reduce_fx)
        if reduce is None:
            raise Unmirrored(f"self.log({name!r}, reduce_fx={reduce_fx!r}): the plain loop reduces mean, max, min, sum")
        dtype = torch.get_default_dtype()
        value = value if value.dtype in (torch.float32, torch.float64) else value.to(dtype)
        if name not in epoch:
            start = {"max": -math.inf, "min": math.inf}.get(reduce, 0.0)
            epoch[name] = [torch.tensor(start, dtype=dtype, device=value.device), torch.tensor(0), reduce, None]
        entry = epoch[name]
        if reduce == "mean":  # Lightning's batch-size-weighted mean, in the same float32 operations
            size = batch_size if batch_size is not None else batch_size_of(self.batch)
            entry[0], entry[1] = entry[0] + value * size, entry[1] + size
        elif reduce == "sum":
            entry[0] = entry[0] + value
        else:
            entry[0] = getattr(torch, reduce)(entry[0], value)

    def stage_ends(self, stage: str) -> dict[str, torch.Tensor]:
        """The epoch-level values `stage` logged since its last end, reduced (metrics computed, then reset), and put
        into callback_metrics under their names (and `<name>_epoch` where they were logged on_step too)."""
        out = {}
        for name, (value, size, reduce, metric) in self._epoch[stage].items():
            if metric is not None:
                out[name] = metric.compute()
                metric.reset()
            else:
                out[name] = value / size if reduce == "mean" else value
            forked = f"{name}_step" in self.callback_metrics
            self.callback_metrics[f"{name}_epoch" if forked else name] = out[name]
            if forked:
                self.callback_metrics[name] = out[name]
        self._epoch[stage] = {}
        return out

    def floats(self) -> dict[str, list[float]]:
        return {k: [float(v) if v is not None else math.nan for v in vs] for k, vs in self.values.items()}


def batch_size_of(batch: Any) -> int:
    """The batch's size as Lightning infers it: the first dimension of the first tensor found in it."""
    if isinstance(batch, torch.Tensor):
        return 1 if batch.ndim == 0 else batch.size(0)
    items = batch.values() if isinstance(batch, Mapping) else batch if isinstance(batch, (list, tuple)) else ()
    for item in items:
        found = batch_size_of(item)
        if found:
            return found
    return 0


# -- self.logger ---------------------------------------------------------------------------------------------------


class Experiment:
    """A logger's `experiment` that takes any call (`add_image`, `add_scalar`, `log`...) and counts it."""

    def __init__(self, calls: dict[str, int]):
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)

        def record(*args: Any, **kwargs: Any) -> None:
            self._calls[name] = self._calls.get(name, 0) + 1

        return record


def calls(logger: Any) -> dict[str, list[float]]:
    """What the job asked of a recording logger's experiment, as logged values: each method and its calls."""
    return {f"logger.experiment/{k}": [float(v)] for k, v in sorted(getattr(logger, "calls", {}).items())}


class Logger:
    """A logger that records what the job asks of it: the plain loop's; lightning_loop.py subclasses Lightning's
    Logger with the same behaviour, so both sides pay for the same (nothing is encoded or written)."""

    def __init__(self, save_dir: str | None = None):
        self.calls: dict[str, int] = {}
        self._dir = save_dir or tempfile.gettempdir()
        self._experiment = Experiment(self.calls)

    @property
    def name(self) -> str:
        return "recording"

    @property
    def version(self) -> int:
        return 0

    @property
    def save_dir(self) -> str:
        return self._dir

    @property
    def root_dir(self) -> str:
        return self._dir

    @property
    def log_dir(self) -> str:
        return self._dir

    @property
    def experiment(self) -> Experiment:
        return self._experiment

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        return None  # the Trainer sends what the module logged here: the parity check reads it from `Logged`

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        return None

    def log_graph(self, *args: Any, **kwargs: Any) -> None:
        return None

    def save(self) -> None:
        return None

    def finalize(self, status: str) -> None:
        return None

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        return None
