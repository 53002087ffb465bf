"""The probe's figures: the ladder as bars (each Trainer default's cost beside the default Trainer's) and the
"what will I pay" curve, (T + delta) / T over a job's plain step T, with each task's measured ratio drawn on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from loopbench.core.trainers import COMPARED
from loopbench.core.types import RunResult
from loopbench.report.figures import TASK_MARKERS, save
from loopbench.report.probe import NAMES, answers, predictors, task_points


def plot_ladder(a: dict[str, Any], path: Path) -> Path | None:
    """The plain loop's step (the baseline), each rung's cost over its base, and the default Trainer's whole
    cost beside the sum of the rungs and the remainder: µs per step, 95% intervals."""
    rows = [dict(r, kind="rung") for r in a["ladder"] if r.get("delta_us") is not None]
    if not rows:
        return None
    for shape, t in a["ladder_totals"].items():
        rows += [
            {"shape": shape, "feature": "sum of the rungs", "delta_us": t["sum_us"], "delta_low_us": t["sum_low_us"],
             "delta_high_us": t["sum_high_us"], "kind": "total"},
            {"shape": shape, "feature": "the default Trainer, all at once", "delta_us": t["defaults_delta_us"],
             "delta_low_us": t["defaults_delta_us"], "delta_high_us": t["defaults_delta_us"], "kind": "total"},
            {"shape": shape, "feature": "remainder (the features together, beyond their parts)",
             "delta_us": t["remainder_us"], "delta_low_us": t["remainder_low_us"],
             "delta_high_us": t["remainder_high_us"], "kind": "total"},
        ]  # fmt: skip
    fig, ax = plt.subplots(figsize=(11, 0.42 * len(rows) + 1.8))
    ys = np.arange(len(rows))
    deltas = np.array([r["delta_us"] for r in rows])
    err = np.array([[r["delta_us"] - r["delta_low_us"], r["delta_high_us"] - r["delta_us"]] for r in rows]).T
    colors = ["#1f77b4" if r["kind"] == "rung" else "#7f7f7f" for r in rows]
    ax.barh(ys, deltas, xerr=np.clip(err, 0, None), color=colors, capsize=3)
    ax.set_yticks(ys, [f"{r['shape']}: {r['feature']}" for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="grey", linewidth=1)
    plain = a["shapes"].get("auto", {}).get("pytorch", {}).get("us_per_step")
    if plain:
        ax.axvline(plain, color="#d62728", linestyle=":", linewidth=1.2)
    ax.set_xlabel("added time per optimizer step, µs (median over rounds; 95% interval)")
    ax.set_title(f"Which part of the Trainer costs what, per step, on {a['device']} (the overhead probe)", fontsize=10)

    handles = [Patch(color="#1f77b4", label="one feature over the Trainer below it"),
               Patch(color="#7f7f7f", label="totals"),
               Line2D([], [], color="#d62728", linestyle=":", label=f"the plain loop's whole step ({plain:,.0f} µs)")
               if plain else Patch(color="white", label="")]  # fmt: skip
    ax.legend(handles=handles, fontsize=7, loc="lower right")
    fig.tight_layout()
    return save(fig, path)


def plot_pay_curve(a: dict[str, Any], points: list[dict[str, Any]], path: Path, styles: dict) -> Path | None:
    """Extra time per step (%) against the plain loop's step time T: the probe's floor (delta / T) for each
    framework, the band of what the task cells paid in place (their own time per step, from the least to the
    most, over T), and each cell's measured ratio (filled: resolved, hollow: not resolved), a marker per task."""
    impls = [i for i in COMPARED if any(v.get(i, {}).get("delta_us") is not None for v in a["shapes"].values())]
    if not impls:
        return None
    steps = [p["step_ms"] for p in points] or [1.0]
    t = np.logspace(np.log10(min(0.1, min(steps) / 3)), np.log10(max(100.0, max(steps) * 3)), 200)  # ms
    fig, ax = plt.subplots(figsize=(9, 5.5))
    handles = []
    for shape, linestyle in (("auto", "-"),):  # the one-optimizer shape; the manual one is in the probe's table
        for impl in impls:
            v, color = a["shapes"].get(shape, {}).get(impl), styles.get(impl, {}).get("color")
            if not v or v.get("delta_us") is None:
                continue
            ax.plot(t, 100 * v["delta_us"] / (t * 1e3), linestyle, color=color, linewidth=1.5 if shape == "auto" else 1)
            low, high = (100 * max(v[k], 1e-3) / (t * 1e3) for k in ("delta_low_us", "delta_high_us"))
            ax.fill_between(t, low, high, color=color, alpha=0.12)
            handles.append(Line2D([], [], color=color, linestyle=linestyle, label=f"{NAMES[impl]}: the floor (probe)"))
    for impl in impls:
        own = [p["own_ms"] for p in points if p["impl"] == impl and p.get("own_ms") is not None and p["own_ms"] > 0]
        if own:  # what the task cells paid, in place: the real jobs' band, drawn as a constant cost over T
            color = styles.get(impl, {}).get("color")
            ax.fill_between(t, 100 * min(own) / t, 100 * max(own) / t, color=color, alpha=0.25, linewidth=0)
            handles.append(
                Patch(facecolor=color, alpha=0.25, label=f"{NAMES[impl]}: what the task cells paid, in place")
            )
    for p in [p for p in points if p.get("pairs", 0) >= 2]:  # a cell of one step, for parity alone, has no ratio
        color, marker = styles.get(p["impl"], {}).get("color"), TASK_MARKERS.get(p["task"], "o")
        y = 100 * (p["ratio"] - 1)
        if pd.isna(p["low"]):
            ax.plot(p["step_ms"], max(y, 0.05), marker, mfc="none", color=color, markersize=7)
        else:
            err = [[max(y - 100 * (p["low"] - 1), 0)], [100 * (p["high"] - 1) - y]]
            ax.errorbar(p["step_ms"], max(y, 0.05), yerr=err, fmt=marker, color=color, capsize=3, markersize=6)
    for level in (1, 10):
        ax.axhline(level, color="grey", linewidth=0.8, linestyle=":")
        ax.annotate(f"+{level}%", (t[0], level), fontsize=8, color="grey", xytext=(2, 2), textcoords="offset points")
    handles += [Line2D([], [], marker=m, linestyle="", color="black", label=f"{task}: whole-step ratio (95% interval)")
                for task, m in TASK_MARKERS.items() if any(p["task"] == task for p in points)]  # fmt: skip
    handles.append(Line2D([], [], marker="o", mfc="none", linestyle="", color="black", label="hollow: not resolved"))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(0.05, 1000)
    ax.set_xlabel("the plain loop's time per step, ms (log scale)")
    ax.set_ylabel("extra time per step with Lightning, % (log scale)")
    ax.set_title(
        f"What will Lightning cost my job? ({a['device']}): extra time per step over the plain step T\n"
        f"(the floor: the probe at {a.get('threads', 1)} torch thread(s); the band: what the task cells paid)",
        fontsize=10,
    )
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return save(fig, path)


def write_figures(
    results: list[RunResult], table: pd.DataFrame | None, ov: pd.DataFrame, out: Path, styles: dict
) -> dict[str, str]:
    """The ladder chart and the pay curve per device the probe ran on: {title: file name}."""
    figures = {}
    predict = predictors(results)
    for device, a in answers(results).items():
        tag = device.replace(":", "")
        if plot_ladder(a, out / f"ladder_{tag}.png"):
            figures[f"The ladder on {device}"] = f"ladder_{tag}.png"
        points = task_points(table, ov, device) if table is not None and len(ov) else []
        if plot_pay_curve(predict.get(device, a), points, out / f"pay_curve_{tag}.png", styles):
            figures[f"What will I pay? ({device})"] = f"pay_curve_{tag}.png"
    return figures
