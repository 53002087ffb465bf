"""Which runs belong together: a comparison's group (all but the implementation, the repeat and the step
counts), its name in words, where a cell ran, and the runs of each group by implementation.
"""

from __future__ import annotations

import json

from packaging.version import InvalidVersion, Version

from loopbench.core.types import RunConfig, RunResult


def group_key(config: RunConfig | dict) -> tuple:
    """What the runs of one comparison share: all but the implementation, the repeat and the step counts."""
    c = config if isinstance(config, RunConfig) else RunConfig.from_dict(config)
    overrides = json.dumps(c.overrides, sort_keys=True)
    return (c.task, c.device, c.precision, c.preset, c.seed, c.data, overrides, c.processes, c.lightning)


def group_words(key: tuple) -> list[str]:
    """A group key as words for names and ids: task, where it ran (`cpu x2`), precision, overrides by name."""
    task, device, precision, _, _, _, overrides, processes, lightning = key
    release = [f"Lightning {lightning}"] if lightning else []
    settings = [f"{k}={v}" for k, v in json.loads(overrides).items()]  # named: `train_size=512`, not a bare 512
    return [task, placement(device, processes), precision, *settings, *release]


def placement(device: str, processes: int = 1, lightning: str | None = None) -> str:
    """Where a cell ran, as the report names it: `cpu`, `cpu x2` for two processes (data parallel), and the
    Lightning release where it is not the installed one (`cpu x2, pl 2.5.6`)."""
    where = device if processes == 1 else f"{device} x{processes}"
    return f"{where}, pl {lightning}" if lightning else where


def by_group(results: list[RunResult]) -> dict[tuple, dict[str, list[RunResult]]]:
    """{group: {impl: [results over repeats]}}, keeping run order."""
    groups: dict[tuple, dict[str, list[RunResult]]] = {}
    for r in results:
        groups.setdefault(group_key(r.config), {}).setdefault(r.config["impl"], []).append(r)
    return groups


def release_of(r: RunResult) -> str:
    """The Lightning release a run imported (its config's, where the run left no environment), "?" if neither."""
    return r.env.get("pytorch_lightning") or r.config.get("lightning") or "?"


def release_order(release: str) -> Version:
    """A sort key for releases, oldest first; one that is not a version ("?") before all."""
    try:
        return Version(release)
    except InvalidVersion:
        return Version("0")
