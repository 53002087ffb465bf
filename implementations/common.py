"""Pieces every task's spec shares: the data bundle, a seeded loader, epoch-aware iteration."""

from __future__ import annotations

import itertools
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from loopbench.core.types import DataError


@dataclass(frozen=True)
class Harness:
    """How the harness measures a task, apart from the job itself (as TorchBench's metadata.yaml): one block per
    spec, read by the suite's planner. Each (steps, warm-up) pair is a run's length in optimizer steps."""

    segment: tuple[int, int]  # a time-only segment of a round, within one epoch: about half a second on 2 cores
    count: tuple[int, int]  # an instruction count, one thread under valgrind, where a step runs ~50x slower
    probe_shape: str  # the overhead probe's shape this task has: "auto" (one optimizer) or "manual" (two)
    by_time: bool = False  # segments sized by time on every device (a user's module: its step time is unknown)
    rounds: int = 8  # rounds of a task cell where --repeats does not say (the suite and the bench)
    within_job: bool = False  # a segment sized by time trains no further than the job's own fresh run did


@dataclass
class Data:
    train: Dataset
    test: Dataset
    info: dict[str, Any] = field(default_factory=dict)  # recorded with every result


def download(dataset_cls: type, root: str, train: bool, name: str, expected: str) -> Dataset:
    """torchvision's `dataset_cls(root, train=..., download=True)`, or a DataError that says what to do."""
    try:
        return dataset_cls(root, train=train, download=True)
    except (OSError, RuntimeError) as e:  # URLError is an OSError: no network, or a corrupt archive
        raise DataError(
            f"{name} is not in {root} and could not be downloaded ({e}); put {expected} there or use --data synthetic"
        ) from None


def train_loader(
    dataset: Dataset, batch_size: int, seed: int, pin_memory: bool = False, shard: bool = False
) -> DataLoader:
    """The training loader both loops use.

    Its own `torch.Generator` makes the shuffle independent of the global RNG (model init, dropout):
    a loader without one draws its base seed from the global RNG whenever an iterator is created.
    `drop_last` keeps every batch the same size, so BatchNorm statistics and step times are comparable.
    `shard`: this process's share under data parallel, from PyTorch's DistributedSampler as Lightning puts
    it in place of the shuffle: its default seed, 0, since Lightning takes another only from
    `seed_everything`, which the loops do not call (under DDP it also re-seeds the global RNG after the
    model is built); it pads the shares to equal length, and the loader still drops a last short batch.
    """
    sampler = DistributedSampler(dataset, shuffle=True) if shard else None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=None if shard else True,
        sampler=sampler,
        drop_last=True,
        generator=torch.Generator().manual_seed(seed),
        pin_memory=pin_memory,
    )


def batches(loader: DataLoader, steps: int) -> Iterator[Any]:
    """`steps` batches, epoch after epoch, consuming each epoch exactly as Lightning's loop does.

    `for batch in loader` runs the sampler to its end, and RandomSampler then draws one more shuffle
    from the loader's generator; Lightning stops after len(loader) batches. islice stops there too,
    so both loops see the same batches in the same order across epoch boundaries. A DistributedSampler
    is told each epoch's number first, as PyTorch's DDP recipe (and Lightning) do: a new shuffle per epoch.
    """
    if len(loader) == 0:
        raise ValueError("the training set is smaller than one batch; lower --batch-size")
    remaining, epoch = steps, 0
    while remaining:
        if isinstance(loader.sampler, DistributedSampler):
            loader.sampler.set_epoch(epoch)
        yield from itertools.islice(loader, min(len(loader), remaining))
        remaining -= min(len(loader), remaining)
        epoch += 1


# -- data parallel: PyTorch's DDP recipe, for the plain loops --------------------------------------


def start_distributed(run: Any) -> bool:
    """Join the process group that the launcher's environment describes (RANK, WORLD_SIZE, MASTER_ADDR,
    MASTER_PORT, as torchrun sets them): gloo on CPU, nccl on CUDA. False, and nothing done, for one process."""
    if run.world == 1:
        return False
    dist.init_process_group("nccl" if run.device.type == "cuda" else "gloo")
    return True


def data_parallel(module: torch.nn.Module, distributed: bool, broadcast_buffers: bool = True) -> torch.nn.Module:
    """`module` in DistributedDataParallel (gradients averaged across processes in backward), or itself.
    `broadcast_buffers`: DDP's default, the first process's buffers (BatchNorm statistics) copied to the
    others before every forward; False: each process keeps its own after the start."""
    if not distributed:
        return module
    device = next(module.parameters()).device
    device_ids = [device.index] if device.type == "cuda" else None
    with warnings.catch_warnings():  # torch's advice for rank-local buffers is this very flag, until its successor
        warnings.filterwarnings("ignore", "`broadcast_buffers` is deprecated", FutureWarning)
        return DistributedDataParallel(module, device_ids=device_ids, broadcast_buffers=broadcast_buffers)


def to_device(batch: Any, device: torch.device) -> Any:
    """Move a tuple/list of tensors; `non_blocking` only overlaps when the loader pins memory."""
    return type(batch)(t.to(device, non_blocking=True) for t in batch)


def one_cycle(
    optimizer: torch.optim.Optimizer, max_lr: float, steps: int, pct_start: float, **kwargs: Any
) -> torch.optim.lr_scheduler.OneCycleLR:
    """OneCycleLR over `steps` batches, stepped once per batch.

    OneCycleLR divides by the length of its warm-up phase, pct_start * total_steps - 1, which is zero
    or negative for very short runs (4 steps at pct_start 0.25). Such runs get a schedule of
    ceil(2 / pct_start) steps and follow its beginning: same code, any --steps.
    """
    total = max(steps, math.ceil(2 / pct_start))
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lr, total_steps=total, pct_start=pct_start, **kwargs
    )


def deterministic_warn() -> None:
    """What `Trainer(deterministic="warn")` sets, for the plain loop: same flags, same kernels.

    Deterministic algorithms where they exist, a warning where they do not (AdaptiveAvgPool2d's
    CUDA backward), no cudnn autotuning, and the cuBLAS workspace that makes its GEMMs reproducible.
    """
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"


def out_of_range(cfg: Any, **bounds: tuple[float, float]) -> str | None:
    """The first setting outside its range [low, high), as a message for the user; None if all are inside."""
    for name, (low, high) in bounds.items():
        values = getattr(cfg, name)
        for value in values if isinstance(values, tuple) else (values,):
            if not low <= value < high:
                return f"{name} must be in [{low:g}, {high:g}), got {values}"
    return None


# -- the whole job: validation after each epoch, the best weights kept, early stopping -------------


def epoch_batches(loader: DataLoader, steps: int) -> Iterator[tuple[Any, bool]]:
    """`batches()`, each with True when it is the last of its epoch: where a per-epoch validation goes."""
    for i, batch in enumerate(batches(loader, steps), 1):
        yield batch, i % len(loader) == 0


def eval_loader(dataset: Dataset, batch_size: int, shard: bool = False) -> DataLoader:
    """The validation loader both sides use: in order, every sample, and its own generator (an iterator
    draws its base seed from the loader's generator, or else from the global RNG that training uses).
    `shard`: this process's share under data parallel, as Lightning's sampler gives it (padded to equal
    shares); the metrics then gather every process's updates when they compute."""
    sampler = DistributedSampler(dataset, shuffle=False) if shard else None
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=False, sampler=sampler, generator=torch.Generator().manual_seed(0)
    )


@torch.no_grad()
def validation_epoch(
    model: torch.nn.Module, loader: DataLoader, metrics: Any, outputs: Any, run: Any
) -> dict[str, float]:
    """The validation loop a PyTorch user writes: eval mode, no_grad, the metrics updated per batch with
    `outputs(batch, batch_idx)` (under the run's autocast, as Lightning's validation_step runs) and
    computed over the epoch, then back to train mode. Timed as the run's validation."""
    with run.between_steps("validation"):
        model.eval()
        for batch_idx, batch in enumerate(loader):
            with run.autocast():
                metrics.update(*outputs(to_device(batch, run.device), batch_idx))
        values = {name: float(value) for name, value in metrics.compute().items()}
        metrics.reset()
        model.train()
    run.record_validation(values)
    return values


class KeepBest:
    """Best-checkpoint saving and early stopping by hand, with ModelCheckpoint's and EarlyStopping's rules:
    a value strictly better than the best so far is saved (`torch.save` of the state dict); after
    `patience` validations without one (0: never) training stops."""

    def __init__(self, monitor: str, mode: str, patience: int, run: Any):
        self.monitor, self.mode, self.patience, self.run = monitor, mode, patience, run
        self.best: float | None = None
        self.waited = 0

    def improved(self, value: float) -> bool:
        return self.best is None or (value > self.best if self.mode == "max" else value < self.best)

    def update(self, metrics: dict[str, float], model: torch.nn.Module) -> bool:
        """After a validation: save if improved; True when training should stop."""
        value = metrics[self.monitor]
        if self.improved(value):
            self.best, self.waited = value, 0
            path = os.path.join(self.run.tmpdir, "best.pt")  # the run's temporary folder, made on first use
            with self.run.between_steps("checkpoint"):
                if self.run.rank == 0:  # one file, written by the first process (the weights are everyone's)
                    torch.save(model.state_dict(), path)
            self.run.record_best(path)
        else:
            self.waited += 1
        return 0 < self.patience <= self.waited
