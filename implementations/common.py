"""Pieces every task's spec shares: the data bundle, a seeded loader, epoch-aware iteration."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset


@dataclass
class Data:
    train: Dataset
    test: Dataset
    info: dict[str, Any] = field(default_factory=dict)  # recorded with every result


def train_loader(dataset: Dataset, batch_size: int, seed: int, pin_memory: bool = False) -> DataLoader:
    """The training loader both loops use.

    Its own `torch.Generator` makes the shuffle independent of the global RNG (model init, dropout):
    a loader without one draws its base seed from the global RNG whenever an iterator is created.
    `drop_last` keeps every batch the same size, so BatchNorm statistics and step times are comparable.
    """
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(seed),
        pin_memory=pin_memory,
    )


def batches(loader: DataLoader, steps: int) -> Iterator[Any]:
    """`steps` batches, epoch after epoch, consuming each epoch exactly as Lightning's loop does.

    `for batch in loader` runs the sampler to its end, and RandomSampler then draws one more shuffle
    from the loader's generator; Lightning stops after len(loader) batches. islice stops there too,
    so both loops see the same batches in the same order across epoch boundaries.
    """
    if len(loader) == 0:
        raise ValueError("the training set is smaller than one batch; lower --batch-size")
    remaining = steps
    while remaining:
        for batch in itertools.islice(loader, min(len(loader), remaining)):
            yield batch
        remaining -= min(len(loader), remaining)


def to_device(batch: Any, device: torch.device) -> Any:
    """Move a tuple/list of tensors; `non_blocking` only overlaps when the loader pins memory."""
    return type(batch)(t.to(device, non_blocking=True) for t in batch)
