"""Compare two result sets (two releases, commits, branches, machines or days): what changed, and a gate for CI.

`loopbench compare OLD NEW [--fail-above PCT]`. Each side is a run folder or results file, or the JSON of `loopbench
overhead` (with `--counts only`: the counts alone). Where both sides counted instructions, the gate is on counts:
each variant's extra instructions per step over the plain loop, NEW against OLD as a percentage of OLD's, unmoved by
the neighbours' load (docs/ci.md gives how far two invocations move), and comparable across machines when the
versions that decide a count match (Python, torch, the probe's code, the default Trainer's progress bar; Lightning
is compared). Time is shown beside it where both sides ran on one machine: per probe variant its delta over the
plain loop (us per step), per task cell its Lightning / plain ratio, with a 95% bootstrap interval over the rounds;
without counts the gate is on a time change whose interval excludes 0 (`resolved`). Refusals name the rule and the
field that broke it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loopbench.analysis import rounds
from loopbench.analysis.grouping import by_group
from loopbench.analysis.probe import PROBE, answer, round_deltas
from loopbench.core.types import RunResult, UsageError

SAME_MACHINE = ("cpu", "cpu_count", "gpu", "torch")  # what makes two times comparable
# what must match for two counts to compare, machines aside (the progress bar: the default Trainer's, every step)
COUNTS_DECIDED_BY = ("python", "torch", "probe_code", "progress_bar")
BOOTSTRAP = 4_000
GATE_COUNTS = (
    "the gate: each variant's extra instructions per step over the plain loop (counted under callgrind), NEW "
    "against OLD, as a percentage of OLD's"
)
GATE_TIME = "the gate: a resolved change in time (its 95% interval excludes 0), as a percentage of OLD's value"


@dataclass
class Side:
    """One result set as compare reads it: its counts, its time, and what placed them."""

    name: str
    counts: dict[str, float] = field(default_factory=dict)  # "probe auto lightning": extra instructions per step
    probe_rounds: dict[str, list[float]] = field(default_factory=dict)  # per-round deltas, us
    probe_summary: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # delta [low, high], us
    task_rounds: dict[str, list[float]] = field(default_factory=dict)  # per-round Lightning / plain ratios
    machine: dict[str, Any] = field(default_factory=dict)
    counted_with: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    what: str  # "probe auto lightning", "cifar_cnn cpu 32-true lightning"
    unit: str  # "instructions" (counted), "us" (probe delta) or "x" (task ratio)
    old: float
    new: float
    low: float | None = None  # the interval of new - old (time); None for a count: exact
    high: float | None = None

    @property
    def resolved(self) -> bool:
        return self.low is None or self.low > 0 or self.high < 0

    @property
    def percent(self) -> float:
        """The change relative to OLD's value (for a ratio: relative to OLD's cost, ratio - 1)."""
        base = self.old - 1 if self.unit == "x" else self.old
        return 100 * (self.new - self.old) / abs(base) if base else float("inf")

    def line(self) -> str:
        if self.unit == "instructions":
            return (f"{self.what:<44} {self.old / 1e6:+9.3f} M -> {self.new / 1e6:+9.3f} M instructions per step "
                    f"({self.percent:+.1f}%)")  # fmt: skip
        verdict = "changed" if self.resolved else "no resolved change"
        return (f"{self.what:<44} {self.old:10.3f} -> {self.new:10.3f} {self.unit}  {self.new - self.old:+.3f} "
                f"[{self.low:+.3f}, {self.high:+.3f}] ({self.percent:+.1f}%): {verdict}")  # fmt: skip


def from_results(name: str, results: list[RunResult]) -> Side:
    device = next((r.config["device"] for r in results if r.config["task"] == PROBE), "cpu")
    a = answer(results, device)
    side = Side(name, task_rounds=_task_ratios(results))
    for shape, impls in a["instructions"]["shapes"].items():
        side.counts |= {f"probe {shape} {i}": c["delta"] for i, c in impls.items() if c.get("delta")}
    for shape in a["shapes"]:
        for impl, per_round in round_deltas(results, shape)[0].items():
            side.probe_rounds[f"probe {shape} {impl}"] = [v[0] for v in per_round.values()]
    env = next((r.env for r in results if r.ok and r.env), {})
    side.machine = {k: env.get(k) for k in SAME_MACHINE}
    side.counted_with = {k: env.get(k) for k in COUNTS_DECIDED_BY if k != "probe_code"}
    return side


def from_probe_json(name: str, data: dict[str, Any]) -> Side:
    """The JSON of `loopbench overhead` (the rounds' answer, or --counts only); one whose count failed is refused."""
    if data.get("failed"):
        raise UsageError(f"{name}: a run failed there ({data['failed'][0]}); count again before comparing")
    side = Side(name)
    for shape, impls in data.get("instructions", {}).get("shapes", {}).items():
        side.counts |= {f"probe {shape} {i}": c["delta"] for i, c in impls.items() if c.get("delta")}
    for shape, impls in data.get("shapes", {}).items():
        for impl, v in impls.items():
            if v.get("delta_us") is not None and v.get("delta_low_us") is not None:
                side.probe_summary[f"probe {shape} {impl}"] = (v["delta_us"], v["delta_low_us"], v["delta_high_us"])
    env = data.get("machine") or data.get("env") or {}
    side.machine = {k: env.get(k) for k in SAME_MACHINE}
    side.machine["torch"] = side.machine["torch"] or data.get("counted_with", {}).get("torch")
    side.counted_with = {k: (data.get("counted_with") or env).get(k) for k in COUNTS_DECIDED_BY}
    return side


def _task_ratios(results: list[RunResult]) -> dict[str, list[float]]:
    out = {}
    for key, impls in by_group([r for r in results if r.config["task"] != PROBE]).items():
        segments = [r for runs in impls.values() for r in runs if r.config.get("slot", 0) > 0]
        found, _ = rounds.pairs(segments, key[0])
        for impl, ps in found.items():
            out[" ".join([*key[:3], impl])] = [p.mine.step_time_median_s / rounds.of_plain(p, _step) for p in ps]
    return out


def _step(r: RunResult) -> float:
    return r.step_time_median_s


def bootstrap_interval(old: list[float], new: list[float], seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of median(new) - median(old), rounds resampled within each set."""
    rng = np.random.default_rng(seed)
    o, n = np.asarray(old), np.asarray(new)
    draws = np.median(rng.choice(n, (BOOTSTRAP, len(n))), 1) - np.median(rng.choice(o, (BOOTSTRAP, len(o))), 1)
    return float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))


def count_changes(old: Side, new: Side) -> list[Change]:
    """Each variant both sides counted; UsageError, naming the field, where a version that decides a count differs."""
    shared = [k for k in old.counts if k in new.counts]
    if not shared:
        return []
    a, b = old.counted_with, new.counted_with
    differ = [f"{k}: {a[k]} vs {b[k]}" for k in COUNTS_DECIDED_BY if a.get(k) and b.get(k) and a[k] != b[k]]
    if differ:
        raise UsageError(f"the counts are not comparable ({'; '.join(differ)}): counts compare across machines only "
                         f"where {', '.join(COUNTS_DECIDED_BY)} match")  # fmt: skip
    return [Change(k, "instructions", old.counts[k], new.counts[k]) for k in shared]


def same_machine(old: Side, new: Side) -> str | None:
    """Why the two sides' times are not comparable (the rule and the fields), or None."""
    differ = [f"{k}: {old.machine.get(k)} vs {new.machine.get(k)}" for k in SAME_MACHINE
              if old.machine.get(k) != new.machine.get(k)]  # fmt: skip
    if not differ:
        return None
    return f"{'; '.join(differ)}: times compare on one machine with one torch only"


def time_changes(old: Side, new: Side) -> list[Change]:
    out = []
    for k in [k for k in old.probe_rounds if k in new.probe_rounds]:
        x, y = old.probe_rounds[k], new.probe_rounds[k]
        if len(x) >= 2 and len(y) >= 2:
            out.append(Change(k, "us", float(np.median(x)), float(np.median(y)), *bootstrap_interval(x, y)))
    for k in [k for k in old.probe_summary if k in new.probe_summary and k not in new.probe_rounds]:
        (a, a_low, a_high), (b, b_low, b_high) = old.probe_summary[k], new.probe_summary[k]
        out.append(Change(k, "us", a, b, b_low - a_high, b_high - a_low))  # the two intervals' difference: wider
    for k in [k for k in old.task_rounds if k in new.task_rounds]:
        x, y = old.task_rounds[k], new.task_rounds[k]
        if len(x) >= 2 and len(y) >= 2:
            out.append(Change(k, "x", float(np.median(x)), float(np.median(y)), *bootstrap_interval(x, y)))
    return out


@dataclass
class Comparison:
    gate: str  # what --fail-above applies to
    gated: list[Change]
    context: list[Change]  # time beside counts
    note: str | None = None  # why time is not shown
    one_side: list[str] = field(default_factory=list)  # what only one side counted: said, not compared


def compare(old: Side, new: Side) -> Comparison:
    counts = count_changes(old, new)
    machines = same_machine(old, new)
    if counts:
        context = [] if machines else time_changes(old, new)
        alone = [f"{k} (counted in {s.name} only)" for s, t in ((old, new), (new, old)) for k in s.counts
                 if k not in t.counts]  # fmt: skip
        return Comparison(GATE_COUNTS, counts, context, f"time: not compared ({machines})" if machines else None,
                          alone)  # fmt: skip
    if machines:
        raise UsageError(f"no counts on both sides, and their times are not comparable ({machines})")
    changes = time_changes(old, new)
    if not changes:
        raise UsageError("the two result sets share no counted variant, no probe variant and no task cell with "
                         "rounds; nothing to compare")  # fmt: skip
    return Comparison(GATE_TIME, changes, [])
