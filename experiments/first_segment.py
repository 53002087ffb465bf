"""Does a short unpaired plain segment first take the allocator's warm-up out of a round's paired segments?

    python -m experiments.first_segment [--rounds 8] [--json PATH]

At EfficientNet's quick preset (hundreds of MiB of activations a step) the plain loop's rest in a round's first
segment ran 1-3 ms longer than in its later ones, and under glibc keeping its memory it did not
(experiments/allocator.py, docs/pay-curve.md): the process's allocator warms up during the first segment, which
the pairing of each Lightning segment with the plain segments beside it does not cancel. Per round, two forked
processes, their order reversed every other round: the round as the bench runs it, P L P D P, and the same round
after a plain segment of a few steps that nothing is paired with, W P L P D P. Per arm: the plain loop's rest
(its step less the model's own work) in its first, second and third paired segment, and each Trainer's own time
in place (loopbench.analysis.inplace), median over rounds with 95% order-statistic intervals.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
from typing import Any

from experiments import measured
from loopbench.analysis import inplace, rounds
from loopbench.analysis.paycurve import POINTS
from loopbench.core.trainers import DEFAULTS, LEAN, PLAIN
from loopbench.core.types import RunConfig, RunResult
from loopbench.studies.paycurve import point_cells

POINT = next(p for p in POINTS if p.name == "EfficientNet quick, batch 32")
WARM_STEPS = 3  # the unpaired first segment: two warm-up steps and one timed
ARMS = {"as the bench": 0, "after a warm-up segment": 1_000}  # name: offset of the round's `repeat`


def round_cells(k: int) -> list[list[RunConfig]]:
    """Round k: one process per arm; in the second arm a plain segment of WARM_STEPS first, then P L P D P."""
    batches = []
    for offset in ARMS.values() if k % 2 == 0 else reversed(ARMS.values()):
        cells = [dataclasses.replace(c, repeat=k + offset, slot=c.slot + bool(offset)) for c in point_cells(POINT, k)]
        if offset:
            cells.insert(0, dataclasses.replace(cells[0], steps=WARM_STEPS, warmup_steps=WARM_STEPS - 1, slot=1))
        batches.append(cells)
    return batches


def _arm(r: RunResult) -> str:
    return next(n for n, offset in sorted(ARMS.items(), key=lambda x: -x[1]) if r.config["repeat"] >= offset)


def analyse(timed: list[RunResult], counted: list[RunResult]) -> dict[str, Any]:
    """{arm: {"plain_rest_ms": [first, second, third paired plain segment: median over rounds], Trainer: in-place
    figures (us)}}; the warm-up segments themselves are left out."""
    out: dict[str, Any] = {}
    for name in ARMS:
        mine = [r for r in timed if _arm(r) == name and r.config["steps"] != WARM_STEPS]
        by_position: dict[int, list[float]] = {}
        for k in {r.config["repeat"] for r in mine}:
            plain = sorted((r for r in mine if r.config["repeat"] == k and r.config["impl"] == PLAIN and r.ok),
                           key=lambda r: r.config["slot"])  # fmt: skip
            for i, r in enumerate(plain):
                by_position.setdefault(i, []).append(r.rest_time_median_s * 1e3)
        row: dict[str, Any] = {"plain_rest_ms": [statistics.median(v) for _, v in sorted(by_position.items())]}
        found, _ = rounds.pairs(mine, name)
        for impl in (LEAN, DEFAULTS):
            t = inplace.trainer_time(found.get(impl, []))
            if t:
                row[impl] = {k.removesuffix("_s") + "_us": v * 1e6 for k, v in t.items() if k.endswith("_s") and v}
                row[impl]["pairs"] = t["pairs"]
        out[name] = row
    return out


def lines(a: dict[str, Any]) -> list[str]:
    out = []
    for name, row in a.items():
        rest = ", ".join(f"{v:.2f}" for v in row["plain_rest_ms"])
        own = "; ".join(
            f"{impl} {v['own_us']:+,.0f} us [{v.get('own_low_us', float('nan')):+,.0f}, "
            f"{v.get('own_high_us', float('nan')):+,.0f}] ({v['pairs']} rounds)"
            for impl in (LEAN, DEFAULTS)
            if (v := row.get(impl))
        )
        out.append(f"{name:<24} the plain rest by paired segment: {rest} ms; own time in place: {own}")
    return out


if __name__ == "__main__":
    sys.exit(measured.main(None, "first_segment", __doc__, 8, round_cells, [], analyse, lines))
