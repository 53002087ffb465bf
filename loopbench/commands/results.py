"""The verbs on saved results: `report` (REPORT.md and figures from result files or folders, merged) and
`compare` (what changed between two result sets, with intervals; exit 1 past --fail-above)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from loopbench.analysis.compare import Side, compare, from_probe_json, from_results
from loopbench.core.checks import folder, positive
from loopbench.core.store import load_results
from loopbench.core.types import RunResult, UsageError
from loopbench.report import write_report


def cmd_report(args: argparse.Namespace) -> int:
    folder("--out", args.out)
    print(f"report: {write_report(load_results(*args.results), args.out)}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """What changed from OLD to NEW, counts first (the gate), time beside them; exit 1 past --fail-above."""
    if args.fail_above is not None:
        positive("--fail-above", args.fail_above)
    c = compare(side(args.old), side(args.new))
    limit = f"; it fails above {args.fail_above:g}% (--fail-above)" if args.fail_above is not None else ""
    print(f"{c.gate}{limit}")
    for change in c.gated:
        print(change.line())
    if c.context:
        print("time, beside the counts (one machine):")
        for change in c.context:
            print(change.line())
    if c.note:
        print(c.note)
    for what in c.one_side:
        print(f"not compared: {what}")
    failing = [x for x in c.gated if x.resolved and args.fail_above is not None and x.percent > args.fail_above]
    for x in failing:
        print(f"FAIL: {x.what} rose by {x.percent:.1f}%, above --fail-above {args.fail_above:g}%")
    return 1 if failing else 0


def side(path: Path) -> Side:
    """A result set as compare reads it: the JSON of `loopbench overhead`, or runs (a folder or a results file)."""
    if path.is_file() and path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UsageError(f"{path}: not JSON; give a run folder, a results file or loopbench overhead's JSON") \
                from None  # fmt: skip
        if isinstance(data, dict) and ("instructions" in data or "shapes" in data):
            return from_probe_json(str(path), data)
    return from_results(str(path), load_results(path))


def study_end(results: list[RunResult], out: Path, write: Callable[[list, Path], Path], publish_to: Path | None) -> int:
    """A study's last words: its report (and the published copy), each failed run's line; exit 1 where any failed."""
    print(f"report: {write(results, out)}")
    if publish_to is not None:
        print(f"published: {write(results, publish_to)}")
    failed = [f"{r.run_config.label}: {r.status}: {r.message}" for r in results if not r.ok]
    for line in failed:
        print(f"FAILED: {line}", file=sys.stderr)
    return 1 if failed else 0
