"""Where a run happens and what it measures there: its device (with its CUDA index), whether it takes the in-place
split or counts a step's device work, and the digest of the best weights it saved."""

from __future__ import annotations

import os
from typing import Any

import torch

from loopbench.core.types import RunConfig
from loopbench.measure.env import weights_digest


def counts_device_work(config: RunConfig, cfg: Any) -> bool:
    """Whether a run counts one step's FLOPs and kernel time: a fresh timed run of one process on CUDA, not compiled
    (the counters would trace into dynamo's graphs), with a second warm-up step to count them on."""
    fresh = config.slot == 0 and config.clock == "time" and config.world == 1 and config.compile == "off"
    return fresh and torch.device(config.device).type == "cuda" and cfg.warmup_steps >= 2


def splits(config: RunConfig) -> bool:
    """Whether a run takes the in-place split: timed runs of one process on CPU (on CUDA the host's timers do not
    see the device's work; under DDP Lightning runs the whole training step inside the wrapped module's forward),
    and a count that asks for it (split=True: what the timers cost in instructions). Never under torch.compile:
    dynamo traces the split's global module hooks, and their clock breaks every graph."""
    if config.split is False or config.world != 1 or config.device != "cpu" or config.compile != "off":
        return False
    return config.clock == "time" or config.split is True


def rank_device(config: RunConfig) -> torch.device:
    """The device of this process, with its index on CUDA (torch.cuda.set_device refuses a bare "cuda"): GPU
    LOCAL_RANK with several processes (one GPU per process), else the one named, "cuda" being GPU 0."""
    device = torch.device(config.device)
    if device.type != "cuda":
        return device
    if config.world > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cuda", device.index or 0)


def best_digest(path: str, names: list[str]) -> str:
    """The digest of the weights `names` (the trained model's state-dict keys) in a saved checkpoint: a
    state dict (plain loop) or a Lightning checkpoint, whose keys carry the LightningModule's attribute
    name in front ("model.conv.weight") and which may hold more of the module (a loss's buffers)."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    if "state_dict" in state:
        saved = state["state_dict"]
        prefix = next(key[: -len(names[0])] for key in saved if key.endswith("." + names[0]))
        state = {name: saved[prefix + name] for name in names}
    return weights_digest(state)
