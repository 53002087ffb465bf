"""Compare two result sets (two releases, commits or days): what changed per probe variant and task cell.

`loopbench compare OLD NEW [--fail-above PCT]` prints, per probe variant (its delta over the plain
loop, us per step) and per task cell (its Lightning / plain ratio), the change from OLD to NEW with a
95% interval (bootstrap over the rounds of each set, which are independent), and the change in
instructions per step where both sets counted them (exact: a count does not vary). A change is
`resolved` when its interval excludes 0; the command exits 1 when a resolved change exceeds
--fail-above percent of OLD's value, so CI can gate on it. Results from machines or torch versions
that differ are refused (say which): their times are not comparable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from loopbench.analysis import rounds
from loopbench.analysis.grouping import by_group
from loopbench.analysis.probe import PROBE, answer, round_deltas
from loopbench.core.types import RunResult, UsageError

MUST_MATCH = ("cpu", "cpu_count", "gpu", "torch")  # what makes two times comparable
BOOTSTRAP = 4_000


@dataclass(frozen=True)
class Change:
    what: str  # "auto lightning", "cifar_cnn cpu 32-true lightning"
    unit: str  # "us" (probe delta) or "x" (task ratio)
    old: float
    new: float
    low: float  # the interval of new - old
    high: float
    old_instructions: float | None = None
    new_instructions: float | None = None

    @property
    def resolved(self) -> bool:
        return self.low > 0 or self.high < 0

    @property
    def percent(self) -> float:
        """The change relative to OLD's value (for a ratio: relative to OLD's cost, ratio - 1)."""
        base = self.old if self.unit == "us" else self.old - 1
        return 100 * (self.new - self.old) / abs(base) if base else float("inf")

    def line(self) -> str:
        verdict = "changed" if self.resolved else "no resolved change"
        text = (
            f"{self.what:<44} {self.old:10.3f} -> {self.new:10.3f} {self.unit}  {self.new - self.old:+.3f} "
            f"[{self.low:+.3f}, {self.high:+.3f}] ({self.percent:+.1f}%): {verdict}"
        )
        if self.old_instructions and self.new_instructions:
            text += f"; instructions {100 * (self.new_instructions / self.old_instructions - 1):+.2f}%"
        return text


def _env(results: list[RunResult]) -> dict[str, Any]:
    env = next((r.env for r in results if r.ok and r.env), {})
    return {k: env.get(k) for k in MUST_MATCH}


def check_comparable(old: list[RunResult], new: list[RunResult]) -> None:
    a, b = _env(old), _env(new)
    differ = [f"{k}: {a[k]} vs {b[k]}" for k in MUST_MATCH if a[k] != b[k]]
    if differ:
        raise UsageError(
            f"the two result sets ran on different machines or torch versions ({'; '.join(differ)}); their "
            "times are not comparable: compare results from one machine"
        )


def _interval(old: list[float], new: list[float], seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of median(new) - median(old), rounds resampled within each set."""
    rng = np.random.default_rng(seed)
    o, n = np.asarray(old), np.asarray(new)
    draws = np.median(rng.choice(n, (BOOTSTRAP, len(n))), 1) - np.median(rng.choice(o, (BOOTSTRAP, len(o))), 1)
    return float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))


def probe_changes(old: list[RunResult], new: list[RunResult]) -> list[Change]:
    out = []
    device = next((r.config["device"] for r in old if r.config["task"] == PROBE), "cpu")
    a, b = answer(old, device), answer(new, device)
    for shape in a["shapes"].keys() & b["shapes"].keys():
        d_old, d_new = round_deltas(old, shape)[0], round_deltas(new, shape)[0]
        counts_old = a["instructions"]["shapes"].get(shape, {})
        counts_new = b["instructions"]["shapes"].get(shape, {})
        for impl in [i for i in d_old if i in d_new]:
            x, y = [v[0] for v in d_old[impl].values()], [v[0] for v in d_new[impl].values()]
            if len(x) < 2 or len(y) < 2:
                continue
            low, high = _interval(x, y)
            out.append(
                Change(
                    f"probe {shape} {impl}", "us", float(np.median(x)), float(np.median(y)), low, high,
                    (counts_old.get(impl) or {}).get("delta"), (counts_new.get(impl) or {}).get("delta"),
                )
            )  # fmt: skip
    return out


def task_changes(old: list[RunResult], new: list[RunResult]) -> list[Change]:
    def ratios(results: list[RunResult]) -> dict[tuple, list[float]]:
        out = {}
        for key, impls in by_group([r for r in results if r.config["task"] != PROBE]).items():
            segments = [r for runs in impls.values() for r in runs if r.config.get("slot", 0) > 0]
            found, _ = rounds.pairs(segments, key[0])
            for impl, ps in found.items():
                out[(*key[:3], impl)] = [p.mine.step_time_median_s / rounds.of_plain(p, _step) for p in ps]
        return out

    a, b = ratios(old), ratios(new)
    out = []
    for key in [k for k in a if k in b and len(a[k]) >= 2 and len(b[k]) >= 2]:
        low, high = _interval(a[key], b[key])
        out.append(Change(" ".join(key), "x", float(np.median(a[key])), float(np.median(b[key])), low, high))
    return out


def _step(r: RunResult) -> float:
    return r.step_time_median_s


def compare(old: list[RunResult], new: list[RunResult]) -> list[Change]:
    check_comparable(old, new)
    changes = probe_changes(old, new) + task_changes(old, new)
    if not changes:
        raise UsageError("the two result sets share no probe variant or task cell with rounds; nothing to compare")
    return changes
