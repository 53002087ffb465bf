"""Why the Trainer's own time per step grows with the step while its instructions do not: cache, or step length?

    python -m experiments.trainer_cache [--rounds 10] [--json PATH]

The overhead probe (auto shape, one thread) with its model's own work made longer in two ways that take
about the same time: reading a ballast of memory in every forward (64 MiB: it evicts the caches the
Trainer's code and data sat in), or running small 64x64 matmuls (compute that stays in L1: the caches keep
the Trainer's lines). A smaller ballast (4 MiB) sits between. Per round and variant, one forked process
runs segments P L P (plain, lean Trainer); the Trainer's own time is taken in place (rest(L) - rest(plain),
loopbench.analysis.inplace) and the paired whole-step delta beside it, median over rounds with 95%
order-statistic intervals. Then plain and lean of the variants are counted under callgrind: the
Trainer's extra instructions per step, which no variant should move.

If the Trainer's time grows with the ballast and not with the matmuls, the cost is refilling the caches
after the model's work; if it grows with both, it is the step's length itself (the machine's frequency or
level over longer steps).
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

from experiments import measured
from loopbench.analysis import inplace, rounds
from loopbench.analysis.stats import robust_difference
from loopbench.core.trainers import LEAN, PLAIN
from loopbench.core.types import RunConfig, RunResult
from loopbench.studies import overhead

IMPLS = (PLAIN, LEAN)
VARIANTS: dict[str, dict[str, Any]] = {  # name: probe settings, (segment steps, warm-up)
    "none": {},
    "ballast 4 MiB": {"ballast_mib": 4},
    "ballast 64 MiB": {"ballast_mib": 64},
    "matmuls in L1": {"spin": 200},
}
SEGMENTS = {"none": (296, 40), "ballast 4 MiB": (200, 30), "ballast 64 MiB": (60, 12), "matmuls in L1": (60, 12)}
COUNT = (40, 10)


def _with(c: RunConfig, name: str) -> RunConfig:
    return dataclasses.replace(c, overrides=c.overrides | VARIANTS[name])


def round_cells(k: int) -> list[list[RunConfig]]:
    """Round k: per variant one process of segments P L P; the variants' order reversed every other round."""
    names = list(VARIANTS) if k % 2 == 0 else list(VARIANTS)[::-1]
    return [[_with(c, n) for c in overhead.plan("cpu", "auto", 1, SEGMENTS[n][0], IMPLS, first=k)] for n in names]


def count_cells() -> list[RunConfig]:
    cells = []
    for name in VARIANTS:
        for impl in IMPLS:
            c = RunConfig(overhead.PROBE, impl, "cpu", "32-true", "quick", 0, *COUNT, clock="instructions")
            cells.append(_with(dataclasses.replace(c, overrides={"shape": "auto"}), name))
    return cells


def _variant(r: RunResult) -> str:
    over = r.config["overrides"]
    return next(n for n, v in VARIANTS.items() if {k: over.get(k, 0) for k in ("ballast_mib", "spin")} == {
        "ballast_mib": v.get("ballast_mib", 0), "spin": v.get("spin", 0)})  # fmt: skip


def analyse(timed: list[RunResult], counted: list[RunResult]) -> dict[str, Any]:
    """{variant: {"plain_step_us", "delta_us", "delta_low_us", "delta_high_us", "own_us", "own_low_us",
    "own_high_us", "pairs", "instructions_delta"}}."""
    out: dict[str, Any] = {}
    for name in VARIANTS:
        mine = [r for r in timed if _variant(r) == name]
        found, _ = rounds.pairs(mine, name, one_thread=True)
        pairs = found.get(LEAN, [])
        if not pairs:
            continue
        plain = sorted(rounds.of_plain(p, lambda r: r.step_time_median_s) for p in pairs)
        deltas = [(p.mine.step_time_median_s - rounds.of_plain(p, lambda r: r.step_time_median_s)) * 1e6 for p in pairs]
        d = robust_difference(deltas)
        row = {"plain_step_us": plain[len(plain) // 2] * 1e6, "delta_us": d.delta, "delta_low_us": d.low,
               "delta_high_us": d.high, "pairs": d.pairs}  # fmt: skip
        own = inplace.trainer_time(pairs)
        if own:
            row |= {k.removesuffix("_s") + "_us": v * 1e6 for k, v in own.items() if k.endswith("_s") and v is not None}
        counts = {r.config["impl"]: r.instructions_per_step for r in counted if _variant(r) == name and r.ok}
        if counts.get(PLAIN) and counts.get(LEAN):
            row["instructions_delta"] = counts[LEAN] - counts[PLAIN]
        out[name] = row
    return out


def lines(a: dict[str, Any]) -> list[str]:
    out = []
    for name, v in a.items():
        own = f"{v['own_us']:+.0f} us [{v['own_low_us']:+.0f}, {v['own_high_us']:+.0f}]" if "own_low_us" in v else "–"
        text = (f"{name:<15} plain step {v['plain_step_us']:>8,.0f} us: the Trainer's own time in place {own}; "
                f"whole-step delta {v['delta_us']:+.0f} us [{v['delta_low_us']:+.0f}, {v['delta_high_us']:+.0f}] "
                f"({v['pairs']} rounds)")  # fmt: skip
        if "instructions_delta" in v:
            text += f"; counted {v['instructions_delta'] / 1e6:+.3f} M instructions per step"
        out.append(text)
    return out


if __name__ == "__main__":
    sys.exit(measured.main(None, "trainer_cache", __doc__, 10, round_cells, count_cells(), analyse, lines))
