"""The report of `loopbench paycurve`: each point's measured ratio beside the probe's predictions, a table and
a figure of extra time against the plain step time, on log axes. A pure function of the saved runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

import implementations
from loopbench.analysis import stats
from loopbench.analysis.paycurve import analyse
from loopbench.analysis.probe import PROBE
from loopbench.core.store import compact, save_results
from loopbench.core.trainers import DEFAULTS, LEAN
from loopbench.core.types import RunResult
from loopbench.report import markdown, study
from loopbench.report.figures import IMPL_STYLE, TASK_MARKERS, save
from loopbench.report.probe import NAMES, interval_text

MARKERS = {t: m for t, m in TASK_MARKERS.items() if t != PROBE}  # the tasks' points; the probe's are drawn apart


def _ratio(p: dict[str, Any]) -> str:
    if p["low"] is None:
        return f"{p['ratio']:.3f}x (not resolved)" if p["ratio"] else "–"
    return f"{p['ratio']:.3f}x [{p['low']:.3f}, {p['high']:.3f}]"


def _own(p: dict[str, Any]) -> str:
    """The Trainer's own time in place: 'us [95%], share of the step'."""
    if p.get("own_us") is None:
        return "–"
    if p.get("own_low_us") is None:
        return f"{p['own_us']:+,.0f} (no interval)"
    return (f"{p['own_us']:+,.0f} [{p['own_low_us']:+,.0f}, {p['own_high_us']:+,.0f}], "
            f"{p['share']:.1%} [{p['share_low'] * 100:.1f}, {p['share_high'] * 100:.1f}]")  # fmt: skip


def table(a: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for p in a["points"]:
        counted = p.get("instructions_delta")
        row = {
            "point": p["point"],
            "Trainer": p["impl"],
            "plain step (ms)": round(p["step_ms"], 2),
            "measured [95%]": _ratio(p) if p["ratio"] else "–",
            "rounds": p["pairs"],
            "own time in place, us [95%], share of the step": _own(p),
            "counted, M instr./step": "–" if counted is None else f"{counted / 1e6:+.3f}",
            "instr. per us of own time": "–"
            if not p.get("instructions_per_us")
            else f"{p['instructions_per_us']:,.0f}",
        }
        for t in a["threads"]:
            if f"predicted_t{t}" in p:
                verdict = "agrees" if p[f"agrees_t{t}"] else "**disagrees**"
                row[f"probe, {t} thread(s)"] = f"{p[f'predicted_t{t}']:.3f}x: {verdict}"
        rows.append(row)
    return _measured(pd.DataFrame(rows))


def _measured(df: pd.DataFrame) -> pd.DataFrame:
    """The columns that hold a figure (a pay curve from before a measurement was added lacks its columns)."""
    return df.loc[:, [c for c in df.columns if not (df[c] == "–").all()]] if len(df) else df


def probe_table(a: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for t, one in a["probes"].items():
        for shape, v in one["shapes"].items():
            rows.append(
                {"threads": t, "shape": shape, "plain step (us)": round(v["pytorch"]["us_per_step"])}
                | {f"{i} +us [95%]": interval_text(v[i]) for i in (LEAN, DEFAULTS) if i in v}
                | {f"{i} in place [95%]": interval_text(v[i], "in_place_own") for i in (LEAN, DEFAULTS) if i in v}
            )
    return _measured(pd.DataFrame(rows))


def verdicts(a: dict[str, Any]) -> list[str]:
    """The model in one line; per thread count how many points its prediction agrees with, which do not, and per
    task on which side of the prediction its measured ratios lie."""
    out = [
        "- The model: a Lightning step costs T + delta, delta the probe's per-step cost in the task's shape, "
        "whatever the task's plain step T; the predicted ratio is (T + delta) / T."
    ]
    for t in a["threads"]:
        judged = [p for p in a["points"] if f"agrees_t{t}" in p and p["low"] is not None]
        agree = sum(p[f"agrees_t{t}"] for p in judged)
        out.append(f"- The probe at {t} torch thread(s) agrees with {agree} of {len(judged)} resolved points.")
        out += [
            f"  - disagrees: {p['point']}, {p['impl']}: measured {_ratio(p)}, predicted {p[f'predicted_t{t}']:.3f}x"
            for p in judged
            if not p[f"agrees_t{t}"]
        ]
    t = a["threads"][0] if a["threads"] else 1
    for task in dict.fromkeys(p["task"] for p in a["points"] if p["ratio"] and p["task"] != PROBE):
        sides = []
        for impl in (LEAN, DEFAULTS):  # per Trainer: a point's two Trainers share its plain segments (not independent)
            mine = [p for p in a["points"] if (p["task"], p["impl"]) == (task, impl) and p["ratio"]]
            above = sum(p["ratio"] > p[f"predicted_t{t}"] for p in mine if f"predicted_t{t}" in p)
            sides.append(f"{impl} above at {above} of {len(mine)} points (sign test, two-sided: p = "
                         f"{stats.sign_test(above, len(mine)):.2g})")  # fmt: skip
        out.append(f"- {task}, measured against the prediction: {'; '.join(sides)}.")
    return out


def model_lines(a: dict[str, Any]) -> list[str]:
    """The Trainer's own time in place against the plain step: a constant per task (the range that fits all of a
    task's points, each point predicted by the others), beside the probe's; and a + b log10(T), fitted."""
    out = []
    for impl, m in a.get("models", {}).items():
        if m.get("by_task"):
            line = f"- {NAMES[impl]}, in place: own = a constant per task, whatever T: {task_constants(m)}"
            ranges = [m["common_us"]] if m.get("common_us") else [t["common_us"] for t in m["by_task"].values()]
            ranges = [r for r in ranges if r]
            if m.get("probe_own_us") and ranges:
                own, low, high = m["probe_own_us"]
                line += (
                    f". The probe's own time beside them: {own:,.0f} [{low:,.0f}, {high:,.0f}] us; the tasks' "
                    f"constant{'' if len(ranges) == 1 else 's'}: "
                    + " to ".join(
                        dict.fromkeys(f"{x / own:.1f}" for x in (min(r[0] for r in ranges), max(r[1] for r in ranges)))
                    )
                    + " times it"
                )
            out.append(line)
        grows = m["b_us_per_decade"] - m["b_half_us"] > 0
        out.append(
            f"- {NAMES[impl]}, in place over {m['points']} points: fitted, own = {m['a_us']:,.0f} ± "
            f"{m['a_half_us']:,.0f} us + ({m['b_us_per_decade']:+,.0f} ± {m['b_half_us']:,.0f}) us per decade of T "
            f"(T in ms), inside {m['fitted_inside']} of {m['points']}: "
            + ("**the Trainer's time per step grows with the step**" if grows else "no growth shown")
        )
    return out


def task_constants(m: dict[str, Any]) -> str:
    """The per-task constant model in words: each task's range of constants, and each point left out in turn."""
    parts = []
    for task, t in m["by_task"].items():
        fits = f"{t['common_us'][0]:,.0f}-{t['common_us'][1]:,.0f} us fits" if t["common_us"] else "no value fits"
        if t["points"] < 2:
            parts.append(f"{task} {fits} its one point ({t['step_ms'][0]:.3g} ms)")
            continue
        parts.append(
            f"{task} {fits} all {t['points']} points ({t['step_ms'][0]:.3g}-{t['step_ms'][1]:.3g} ms), each "
            f"predicted by the others at {t['predicted']} of {t['points']}"
        )
    both = m.get("common_us")
    one = f"{both[0]:,.0f}-{both[1]:,.0f} us fits every task's points" if both else "no one value fits every task"
    return "; ".join(parts) + f"; {one}"


def plot(a: dict[str, Any], path: Path) -> Path | None:
    if not a["points"]:
        return None
    fig, ax = plt.subplots(figsize=(9, 5.5))
    steps = [p["step_ms"] for p in a["points"]]
    t = np.logspace(np.log10(min(steps) / 2), np.log10(max(steps) * 2), 100)
    handles = []
    for impl in (LEAN, DEFAULTS):
        color = IMPL_STYLE[impl]["color"]
        for threads, style in zip(a["threads"], (":", "-"), strict=False):
            for shape in ("auto", "manual"):
                v = a["probes"][threads]["shapes"].get(shape, {}).get(impl, {})
                if v.get("delta_us") is not None:
                    ax.plot(
                        t, 100 * v["delta_us"] / (t * 1e3), style, color=color, linewidth=1 if shape == "auto" else 0.6
                    )
            handles.append(
                Line2D(
                    [],
                    [],
                    color=color,
                    linestyle=style,
                    label=f"{NAMES[impl]}: the probe at {threads} thread(s) predicts",
                )
            )
    for p in a["points"]:
        y = 100 * (p["ratio"] - 1) if p["ratio"] else None
        if y is None:
            continue
        color, marker = IMPL_STYLE[p["impl"]]["color"], MARKERS.get(p["task"], "o")
        if p["low"] is None:
            ax.plot(p["step_ms"], max(y, 0.05), marker, mfc="none", color=color)
            continue
        err = [[max(y, 0.05) - max(100 * (p["low"] - 1), 0.05)], [max(100 * (p["high"] - 1) - y, 0)]]
        ax.errorbar(p["step_ms"], max(y, 0.05), yerr=err, fmt=marker, color=color, capsize=3)
    handles += [
        Line2D([], [], marker=m, linestyle="", color="black", label=f"{t}: measured (95% interval)")
        for t, m in MARKERS.items()
    ]
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(0.05, 500)
    ax.set_xlabel("the plain loop's time per step, ms (log scale)")
    ax.set_ylabel("extra time per step with Lightning, % (log scale)")
    ax.set_title("The pay curve measured: real tasks against the probe's prediction (CPU)", fontsize=10)
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return save(fig, path)


def plot_own(a: dict[str, Any], path: Path) -> Path | None:
    """The Trainer's own time in place against the plain step, each point with its interval, and the fitted line."""
    pts = [p for p in a["points"] if p.get("own_low_us") is not None]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(9, 5.5))
    t = np.logspace(np.log10(min(p["step_ms"] for p in pts) / 1.5), np.log10(max(p["step_ms"] for p in pts) * 1.5))
    for impl in (LEAN, DEFAULTS):
        color = IMPL_STYLE[impl]["color"]
        for p in (p for p in pts if p["impl"] == impl):
            err = [[p["own_us"] - p["own_low_us"]], [p["own_high_us"] - p["own_us"]]]
            marker = TASK_MARKERS.get(p["task"], "D")
            ax.errorbar(p["step_ms"], p["own_us"], yerr=err, fmt=marker, color=color, capsize=3)
        m = a.get("models", {}).get(impl)
        if m:
            ax.plot(t, m["a_us"] + m["b_us_per_decade"] * np.log10(t), "-", color=color, linewidth=1,
                    label=f"{NAMES[impl]}: fitted a + b log10(T)")  # fmt: skip
            ax.axhline(m["constant_us"], color=color, linestyle=":", linewidth=1, label=f"{NAMES[impl]}: constant")
    handles, _ = ax.get_legend_handles_labels()
    handles += [
        Line2D([], [], marker=m, linestyle="", color="black", label=f"{name}: in place (95% interval)")
        for name, m in (*MARKERS.items(), ("the probe", TASK_MARKERS[PROBE]))
    ]
    ax.set_xscale("log")
    ax.set_xlabel("the plain loop's time per step, ms (log scale)")
    ax.set_ylabel("the Trainer's own time per step, us (in place)")
    ax.set_title("The Trainer's own time per step, measured in place, against the plain step (CPU)", fontsize=10)
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return save(fig, path)


def write(results: list[RunResult], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    a = analyse(results)
    (out / "paycurve.json").write_text(json.dumps(a, indent=1, default=str) + "\n")
    save_results(compact(results), out / "results.json.gz")
    figure = plot(a, out / "paycurve.png")
    shapes = {t: implementations.spec(t).HARNESS.probe_shape for t in implementations.TASKS}
    method = [
        "Each point: a task at a size, its plain step time, and each Trainer's step-time ratio over rounds of "
        "segments P L P D P (median, 95% order-statistic interval), beside the ratio the overhead probe predicts, "
        "(T + delta) / T, with the probe at one torch thread and at the tasks' thread count (the probe's shape: "
        + ", ".join(f"{k} {v}" for k, v in shapes.items())
        + "). *agrees*: the measured interval and the prediction's interval overlap.",
        "",
        "Made by `loopbench paycurve` (loopbench/analysis/paycurve.py; the points are data there).",
        "",
    ]
    lines = []
    if a.get("models"):
        lines += [
            "The Trainer's own time in place: each step split into the model's own work and the rest "
            "(docs/own-module.md), rest(Lightning) - rest(plain) per round, median and 95% order-statistic interval; "
            "the probe is the shortest point. Counted: the Trainer's extra instructions per step, one thread, under "
            "callgrind.",
            "",
            *model_lines(a),
            "",
        ]
    if figure:
        lines += [f"![the pay curve]({figure.name})", ""]
    own_figure = plot_own(a, out / "own_time.png")
    if own_figure:
        lines += [f"![the Trainer's own time in place]({own_figure.name})", ""]
    probe = probe_table(a)
    lines += [
        "## Points",
        "",
        markdown(table(a)),
        "",
        "## The probe, in the same invocation",
        "",
        "Whole-step deltas over paired segments"
        + (", and the Trainer's own time in place," if any("in place" in c for c in probe.columns) else "")
        + " at one torch thread and at the tasks' thread count, in both shapes.",
        "",
        markdown(probe),
        "",
    ]
    path = out / "REPORT.md"
    path.write_text(study("The pay curve, measured", results, lines, method, answer=[*verdicts(a), ""]))
    return path
