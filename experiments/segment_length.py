"""Does a task cell's in-place Trainer time resolve better from more, shorter segments in the same time?

    python -m experiments.segment_length [--task mnist_gan] [--rounds 8] [--json PATH]

A round runs P L P Ld P in one forked process, and the Trainer's own time of a round is the rest of its
segment less that of the plain segments beside it. Within a round the machine's speed moves by tens of
percent from one second to the next, and a step's rest moves with it, so the neighbours' distance in time
may be the noise. Each repeat here runs one round of the task's own segments (HARNESS.segment) and two
rounds of segments half as long (half the warm-up), the order of the two kinds alternating: both kinds get
the same wall time on the same machine. Per kind: the lean and the default Trainer's own time as a share of
the plain step, with its order-statistic interval, its half-width in points, and the seconds the kind took.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

import implementations
from experiments import measured
from loopbench.analysis import inplace, rounds
from loopbench.core.types import RunConfig, RunResult
from loopbench.studies.suite import Matrix

TASK = "mnist_gan"
SHORT_REPEAT = 1_000  # the short rounds' repeat numbers start here (a round is its repeat number)


def kinds(task: str) -> dict[str, tuple[int, int]]:
    steps, warmup = implementations.spec(task).HARNESS.segment
    return {"task's": (steps, warmup), "half": (steps // 2, max(warmup // 2, 1))}


def round_cells(task: str, k: int, steps: int, warmup: int, repeat: int) -> list[RunConfig]:
    matrix = Matrix(tasks=(task,), precisions=("32-true",), devices=("cpu",), repeats=k + 1)
    cells = [c for c in matrix.group_cells(task, "cpu", "32-true", 1) if c.slot > 0 and c.repeat == k]
    return [dataclasses.replace(c, steps=steps, warmup_steps=warmup, repeat=repeat) for c in cells]


def round_batches(task: str, k: int) -> list[list[RunConfig]]:
    (long, short) = kinds(task).values()
    batches = [round_cells(task, k, *long, repeat=k)]
    batches += [round_cells(task, k + j, *short, repeat=SHORT_REPEAT + 2 * k + j) for j in (0, 1)]
    return batches if k % 2 == 0 else batches[::-1]


def analyse(task: str, timed: list[RunResult]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (steps, _) in kinds(task).items():
        runs = [r for r in timed if r.config["steps"] == steps]
        found, _ = rounds.pairs(runs, name)
        row: dict[str, Any] = {"steps": steps, "seconds": sum(r.end_to_end_s or 0 for r in runs)}
        for impl, pairs in found.items():
            t = inplace.trainer_time(pairs)
            half = (t["share_high"] - t["share_low"]) / 2 * 100 if t and t["share_low"] is not None else None
            row[impl] = {"label": inplace.label(t), "pairs": t and t["pairs"], "half_width_points": half}
        out[name] = row
    return out


def lines(a: dict[str, Any]) -> list[str]:
    out = []
    for name, row in a.items():
        out.append(f"{name} segments ({row['steps']} steps), {row['seconds']:.0f} s of runs:")
        for impl in ("lightning", "lightning-defaults"):
            v = row.get(impl)
            if v:
                half = "–" if v["half_width_points"] is None else f"±{v['half_width_points']:.1f} points"
                out.append(f"  {impl:<19} {v['label']} ({v['pairs']} pairs; {half})")
    return out


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(prog="python -m experiments.segment_length", add_help=False)
    options.add_argument("--task", choices=implementations.TASKS, default=TASK, help=f"the task cell (default: {TASK})")
    known, rest = options.parse_known_args(argv)
    return measured.main(
        rest, "segment_length", __doc__, 8, lambda k: round_batches(known.task, k), [],
        lambda timed, counted: analyse(known.task, timed), lines, parents=(options,),
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
