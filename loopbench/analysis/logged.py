"""What a user's module logged (every `self.log` and logger call, by "hook/name"): the first difference between two
runs, and the names whose values differ between two runs of the same side and seed (a wall-clock time, say),
which no comparison of two sides can judge."""

from __future__ import annotations

import dataclasses
import itertools
import math

from loopbench.core.types import RunResult


def close(x: float, y: float, rtol: float) -> bool:
    return x == y or abs(x - y) <= rtol * max(1.0, abs(x), abs(y))


def first_difference(a: dict[str, list[float]], b: dict[str, list[float]], rtol: float | None) -> str | None:
    """The first difference between what two runs' modules logged, or None: bitwise where `rtol` is None (NaN equal
    to NaN), else within the relative tolerance."""
    if a.keys() != b.keys():
        return f"logged {sorted(a.keys() ^ b.keys())[0]} on one side only"
    for key in a:
        if len(a[key]) != len(b[key]):
            return f"{key} logged {len(a[key])} times vs {len(b[key])}"
        for i, (x, y) in enumerate(zip(a[key], b[key], strict=True)):
            same = x == y or (math.isnan(x) and math.isnan(y))
            if not same and (rtol is None or not close(x, y, rtol)):
                return f"{key} differs at its value {i}: {x!r} vs {y!r}"
    return None


def unrepeated(runs: list[RunResult]) -> set[str]:
    """The names whose logged values differ between two successful runs of one side and seed."""
    seed = runs[0].config["seed"] if runs else None
    logs = [r.logged for r in runs if r.ok and r.logged and r.config["seed"] == seed]
    pairs = itertools.pairwise(logs)
    return {k for a, b in pairs for k in a.keys() & b.keys() if first_difference({k: a[k]}, {k: b[k]}, None)}


def without(result: RunResult, names: set[str]) -> RunResult:
    """The run as if its module had not logged `names`."""
    return dataclasses.replace(result, logged={k: v for k, v in result.logged.items() if k not in names})


def why(difference: str | None, unjudged: set[str]) -> dict[str, str]:
    """A parity row's reason ({"why": ...}) where what was logged decided or was left out; else nothing."""
    parts = [f"logged values differ: {difference}"] if difference else []
    parts += [f"{', '.join(sorted(unjudged))}: differs between two runs of one side, not compared"] if unjudged else []
    return {"why": "; ".join(parts)} if parts else {}
