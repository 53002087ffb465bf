"""Why the plain loop's rest jumps by milliseconds at EfficientNet's bench cell: the allocator, step by step.

    python -m experiments.rest_modes [--rounds 6] [--json PATH]

At EfficientNet's quick preset the plain loop's rest (its step less the model's own work: loading the batch,
zero_grad freeing 213 gradients, the scheduler) was found at levels a millisecond and more apart from one segment
to the next, in an order that changed between invocations (docs/pay-curve.md). Here each step's rest is kept:
per round, one forked process per allocator (loopbench.core.types.ALLOCATORS: glibc as the environment sets it,
and glibc keeping what it got, no mmap below 32 MiB and no trim), the allocators' order reversed every other
round, each a plain-loop run of STEPS steps. Per allocator: the median rest over every timed step, its quartiles,
and the share of steps slower than SLOW_MS. If glibc's steps fall into two modes and the kept allocator's into one,
the jumps are glibc returning memory to the system and taking it back, not the Trainer and not the machine.
"""

from __future__ import annotations

import statistics
import sys
from typing import Any

from experiments import measured
from loopbench.core.trainers import PLAIN
from loopbench.core.types import ALLOCATORS, RunConfig, RunResult

STEPS, WARMUP = 30, 2
SLOW_MS = 3.0  # between the two levels seen: about 1.5 ms and 4-7 ms


def round_cells(k: int) -> list[list[RunConfig]]:
    """Round k: one process per allocator, each one plain run at EfficientNet's quick preset (its own run, not a
    segment of a round, so that every step's split is kept)."""
    order = list(ALLOCATORS) if k % 2 == 0 else list(ALLOCATORS)[::-1]
    over = {"validate_every_epoch": False}
    return [
        [
            RunConfig(
                "efficientnet_binary",
                PLAIN,
                preset="quick",
                steps=STEPS,
                warmup_steps=WARMUP,
                overrides=over,
                repeat=k,
                allocator=a,
            )
        ]
        for a in order
    ]


def rests_ms(r: RunResult) -> list[float]:
    """Each timed step's rest, ms."""
    pairs = list(zip(r.step_times_s, r.work_times_s, strict=True))[r.warmup_steps :]
    return [(s - w) * 1e3 for s, w in pairs]


def analyse(timed: list[RunResult], counted: list[RunResult]) -> dict[str, Any]:
    """{allocator: {"steps", "median_ms", "quartiles_ms", "slow_share", "runs": [each run's median, ms]}}."""
    out = {}
    for allocator in ALLOCATORS:
        runs = [r for r in timed if r.ok and r.config["allocator"] == allocator and r.work_times_s]
        rests = [x for r in runs for x in rests_ms(r)]
        if len(rests) < 4:
            continue
        q = statistics.quantiles(rests, n=4)
        out[allocator] = {
            "steps": len(rests),
            "median_ms": statistics.median(rests),
            "quartiles_ms": [q[0], q[2]],
            "slow_share": sum(x > SLOW_MS for x in rests) / len(rests),
            "runs": [statistics.median(rests_ms(r)) for r in runs],
        }
    return out


def lines(a: dict[str, Any]) -> list[str]:
    return [
        f"{name:<11} the plain loop's rest over {v['steps']} steps: median {v['median_ms']:.2f} ms, quartiles "
        f"{v['quartiles_ms'][0]:.2f}-{v['quartiles_ms'][1]:.2f} ms, {v['slow_share']:.0%} of steps over {SLOW_MS} ms; "
        f"each run's median: {', '.join(f'{x:.2f}' for x in v['runs'])} ms"
        for name, v in a.items()
    ]


if __name__ == "__main__":
    sys.exit(measured.main(None, "rest_modes", __doc__, 6, round_cells, [], analyse, lines))
