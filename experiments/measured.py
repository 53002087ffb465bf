"""What the experiments that pair segments in rounds and then count share: their command line and their run.

Each experiment gives its rounds (one process per batch of segments), the runs to count under callgrind,
its analysis and its lines; this parses --rounds and --json, runs the rounds, then the counts, prints the
failed runs and the answer, and writes the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loopbench.core.types import RunConfig, RunResult

COUNT_TIMEOUT_S = 1_800.0


def main(
    argv: list[str] | None,
    prog: str,
    doc: str,
    default_rounds: int,
    round_batches: Callable[[int], list[list[RunConfig]]],
    counts: list[RunConfig],
    analyse: Callable[[list[RunResult], list[RunResult]], dict[str, Any]],
    lines: Callable[[dict[str, Any]], list[str]],
    parents: tuple[argparse.ArgumentParser, ...] = (),
    simulate: tuple[str, ...] = (),
) -> int:
    """Run the experiment; exit 1 if a timed run failed (a failed count only leaves its figure out). `parents`:
    the experiment's own options, parsed before (shown in --help); `simulate`: count once with callgrind's cache
    and branch simulation per last level named (valgrind.SIMULATE), instead of once without."""
    from loopbench.core.store import compact, load_results, save_results

    parser = argparse.ArgumentParser(
        prog=f"python -m experiments.{prog}", description=doc.split("\n\n")[0], parents=list(parents)
    )
    parser.add_argument("--rounds", type=int, default=default_rounds, help=f"rounds (default: {default_rounds})")
    parser.add_argument("--json", type=Path, help="write the answer here (and the runs beside it, .runs.json.gz)")
    parser.add_argument("--from", dest="runs", type=Path, help="analyse the runs saved by an earlier --json; run none")
    parser.add_argument(
        "--counts",
        choices=("on", "off"),
        default="on",
        help="off: the timed rounds alone (counts may be added later: --from ... --counted ...)",
    )
    parser.add_argument("--counted", type=Path, nargs="+", default=[], metavar="RUNS",
                        help="with --from: instruction counts made elsewhere with the same code and versions (only "
                             "their counted runs are used)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.rounds < 6:
        parser.error("--rounds must be at least 6 (for an order-statistic interval)")
    if args.counted and not args.runs:
        parser.error("--counted goes with --from")
    if args.runs:
        for path in (args.runs, *args.counted):
            if not path.exists():
                parser.error(f"{path}: no such file")
        saved = load_results(args.runs)
        timed = [r for r in saved if r.config.get("clock", "time") == "time"]
        others = load_results(*args.counted) if args.counted else []
        counted = [r for r in saved + others if r.config.get("clock", "time") != "time"]
    else:
        timed, counted = _run(args.rounds, round_batches, counts if args.counts == "on" else [], simulate)
    if args.json and not args.runs:  # the runs first, beside the answer: an analysis that fails loses none of them
        save_results(compact(timed + counted), args.json.with_suffix(".runs.json.gz"))
    failed = [f"{r.run_config.label}: {r.status}: {r.message}" for r in timed + counted if not r.ok]
    if failed:
        print("\n".join(failed), file=sys.stderr)
    a = analyse(timed, [r for r in counted if r.ok])
    print("\n".join(lines(a)))
    first = next((r for r in timed if r.ok), None)
    a["env"] = first.env if first else {}  # the machine, versions and commit the runs were made with
    if args.json:
        args.json.write_text(json.dumps(a, indent=1) + "\n")
    return 1 if any(not r.ok for r in timed) else 0


def _run(
    rounds: int,
    round_batches: Callable[[int], list[list[RunConfig]]],
    counts: list[RunConfig],
    simulate: tuple[str, ...],
) -> tuple[list[RunResult], list[RunResult]]:
    """The timed rounds, then the counts (once per last level simulated)."""
    from loopbench.launch import valgrind
    from loopbench.launch.forked import run_forked_batch

    timed: list[RunResult] = []
    for k in range(rounds):
        for batch in round_batches(k):
            timed += run_forked_batch(batch)
        print(f"round {k + 1} of {rounds} done", flush=True)
    if not counts:
        return timed, []
    return timed, [r for level in simulate or (None,) for r in valgrind.count(counts, COUNT_TIMEOUT_S, level)]
