"""Rounds: the pairs that a drifting machine cannot fake.

On a shared VM a step's time drifts by 15-25% within seconds, and fresh processes of one variant sit on
levels up to 25% apart. So time comparisons are made in rounds: one process runs short segments of the
plain loop around every other implementation, P V1 P V2 ... P (the order reversed every other round),
and each implementation's segment is paired with the plain segments just before and after it, which
ran within a second of it in the same process. A pair is left out only where the machine visibly
changed speed under it: the two halves of one of its segments differ by more than DRIFT_LIMIT (50%).
The plain segments beside a pair are not required to agree: runs of the same code, even in one process,
land on speed levels about 30% apart, and the median over rounds absorbs them (docs/method.md says what
such a rule would cost). Fresh-process runs (`slot` 0) pair with the plain run of the same repeat.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from loopbench.core.trainers import PLAIN
from loopbench.core.types import RunResult

DRIFT_LIMIT = 0.5  # the halves of each segment of a pair agree within 50%
MIN_HALF = 16  # steps in each half, at least, for the halves rule
MIN_CPU_SHARE = 0.8  # a one-thread segment that got less of a CPU than this was kept off it


def sequence(impls: tuple[str, ...] | list[str], k: int) -> list[str]:
    """Round k's segments: the plain loop around every other implementation, reversed every other round."""
    variants = [i for i in impls if i != PLAIN]
    order = variants if k % 2 == 0 else variants[::-1]
    return [PLAIN] + [impl for v in order for impl in (v, PLAIN)]


@dataclass(frozen=True)
class Pair:
    round: int
    mine: RunResult
    plain: tuple[RunResult, ...]  # one or two


def disturbed(r: RunResult, one_thread: bool) -> bool:
    """A one-thread run kept off the CPU (by the hypervisor or another process) for a fifth of its window."""
    return one_thread and r.cpu_share is not None and r.cpu_share < MIN_CPU_SHARE


def drifted(r: RunResult) -> float:
    """How far apart the median steps of the first and second half of a run's timed steps are (0.1: 10%)."""
    timed = r.step_times_s[r.warmup_steps :]
    if len(timed) < MIN_HALF * 2:  # too few steps for a half's median to mean anything
        return 0.0
    a, b = statistics.median(timed[: len(timed) // 2]), statistics.median(timed[len(timed) // 2 :])
    return max(a, b) / min(a, b) - 1 if min(a, b) > 0 else 0.0


def pairs(runs: list[RunResult], label: str, one_thread: bool = False) -> tuple[dict[str, list[Pair]], list[str]]:
    """({impl: [its pairs, one per round]}, [the pairs left out, and why]) of one comparison's timed runs."""
    by_round: dict[int, list[RunResult]] = {}
    for r in runs:
        by_round.setdefault(r.config["repeat"], []).append(r)
    out: dict[str, list[Pair]] = {}
    left_out = []
    for k, members in sorted(by_round.items()):
        members.sort(key=lambda r: r.config.get("slot", 0))
        usable = [r.ok and bool(r.step_time_median_s) and not disturbed(r, one_thread) for r in members]
        for i, r in enumerate(members):
            if r.config["impl"] == PLAIN or not usable[i]:
                continue
            if r.config.get("slot", 0) > 0:  # a round: the plain segments just before and after
                beside = [j for j in (i - 1, i + 1) if 0 <= j < len(members) and members[j].config["impl"] == PLAIN]
            else:  # one process per run: the plain run of the same repeat
                beside = [j for j, m in enumerate(members) if m.config["impl"] == PLAIN and not m.config.get("slot")]
            why = _why_not(members, i, beside, usable)
            if why:
                left_out.append(f"{label} round {k} {r.config['impl']}: {why}")
                continue
            out.setdefault(r.config["impl"], []).append(Pair(k, r, tuple(members[j] for j in beside)))
    return out, left_out


def _why_not(members: list[RunResult], i: int, beside: list[int], usable: list[bool]) -> str | None:
    if not beside or not all(usable[j] for j in beside):
        return "a plain segment beside it failed or was kept off the CPU"
    if members[i].config.get("slot", 0) == 0:
        return None  # fresh processes: no drift rule (their pairs are seconds apart anyway)
    moved = max(drifted(m) for m in (members[i], *(members[j] for j in beside)))
    if moved > DRIFT_LIMIT:
        return f"a segment's two halves differ by {moved:.0%}"
    return None


def of_plain(pair: Pair, value) -> float:
    """The mean of `value(run)` over the plain segments of a pair."""
    return sum(value(p) for p in pair.plain) / len(pair.plain)


def samples(runs: list[RunResult]) -> dict[str, list[float]]:
    """Each implementation's seconds per optimizer step, one value per round, from the values the pairs divide:
    a segment's median step, and for the plain loop the mean of its segments in that round. Without rounds
    (fresh processes only: data parallel, step-limited cells) one value per repeat, each run's median step."""
    timed = [r for r in runs if r.config.get("clock", "time") == "time"]
    segments = [r for r in timed if r.config.get("slot", 0) > 0]
    by_impl: dict[str, dict[int, list[float]]] = {}
    for r in segments or timed:
        if r.ok and r.step_time_median_s:
            by_impl.setdefault(r.config["impl"], {}).setdefault(r.config.get("repeat", 0), []).append(
                r.step_time_median_s
            )
    return {impl: [sum(v) / len(v) for _, v in sorted(per.items())] for impl, per in by_impl.items()}
