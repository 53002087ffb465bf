"""What dynamo made of each compiled run, in words: its reasons merged and counted, and, across Lightning's
releases, what each release made of the same code (graphs, graph breaks, recompiles) and where that changed."""

from __future__ import annotations

import re

import pandas as pd

from loopbench.analysis.grouping import release_of, release_order
from loopbench.analysis.parity import compare_cell
from loopbench.core.trainers import PLAIN
from loopbench.core.types import RunResult


def reasons(counts: dict[str, int] | list[str]) -> str:
    """Distinct reasons with their counts, the most frequent first."""
    if isinstance(counts, list):
        counts = {reason: counts.count(reason) for reason in counts}
    merged: dict[str, int] = {}  # by the first line, less the frame and object ids (the rest names the code)
    for reason, n in counts.items():
        first = re.sub(r"\d{6,}", "<id>", re.sub(r"^\d+/\d+: ", "", reason.splitlines()[0]))[:160]
        merged[first] = merged.get(first, 0) + n
    ordered = sorted(merged.items(), key=lambda kv: -kv[1])
    return "; ".join(f"{n} x {reason}" for reason, n in ordered) or "none"


def releases(results: list[RunResult]) -> list[str]:
    """The Lightning releases the compiled Lightning runs imported, oldest first."""
    found = {release_of(r) for r in results if r.config["impl"] != PLAIN and r.config.get("compile", "off") != "off"}
    return sorted(found, key=release_order)


def _by_variant(results: list[RunResult]) -> dict[tuple[str, str, str], dict[str, RunResult]]:
    """{(task, impl, mode): {release: its first run}} of the compiled Lightning runs."""
    out: dict[tuple[str, str, str], dict[str, RunResult]] = {}
    for r in results:
        mode = r.config.get("compile", "off")
        if r.config["impl"] != PLAIN and mode != "off":
            out.setdefault((r.config["task"], r.config["impl"], mode), {}).setdefault(release_of(r), r)
    return out


def _counts(r: RunResult) -> str:
    if not r.ok:
        return r.status
    made = r.compiled
    return f"{made['graphs']} / {sum(made['graph_breaks'].values())} / {len(made['recompiles'])}"


def _what(r: RunResult) -> str:
    if not r.ok:
        return f"{r.status}: {r.message.splitlines()[0][:200] if r.message else ''}"
    return f"breaks: {reasons(r.compiled['graph_breaks'])}; recompiles: {reasons(r.compiled['recompiles'])}"


def _marked(r: RunResult, eager: RunResult | None) -> str:
    """The run's counts, `*` where it did not train the plain loop's bits in eager mode."""
    differs = r.ok and eager is not None and eager.ok and compare_cell(eager, r).verdict != "bitwise"
    return _counts(r) + (" *" if differs else "")


def table(results: list[RunResult]) -> pd.DataFrame:
    """Per task, implementation and mode, each release's `graphs / graph breaks / recompiles` (`*`: not the bits of
    the plain loop in eager mode), or its failure."""
    order = releases(results)
    eager = {r.config["task"]: r for r in results if r.config["impl"] == PLAIN and r.config.get("compile") == "off"}
    rows = []
    for (task, impl, mode), runs in _by_variant(results).items():
        row = {"task": task, "implementation": impl, "compile": mode}
        rows.append(row | {v: _marked(runs[v], eager.get(task)) if v in runs else "–" for v in order})
    return pd.DataFrame(rows)


def changes(results: list[RunResult]) -> list[str]:
    """Per variant, the releases grouped by what dynamo made of them (consecutive releases alike, one group)."""
    lines = []
    for (task, impl, mode), runs in _by_variant(results).items():
        groups: list[tuple[list[str], str]] = []
        for v in sorted(runs, key=release_order):
            what = _what(runs[v])
            if groups and groups[-1][1] == what:
                groups[-1][0].append(v)
            else:
                groups.append(([v], what))
        span = [f"{g[0]}" if len(g) == 1 else f"{g[0]} to {g[-1]}" for g, _ in groups]
        if len(groups) == 1:
            lines.append(f"- {task}, {impl} `{mode}`: the same on every release ({span[0]}): {groups[0][1]}")
        else:
            lines.append(
                f"- {task}, {impl} `{mode}`: "
                + " | ".join(f"**{s}**: {w}" for s, (_, w) in zip(span, groups, strict=True))
            )
    return lines
