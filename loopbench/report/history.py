"""The report of `loopbench history`: the Trainer's per-step cost on each Lightning release, what changed
between neighbours (time with its interval, instructions with the count's own noise), the parity checks.
A pure function of the saved runs, like the other reports. A hand-written CAUSES.md beside it (what was
checked for each change) is linked, never overwritten."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from loopbench.analysis.history import COUNT_FLOOR, HEADLINE, across_releases
from loopbench.core.store import compact, save_results
from loopbench.core.trainers import LADDER, PLAIN
from loopbench.core.types import RunResult
from loopbench.report import markdown, study
from loopbench.report.figures import IMPL_STYLE, save
from loopbench.report.probe import NAMES, interval_text

CAUSES = "CAUSES.md"
SHAPE_WORDS = {"auto": "automatic optimization, one optimizer", "manual": "manual optimization, two optimizers"}


def _counted(a: dict[str, Any], shape: str, impl: str) -> float | None:
    c = a["instructions"]["shapes"].get(shape, {}).get(impl, {})
    return c.get("delta")


def cost_table(h: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for version, a in h["releases"].items():
        for shape, v in a["shapes"].items():
            row = {"release": version, "shape": shape, "plain step (us)": round(v[PLAIN]["us_per_step"])}
            for impl in HEADLINE:
                if impl in v:
                    row[f"{impl} +us [95%]"] = interval_text(v[impl])
                    row[f"{impl} rounds"] = v[impl].get("pairs")
                count = _counted(a, shape, impl)
                row[f"{impl} +M instr."] = f"{count / 1e6:+.3f}" if count is not None else "–"
            rows.append(row)
    return pd.DataFrame(rows)


def _change(row: dict[str, Any]) -> tuple[str, str]:
    time = "–"
    if row.get("time_us") is not None:
        time = f"{row['time_us']:+,.0f} [{row['time_low_us']:+,.0f}, {row['time_high_us']:+,.0f}] us"
        time += " **changed**" if row["time_changed"] else ", no change resolved"
    count = "–"
    if row.get("count_change") is not None:
        count = f"{row['count_change'] / 1e6:+.3f} M ({row['count_percent']:+.1f}%)"
        count += " **changed**" if row["count_changed"] else ", within the count's noise"
    return time, count


def changes_table(h: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for row in h["changes"]:
        time, count = _change(row)
        rows.append(
            {
                "from": row["old"],
                "to": row["new"],
                "shape": row["shape"],
                "Trainer": row["impl"],
                "time per step [95%]": time,
                "rounds": row["pairs"],
                "instructions per step": count,
            }
        )
    return pd.DataFrame(rows)


def parity_table(h: dict[str, Any]) -> pd.DataFrame:
    rows = {}
    for p in h["parity"]:
        cell = p["task"] + (f" ({p['shape']})" if p.get("shape") else "") + f", {p['precision']}"
        ok = p.get("holds")
        rows.setdefault(p["release"], {"release": p["release"]})[cell] = (
            p["verdict"] if ok else f"**{p['verdict']}**" if ok is False else p["verdict"]
        )
    return pd.DataFrame(list(rows.values()))


def ladder_table(h: dict[str, Any]) -> pd.DataFrame:
    """One row per rung, a column per release: the rung's instructions over its base (and its time, where the
    ladder was timed)."""
    rows = []
    for rung in LADDER:
        row = {"rung": rung.feature}
        for version, a in h["releases"].items():
            counts = a["instructions"]["shapes"].get("auto", {})
            timed = next((t for t in a["ladder"] if t["impl"] == rung.impl and t["shape"] == "auto"), None)
            cell = []
            if rung.impl in counts and rung.base in counts:
                cell.append(f"{(counts[rung.impl]['per_step'] - counts[rung.base]['per_step']) / 1e6:+.2f} M")
            if timed:
                cell.append(f"{interval_text(timed)} us")
            row[version] = "; ".join(cell) or "–"
        if any(v != "–" for k, v in row.items() if k != "rung"):
            rows.append(row)
    return pd.DataFrame(rows)


def headline(h: dict[str, Any]) -> list[str]:
    """The first and last release's cost in instructions and time, and every adjacent change that was resolved."""
    versions = list(h["releases"])
    if not versions:
        return ["No release was measured."]
    first, last = h["releases"][versions[0]], h["releases"][versions[-1]]
    out = []
    for impl in HEADLINE:
        a, b = _counted(first, "auto", impl), _counted(last, "auto", impl)
        ta = first["shapes"].get("auto", {}).get(impl, {})
        tb = last["shapes"].get("auto", {}).get(impl, {})
        if a and b:
            out.append(
                f"- {_sentence(NAMES[impl])} (automatic optimization): {a / 1e6:+.2f} M instructions per step "
                f"over the plain loop on {versions[0]}, {b / 1e6:+.2f} M on {versions[-1]} ({(b - a) / a:+.0%}); "
                f"in time {interval_text(ta)} us and {interval_text(tb)} us."
            )
    moved = [r for r in h["changes"] if r.get("count_changed") or r.get("time_changed")]
    for r in moved:
        time, count = _change(r)
        out.append(f"- {r['old']} -> {r['new']}, {r['shape']}, {r['impl']}: instructions {count}; time {time}.")
    timed = [r for r in h["changes"] if r.get("time_us") is not None]
    alone = [r for r in moved if r.get("time_changed") and r.get("count_changed") is False]
    if alone:
        names = ", ".join(f"{r['old']} -> {r['new']} {r['shape']} {r['impl']}" for r in alone)
        out.append(
            f"- Of {len(timed)} time intervals at 95%, about {len(timed) / 20:.0f} exclude 0 by chance alone; a time "
            f"change whose instruction count did not move ({names}) is most likely one of them."
        )
    if not moved and len(versions) > 1:
        out.append("- No adjacent pair of releases changed the cost per step beyond the noise of either measure.")
    return out


def _sentence(words: str) -> str:
    return words[0].upper() + words[1:]


def plot(h: dict[str, Any], path: Path) -> Path | None:
    versions = list(h["releases"])
    if len(versions) < 2:
        return None
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    x = range(len(versions))
    for impl in HEADLINE:
        style = IMPL_STYLE[impl]
        for shape, marker in (("auto", "o"), ("manual", "s")):
            label = f"{impl} ({shape})"
            vals = [h["releases"][v]["shapes"].get(shape, {}).get(impl, {}) for v in versions]
            mid = [v.get("delta_us") for v in vals]
            if any(m is not None for m in mid):
                err = [
                    [(m - v["delta_low_us"]) if m is not None else 0 for m, v in zip(mid, vals, strict=True)],
                    [(v["delta_high_us"] - m) if m is not None else 0 for m, v in zip(mid, vals, strict=True)],
                ]
                top.errorbar(
                    x,
                    [m if m is not None else float("nan") for m in mid],
                    yerr=err,
                    marker=marker,
                    color=style["color"],
                    linestyle=style["linestyle"] if shape == "auto" else "-.",
                    capsize=3,
                    label=label,
                )
            counts = [_counted(h["releases"][v], shape, impl) for v in versions]
            if any(c is not None for c in counts):
                bottom.plot(
                    x,
                    [c / 1e6 if c is not None else float("nan") for c in counts],
                    marker=marker,
                    color=style["color"],
                    linestyle=style["linestyle"] if shape == "auto" else "-.",
                    label=label,
                )
    top.set_title("What the Trainer adds per step, by Lightning release (overhead probe, one torch thread)")
    top.set_ylabel("extra time per step (us), 95% interval")
    bottom.set_ylabel("extra instructions per step (millions)")
    bottom.set_xlabel("pytorch-lightning release")
    bottom.set_xticks(list(x), versions, rotation=30)
    for ax in (top, bottom):
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="upper left")
    return save(fig, path)


def render(h: dict[str, Any], results: list[RunResult], figure: Path | None, causes: bool) -> str:
    some = next(iter(h["releases"].values()), {})
    answer = [
        f"- **Releases:** {', '.join(h['releases'])} (as each run imported them; `pytorch_lightning.__version__`)",
        f"- **Rounds:** {some.get('rounds', 0)} ({h.get('stopped', '?')}; target half-width "
        f"{h.get('target', 0):.0%}, budget {h.get('budget_s', 0):.0f} s, {h.get('timed_s', 0):.0f} s timed)",
        "",
        "## Headline",
        "",
        *headline(h),
        "",
    ]
    method = [
        "Instruction counts are the regression signal: two counts of the same variant on the same release "
        "differed by at most "
        + ", ".join(f"{n / 1e3:,.0f} k ({s})" for s, n in h["count_noise"].items() if n)
        + " instructions per step; times are what a user feels, with their 95% intervals. "
        + (f"What was checked for each change: [{CAUSES}]({CAUSES})." if causes else ""),
        "",
        "Method: loopbench/studies/history.py and docs/releases.md. Versions are installed hash-checked from "
        "loopbench/core/releases.py into `$LOOPBENCH_CACHE/lightning/<version>`.",
        "",
    ]
    lines = []
    if figure:
        lines += [f"![cost per release]({figure.name})", ""]
    lines += [
        "## Per-step cost per release",
        "",
        "Each Trainer's cost over the plain loop run beside it (median of per-round deltas; "
        "instructions: the mean of two counts of 64 steps each).",
        "",
        markdown(cost_table(h)),
        "",
    ]
    lines += [
        "## What changed between adjacent releases",
        "",
        "Time: per round, the newer release's delta minus the older's (same round, processes next to each "
        "other), median with a 95% order-statistic interval; *changed* where it excludes 0. Instructions: "
        "the Trainer's own count (variant minus plain, each the mean of two counts); *changed* where the "
        f"difference exceeds both what a count moves by itself (above) and {COUNT_FLOOR:.1%} of the "
        "count.",
        "",
        markdown(changes_table(h)),
        "",
    ]
    if h["parity"]:
        lines += [
            "## Parity on every release",
            "",
            "The lean Trainer against the plain loop (smoke preset: 12 or more steps, seed 0, CPU), per "
            "release; the plain loop runs once per cell (it does not import Lightning).",
            "",
            markdown(parity_table(h)),
            "",
        ]
    ladder = ladder_table(h)
    if not ladder.empty:
        lines += [
            "## The ladder per release",
            "",
            "What each part of the Trainer adds per step over the rung "
            "below it (automatic optimization): instructions in millions per step (the mean of two counts), "
            "and time in us [95%] where the ladder was timed (--ladder).",
            "",
            markdown(ladder),
            "",
        ]
    if h["failed"] or h["unsupported"]:
        lines += ["## Not measured", ""] + [f"- failed: {f}" for f in h["failed"]]
        lines += [f"- unsupported: {u}" for u in h["unsupported"]] + [""]
    return study("Lightning across its releases: what the Trainer costs per step", results, lines, method, answer)


def write(results: list[RunResult], out: Path, device: str = "cpu", measured: dict[str, Any] | None = None) -> Path:
    """REPORT.md, history.json, results.json and the figure in `out`; returns REPORT.md's path."""
    out.mkdir(parents=True, exist_ok=True)
    h = across_releases(results, device)
    if measured:
        h |= {k: measured[k] for k in ("stopped", "target", "budget_s", "timed_s") if k in measured}
    (out / "history.json").write_text(json.dumps(h, indent=1) + "\n")
    save_results(compact(results), out / "results.json.gz")
    figure = plot(h, out / "history.png")
    path = out / "REPORT.md"
    path.write_text(render(h, results, figure, (out / CAUSES).exists()))
    return path
