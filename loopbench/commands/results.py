"""The verbs on saved results: `report` (REPORT.md and figures from result files or folders, merged) and
`compare` (what changed between two result sets, with intervals; exit 1 past --fail-above)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from loopbench.analysis.compare import compare
from loopbench.core.checks import folder, positive
from loopbench.core.store import load_results
from loopbench.core.types import RunResult
from loopbench.report import write_report


def cmd_report(args: argparse.Namespace) -> int:
    folder("--out", args.out)
    print(f"report: {write_report(load_results(*args.results), args.out)}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Per probe variant and task cell: the change from OLD to NEW with its interval; exit 1 past --fail-above."""
    if args.fail_above is not None:
        positive("--fail-above", args.fail_above)
    changes = compare(load_results(args.old), load_results(args.new))
    for c in changes:
        print(c.line())
    failing = [c for c in changes if c.resolved and args.fail_above is not None and c.percent > args.fail_above]
    for c in failing:
        print(f"FAIL: {c.what} rose by {c.percent:.1f}% (resolved), above --fail-above {args.fail_above:g}%")
    return 1 if failing else 0


def study_end(results: list[RunResult], out: Path, write: Callable[[list, Path], Path], publish_to: Path | None) -> int:
    """A study's last words: its report (and the published copy), each failed run's line; exit 1 where any failed."""
    print(f"report: {write(results, out)}")
    if publish_to is not None:
        print(f"published: {write(results, publish_to)}")
    failed = [f"{r.run_config.label}: {r.status}: {r.message}" for r in results if not r.ok]
    for line in failed:
        print(f"FAILED: {line}", file=sys.stderr)
    return 1 if failed else 0
