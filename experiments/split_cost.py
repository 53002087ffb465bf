"""What the in-place split's own timers cost a step, in time and in instructions.

    python -m experiments.split_cost [--rounds 12] [--json PATH]

The split (loopbench.measure.split) times the model's own work through torch's global module and optimizer
hooks and a wrapped Tensor.backward, on both sides. Its timers run a fixed number of times per step (a
forward pre- and post-hook per module call, two per optimizer step, two per backward), so they should cost
both loops about the same and cancel out of rest(Lightning) - rest(plain); this checks that, on the overhead
probe, where a few microseconds show. Per round one forked process runs the probe's auto shape as segments
P+ P- L+ L- (+: split, -: not), the order reversed every other round; per round and implementation the
split's cost is the split segment's median step minus the unsplit one's. The median over rounds has an
order-statistic interval. Then each of the four is counted once under callgrind (where valgrind is
installed): the count is the split's cost in instructions, free of the machine's noise.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

from experiments import measured
from loopbench.analysis.stats import robust_difference
from loopbench.core.trainers import LEAN, PLAIN
from loopbench.core.types import RunConfig, RunResult
from loopbench.studies import overhead

IMPLS = (PLAIN, LEAN)


def variants(configs: list[RunConfig]) -> list[RunConfig]:
    """Each config with the split (True) and without (False), in that order."""
    return [dataclasses.replace(c, split=on) for c in configs for on in (True, False)]


def round_cells(k: int) -> list[RunConfig]:
    """Round k: P+ P- L+ L- (reversed on odd rounds), one process."""
    cells = [dataclasses.replace(c, slot=0) for c in overhead.plan("cpu", "auto", 1, impls=IMPLS, first=k)]
    cells = variants(list({c.impl: c for c in cells}.values()))
    cells = cells if k % 2 == 0 else cells[::-1]
    return [dataclasses.replace(c, slot=slot) for slot, c in enumerate(cells, 1)]


def analyse(timed: list[RunResult], counted: list[RunResult]) -> dict[str, Any]:
    """{impl: {"split_us", "low_us", "high_us", "rounds", "plain_step_us", "instructions_split",
    "instructions_unsplit", "instructions_delta"}}: the split's cost per step, and the Trainer's own cost as
    the two sides' difference of that (it cancels where equal)."""
    out: dict[str, Any] = {}
    for impl in IMPLS:
        by_round: dict[int, dict[bool, float]] = {}
        for r in timed:
            if r.ok and r.config["impl"] == impl:
                by_round.setdefault(r.config["repeat"], {})[bool(r.config["split"])] = r.step_time_median_s
        costs = [(v[True] - v[False]) * 1e6 for v in by_round.values() if len(v) == 2]
        d = robust_difference(costs)
        unsplit = sorted(v[False] for v in by_round.values() if False in v)
        row = {"split_us": d.delta, "low_us": d.low, "high_us": d.high, "rounds": d.pairs,
               "step_unsplit_us": unsplit[len(unsplit) // 2] * 1e6}  # fmt: skip
        counts = {bool(r.config["split"]): r.instructions_per_step for r in counted if r.config["impl"] == impl}
        if counts.get(True) and counts.get(False):
            row |= {"instructions_split": counts[True], "instructions_unsplit": counts[False],
                    "instructions_delta": counts[True] - counts[False]}  # fmt: skip
        out[impl] = row
    if all("instructions_delta" in out[i] for i in IMPLS):
        out["trainer_minus_plain_instructions"] = out[LEAN]["instructions_delta"] - out[PLAIN]["instructions_delta"]
    out["trainer_minus_plain_us"] = out[LEAN]["split_us"] - out[PLAIN]["split_us"]
    return out


def lines(a: dict[str, Any]) -> list[str]:
    out = []
    for impl in IMPLS:
        v = a[impl]
        text = (f"{impl:<10} split costs {v['split_us']:+.1f} us [{v['low_us']:+.1f}, {v['high_us']:+.1f}] per step "
                f"({v['rounds']} rounds; the unsplit step {v['step_unsplit_us']:.0f} us)")  # fmt: skip
        if "instructions_delta" in v:
            text += f"; counted {v['instructions_delta']:+,.0f} instructions per step"
        out.append(text)
    out.append(f"what it adds to the Trainer's own time (lean - plain): {a['trainer_minus_plain_us']:+.1f} us")
    if "trainer_minus_plain_instructions" in a:
        out[-1] += f", {a['trainer_minus_plain_instructions']:+,.0f} instructions"
    return out


if __name__ == "__main__":
    sys.exit(
        measured.main(
            None, "split_cost", __doc__, 12, lambda k: [round_cells(k)],
            variants(overhead.count_plan("cpu", "auto", impls=IMPLS)), analyse, lines,
        )
    )  # fmt: skip
