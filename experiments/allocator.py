"""Does the memory allocator make the Trainer's own time per step grow with the step?

    python -m experiments.allocator [--rounds 8] [--json PATH] [--points NAME ...]

A real task's step allocates and frees megabytes of activations and gradients. glibc's malloc returns large
freed blocks to the system (mmap above a threshold that moves at run time; trimming the top of the heap), so
that the next step faults its pages in again, and a Trainer's bookkeeping that runs after such a free could pay
for it. The probe allocates almost nothing. Each pay-curve point here, and the probe, runs its segments
P L P D P (plain, lean Trainer, default Trainer) in one forked process per round under each allocator of
loopbench.core.types.ALLOCATORS: glibc as the environment sets it, and glibc keeping what it got (no mmap
below 32 MiB, no trim), the allocators' order reversed every other round. Per point and allocator: the
Trainer's own time in place (rest(L) - rest(plain), loopbench.analysis.inplace), and, per round, its change
from one allocator to the other (median with a 95% order-statistic interval).

If keeping memory shrinks the Trainer's own time at the real tasks and not at the probe, the allocator is
part of why a task's Trainer costs more than the probe's; if nothing moves, it is not.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from experiments import measured
from loopbench.analysis import inplace, rounds
from loopbench.analysis.paycurve import POINTS, Point, point_of
from loopbench.analysis.probe import PROBE
from loopbench.analysis.stats import MIN_MEDIAN_PAIRS, robust_difference
from loopbench.core.trainers import DEFAULTS, LEAN, PLAIN
from loopbench.core.types import ALLOCATORS, RunConfig, RunResult
from loopbench.studies import overhead
from loopbench.studies.paycurve import point_cells

IMPLS = (PLAIN, LEAN, DEFAULTS)
CHOSEN = ("GAN quick, batch 64", "CIFAR, widths 8-32, batch 64")  # 35 and 54 ms: MiBs freed a step
PROBE_STEPS = 296


def round_cells(chosen: tuple[str, ...], k: int) -> list[list[RunConfig]]:
    """Round k: per allocator, one process per chosen point and one for the probe, each its segments P L P D P."""
    batches = []
    for allocator in list(ALLOCATORS) if k % 2 == 0 else list(ALLOCATORS)[::-1]:
        probe = overhead.plan("cpu", "auto", 1, PROBE_STEPS, IMPLS, first=k)
        for cells in [*(point_cells(p, k) for p in POINTS if p.name in chosen), probe]:
            batches.append([dataclasses.replace(c, allocator=allocator) for c in cells])
    return batches


def _name(r: RunResult) -> str:
    """The point a run belongs to."""
    point: Point | None = None if r.config["task"] == PROBE else point_of(r, POINTS)
    return point.name if point else "the probe"


def _own_per_round(pairs: list[rounds.Pair]) -> dict[int, float]:
    """{round: the Trainer's own time in place, s} of the pairs that took the split."""
    return {p.round: v[0][0] for p in pairs if (v := inplace.per_round([p]))}


def analyse(timed: list[RunResult], counted: list[RunResult]) -> dict[str, Any]:
    """{point: {impl: {allocator: in-place figures (us), "kept - glibc": the paired change (us)}}}. Refuses runs
    whose process did not start with its allocator's settings."""
    wrong = [r for r in timed if r.ok and (r.env.get("glibc_tunables") or "") != ALLOCATORS[r.config["allocator"]]]
    if wrong:
        raise SystemExit(f"{wrong[0].run_config.label}: started with GLIBC_TUNABLES={wrong[0].env['glibc_tunables']}")
    out: dict[str, Any] = {}
    for name in [*dict.fromkeys(_name(r) for r in timed if r.config["task"] != PROBE), "the probe"]:
        for impl in (LEAN, DEFAULTS):
            row, own = {}, {}
            for allocator in ALLOCATORS:
                mine = [r for r in timed if _name(r) == name and r.config["allocator"] == allocator]
                pairs = rounds.pairs(mine, f"{name} {allocator}", one_thread=name == "the probe")[0].get(impl, [])
                own[allocator] = _own_per_round(pairs)
                t = inplace.trainer_time(pairs)
                if t:
                    plain = sorted(rounds.of_plain(p, lambda r: r.step_time_median_s) for p in pairs)
                    row[allocator] = {
                        k.removesuffix("_s") + "_us": v * 1e6
                        for k, v in t.items()
                        if k.endswith("_s") and v is not None
                    }
                    row[allocator] |= {"plain_step_us": plain[len(plain) // 2] * 1e6, "pairs": t["pairs"]}
            a, b = own.get("glibc", {}), own.get("glibc-kept", {})
            change = [(b[k] - a[k]) * 1e6 for k in sorted(a.keys() & b.keys())]
            if len(change) >= MIN_MEDIAN_PAIRS:
                d = robust_difference(change)
                row["kept - glibc"] = {"us": d.delta, "low_us": d.low, "high_us": d.high, "rounds": d.pairs}
            out.setdefault(name, {})[impl] = row
    return out


def lines(a: dict[str, Any]) -> list[str]:
    out = []
    for name, impls in a.items():
        for impl, row in impls.items():
            parts = []
            for allocator in ALLOCATORS:
                v = row.get(allocator)
                if v and v.get("own_low_us") is not None:
                    own = f"{v['own_us']:+,.0f} [{v['own_low_us']:+,.0f}, {v['own_high_us']:+,.0f}] us"
                    parts.append(f"{allocator} {own} (plain step {v['plain_step_us'] / 1e3:.2f} ms)")
            c = row.get("kept - glibc")
            change = f"; kept - glibc {c['us']:+,.0f} [{c['low_us']:+,.0f}, {c['high_us']:+,.0f}] us" if c else ""
            out.append(f"{name:<30} {impl:<18} own time in place: {'; '.join(parts) or '–'}{change}")
    return out


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(prog="python -m experiments.allocator", add_help=False)
    names = [p.name for p in POINTS]
    options.add_argument("--points", nargs="+", choices=names, default=list(CHOSEN), metavar="NAME",
                         help=f"pay-curve points (default: {'; '.join(CHOSEN)}); of: {'; '.join(names)}")  # fmt: skip
    known, rest = options.parse_known_args(argv)
    chosen = tuple(known.points)
    return measured.main(
        rest, "allocator", __doc__, 8, lambda k: round_cells(chosen, k), [], analyse, lines, parents=(options,)
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
