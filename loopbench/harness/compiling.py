"""torch.compile as an axis of a run: where each implementation compiles, from a stated cache, and what
dynamo did (graphs, graph breaks and recompiles, each with torch's own reason).

Each framework compiles the way its docs say, at one call in its loop (`run.compiled(...)`): the plain
loop its model, Fabric its model before `setup`, the Trainer its LightningModule before `fit` (Lightning
then compiles the module's `forward` and its `*_step` methods). `inner` compiles, for the Trainer, the
LightningModule's own nets in place instead, the training step's Lightning calls left out of the graph;
elsewhere it is `on`. Several nets in a container (the GAN's) are compiled each in place. Every compiled
run starts with dynamo reset and inductor's on-disk cache in a folder of its own: a new empty one (cold), or
one the cell names and keeps (cold on its first use, warm after: what a user's second process finds), so that
compile time depends only on the stated cache. The state found is recorded, not assumed.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from typing import Any

import torch
from torch import nn


class Recompiles(logging.Handler):
    """Dynamo's recompile log (`TORCH_LOGS=recompiles`), kept: the first guard that failed, per recompile."""

    def __init__(self) -> None:
        super().__init__()
        self.reasons: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if text.startswith("Recompiling"):
            failed = [line.strip(" -") for line in text.splitlines()[2:3]]
            self.reasons += [re.sub(r"\s+#.*$", "", line) for line in failed] or ["(no reason given)"]


CONTAINERS = (nn.ModuleDict, nn.ModuleList)  # several nets (the GAN's, the probe's): each compiled in place


def _nets(module: nn.Module) -> list[nn.Module]:
    """The nets a module holds: its children with weights, and those inside its containers. A loss or a metric
    held as a module has none and stays eager, as in the plain loop, which compiles its model alone."""
    children = [m for c in module.children() for m in (_nets(c) if isinstance(c, CONTAINERS) else [c])]
    return [m for m in children if next(m.parameters(), None) is not None]


class Compiler:
    """What one run compiles, and what dynamo reported for it."""

    def __init__(self, mode: str, backend: str, cache: str | None = None) -> None:
        self.mode, self.backend, self.kept = mode, backend, cache is not None
        self.on = mode != "off"
        if not self.on:
            return
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        if cache is not None:
            os.makedirs(cache, exist_ok=True)
        self.cache = cache if cache is not None else tempfile.mkdtemp(prefix="loopbench-inductor-")
        self.state = "warm" if os.listdir(self.cache) else "cold"
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = self.cache  # read at each use: this run's cache
        torch._logging.set_logs(recompiles=True)
        self.recompiles, self.guards = Recompiles(), logging.getLogger("torch._dynamo.guards")
        self.guards.addHandler(self.recompiles)
        self.guards.propagate = False  # kept here, not printed

    def compiled(self, obj: nn.Module, trainer: bool = False) -> nn.Module:
        """`obj` compiled as its framework documents (`trainer`: a LightningModule given to `fit`); a container of
        nets, each net in place."""
        if not self.on:
            return obj
        if isinstance(obj, CONTAINERS) or (trainer and self.mode == "inner"):
            for module in _nets(obj):
                module.compile(backend=self.backend)  # in place: the state dict keeps its names
            return obj
        return torch.compile(obj, backend=self.backend)

    def close(self) -> None:
        """Remove this run's log handler, and its cache unless the cell keeps it (the next run in this process
        starts from its own)."""
        if self.on:
            self.guards.removeHandler(self.recompiles)
            self.guards.propagate = True
            torch._logging.set_logs()  # torch's default logging again
            os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
            if not self.kept:
                shutil.rmtree(self.cache, ignore_errors=True)

    def summary(self) -> dict[str, Any]:
        """Graphs compiled, graph breaks and recompiles with their reasons; {} when nothing was compiled."""
        if not self.on:
            return {}
        counters = torch._dynamo.utils.counters
        return {
            "mode": self.mode,
            "backend": self.backend,
            "cache": self.state,
            "graphs": counters["stats"]["unique_graphs"],
            "graph_breaks": dict(counters["graph_break"]),
            "recompiles": list(self.recompiles.reasons),
        }
