"""The report's answer to "what does the Trainer cost me per step?", from the overhead probe's runs.

A headline sentence, the probe's table per shape, the ladder (each Trainer default's cost, their sum
beside the default Trainer's), a bar chart of the ladder and the "what will I pay" curve: the
overhead delta / T that a job whose plain step takes T pays, with each task's measured ratio drawn
on it. Pure functions of the saved results, like the rest of the report.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

import implementations
from loopbench.overhead import HEADLINE_IMPLS, PROBE, STEP_MEANS, answer, predicted_ratio
from loopbench.report.figures import _save
from loopbench.trainers import DEFAULTS, LEAN
from loopbench.types import RunResult

NAMES = {LEAN: "the lean Trainer", DEFAULTS: "the default Trainer (with `self.log` every step)"}


def _threads(r: RunResult) -> int:
    return r.config["overrides"].get("threads", 1)


def answers(results: list[RunResult], threads: int = 1) -> dict[str, dict[str, Any]]:
    """{device: the probe's answer at `threads` torch threads} for every device the probe ran on there."""
    probe = [r for r in results if r.config["task"] == PROBE and _threads(r) == threads]
    out = {}
    for device in dict.fromkeys(r.config["device"] for r in probe):
        runs = [r for r in probe if r.config["device"] == device]
        a = answer(runs, device)
        if a["shapes"]:
            out[device] = a | {"threads": threads}
    return out


def predictors(results: list[RunResult]) -> dict[str, dict[str, Any]]:
    """{device: the probe's answer that predicts the tasks}: the probe at the tasks' thread count where it ran
    there (what the pay curve and the GAN's thread experiment found holds), else at one thread."""
    tasks = [r for r in results if r.config["task"] != PROBE and r.ok and r.env.get("torch_threads")]
    out = answers(results)
    for threads in sorted({r.env["torch_threads"] for r in tasks}):
        out |= answers(results, threads)
    return out


def _interval(v: dict[str, Any], key: str = "delta") -> str:
    if v.get(f"{key}_us") is None:
        return "–"
    return f"{v[f'{key}_us']:+,.0f} [{v[f'{key}_low_us']:+,.0f}, {v[f'{key}_high_us']:+,.0f}]"


def headline_sentence(device: str, a: dict[str, Any]) -> str:
    auto = a["shapes"].get("auto") or next(iter(a["shapes"].values()))
    parts = [f"{NAMES[i]} {_interval(auto[i])} us" for i in (LEAN, DEFAULTS) if i in auto]
    steal = a.get("cpu_steal_max")
    counts = a.get("instructions", {}).get("shapes", {}).get("auto", {})
    counted = [f"{counts[i]['delta'] / 1e6:+.2f} M" for i in (LEAN, DEFAULTS) if counts.get(i, {}).get("delta")]
    return (
        f"**On this machine ({device}), per optimizer step, {' and '.join(parts)}** over the plain loop's "
        f"{auto['pytorch']['us_per_step']:,.0f} us (the overhead probe: a near-zero-compute job, one torch "
        + (
            f"thread, {a['rounds']} rounds, 95% intervals over paired segments"
            if a.get("method") == "rounds"
            else f"thread, {a['rounds']} fresh processes per variant, 95% intervals over paired runs"
        )
        + (f"; CPU steal at most {steal:.1%} of the machine's time during any run" if steal is not None else "")
        + ")"
        + (
            f"; counted, the two cost {' and '.join(counted)} instructions per step more than the plain loop's "
            f"{counts['pytorch']['per_step'] / 1e6:.2f} M, on any machine with these versions"
            if len(counted) == 2 and "pytorch" in counts
            else ""
        )
        + ". A job whose plain step takes T pays about that delta / T."
    )


def probe_table(a: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for shape, impls in a["shapes"].items():
        for impl in HEADLINE_IMPLS:
            if impl in impls:
                v = impls[impl]
                rows.append(
                    {
                        "shape (a step is)": f"{shape} ({STEP_MEANS[shape]})",
                        "implementation": impl,
                        "us/step (median)": v["us_per_step"],
                        "delta us/step [95% CI]": _interval(v),
                        "delta, window mean [95% CI]": _interval(v, "mean_delta"),
                        "host us/step": v["host_us_per_step"],
                        "segments": v["runs"],
                    }
                )
    return pd.DataFrame(rows)


def ladder_table(a: dict[str, Any]) -> pd.DataFrame:
    rows = [
        {
            "shape": row["shape"],
            "what is turned on": row["feature"],
            "measured against": row["base"],
            "us/step [95% CI]": _interval(row),
            "window mean [95% CI]": _interval(row, "mean_delta"),
        }
        for row in a["ladder"]
    ]
    for shape, t in a["ladder_totals"].items():
        total = f"{t['sum_us']:+,.0f} [{t['sum_low_us']:+,.0f}, {t['sum_high_us']:+,.0f}]"
        rest = f"{t['remainder_us']:+,.0f} [{t['remainder_low_us']:+,.0f}, {t['remainder_high_us']:+,.0f}]"
        rows += [
            {"shape": shape, "what is turned on": "**sum of the rungs**", "us/step [95% CI]": total},
            {
                "shape": shape,
                "what is turned on": "**the default Trainer** (all of it at once)",
                "measured against": "pytorch",
                "us/step [95% CI]": f"{t['defaults_delta_us']:+,.0f}",
            },
            {"shape": shape, "what is turned on": "remainder (interactions)", "us/step [95% CI]": rest},
        ]
    return pd.DataFrame(rows)


def task_points(table: pd.DataFrame, ov: pd.DataFrame, device: str) -> list[dict[str, Any]]:
    """Each task cell's plain step time, its measured Lightning ratios and the probe's prediction."""
    points = []
    plain = table[(table.impl == "pytorch") & (table.device == device)]
    for _, row in plain.iterrows():
        step_ms = row.get("median step ms")
        if step_ms is None or pd.isna(step_ms):
            continue
        for _, o in ov[(ov.task == row.task) & (ov.device == device) & (ov.precision == row.precision)].iterrows():
            points.append(
                {
                    "task": row.task,
                    "precision": row.precision,
                    "impl": o.impl,
                    "step_ms": step_ms,
                    "host_ms": row.get("host step ms"),
                    "ratio": o["step-time ratio"],
                    "low": o["95% CI low"],
                    "high": o["95% CI high"],
                }
            )
    return points


def prediction(
    a: dict[str, Any] | None, task: str, impl: str, step_ms: float, host_ms: float | None, delta: str = "delta"
) -> float | None:
    """The ratio the probe predicts for a task cell, or None without a probe answer for its shape; `delta`:
    "delta_low" or "delta_high" for the ends of the prediction's interval (from the probe's delta's)."""
    if a is None or task not in implementations.TASKS:
        return None
    v = a["shapes"].get(implementations.spec(task).PROBE_SHAPE, {}).get(impl)
    if not v or v.get(f"{delta}_us") is None:
        return None
    host = host_ms * 1e-3 if host_ms is not None and not pd.isna(host_ms) else None
    return predicted_ratio(step_ms * 1e-3, host, v[f"{delta}_us"])


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
    from matplotlib.patches import Patch

    handles = [Patch(color="#1f77b4", label="one feature over the Trainer below it"),
               Patch(color="#7f7f7f", label="totals"),
               Line2D([], [], color="#d62728", linestyle=":", label=f"the plain loop's whole step ({plain:,.0f} µs)")
               if plain else Patch(color="white", label="")]  # fmt: skip
    ax.legend(handles=handles, fontsize=7, loc="lower right")
    fig.tight_layout()
    return _save(fig, path)


def plot_pay_curve(a: dict[str, Any], points: list[dict[str, Any]], path: Path, styles: dict) -> Path | None:
    """Extra time per step (%) against the plain loop's step time: the probe's prediction for both Trainers,
    each task cell's measured ratio on it (filled: resolved, hollow: not resolved, x: one pair or fewer)."""
    impls = [i for i in (LEAN, DEFAULTS) if any(v.get(i, {}).get("delta_us") is not None for v in a["shapes"].values())]
    if not impls:
        return None
    steps = [p["step_ms"] for p in points] or [1.0]
    t = np.logspace(np.log10(min(0.1, min(steps) / 3)), np.log10(max(100.0, max(steps) * 3)), 200)  # ms
    fig, ax = plt.subplots(figsize=(9, 5.5))
    handles = []
    for shape, linestyle in (("auto", "-"), ("manual", "--")):
        for impl in impls:
            v, color = a["shapes"].get(shape, {}).get(impl), styles.get(impl, {}).get("color")
            if not v or v.get("delta_us") is None:
                continue
            ax.plot(t, 100 * v["delta_us"] / (t * 1e3), linestyle, color=color, linewidth=1.5 if shape == "auto" else 1)
            low, high = (100 * max(v[k], 1e-3) / (t * 1e3) for k in ("delta_low_us", "delta_high_us"))
            ax.fill_between(t, low, high, color=color, alpha=0.12)
            what = "one optimizer" if shape == "auto" else "two optimizers, manual"
            handles.append(Line2D([], [], color=color, linestyle=linestyle, label=f"{NAMES[impl]}, {what}: predicted"))
    for p in points:
        color = styles.get(p["impl"], {}).get("color")
        y = 100 * (p["ratio"] - 1)
        if pd.isna(p["low"]):
            ax.plot(p["step_ms"], max(y, 0.05), "o", mfc="none", color=color, markersize=7)
        else:
            err = [[max(y - 100 * (p["low"] - 1), 0)], [100 * (p["high"] - 1) - y]]
            ax.errorbar(p["step_ms"], max(y, 0.05), yerr=err, fmt="o", color=color, capsize=3, markersize=6)
    for level in (1, 10):
        ax.axhline(level, color="grey", linewidth=0.8, linestyle=":")
        ax.annotate(f"+{level}%", (t[0], level), fontsize=8, color="grey", xytext=(2, 2), textcoords="offset points")
    handles += [
        Line2D([], [], marker="o", linestyle="", color="black", label="a task cell, measured (95% interval)"),
        Line2D([], [], marker="o", mfc="none", linestyle="", color="black", label="a task cell, not resolved"),
    ]
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(0.05, 1000)
    ax.set_xlabel("the plain loop's time per step, ms (log scale)")
    ax.set_ylabel("extra time per step with Lightning, % (log scale)")
    ax.set_title(
        f"What will Lightning cost my job? ({a['device']}): the probe's fixed cost per step over T "
        f"(the probe at {a.get('threads', 1)} torch thread(s))",
        fontsize=10,
    )
    ax.legend(handles=handles, fontsize=7, loc="upper right")
    fig.tight_layout()
    return _save(fig, path)


def parity_line(results: list[RunResult], device: str) -> str:
    """Whether every probe variant trained exactly the plain loop's weights (each shape, first runs)."""
    firsts: dict[tuple[str, str], RunResult] = {}
    for r in results:
        if r.ok and r.config["task"] == PROBE and r.config["device"] == device:
            firsts.setdefault((r.config["overrides"].get("shape", "auto"), r.config["impl"]), r)
    plain = {shape: r for (shape, impl), r in firsts.items() if impl == "pytorch"}
    differ = [
        f"{impl} ({shape})"
        for (shape, impl), r in firsts.items()
        if impl != "pytorch" and shape in plain and r.weights_digest != plain[shape].weights_digest
    ]
    if differ:
        return f"**Not the same work:** {', '.join(differ)} ended with weights other than the plain loop's."
    return f"Every variant ended with bitwise the plain loop's weights ({len(firsts) - len(plain)} variants checked)."


def _method(a: dict[str, Any]) -> str:
    if a["method"] == "rounds":
        return (
            f"{a['rounds']} rounds, each one process (forked from a server with torch and Lightning imported) "
            f"running short segments of {a['steps']} steps ({a['warmup_steps']} warm-up) of the plain loop "
            "around every variant: P V1 P V2 ... P. A variant's delta in a round is its median step minus the "
            "mean of the plain segments just before and after it (within a second, in the same process); a "
            "pair with a segment whose two halves differ by more than 50% was hit "
            "by the machine's drift and is left out "
            f"({len(a['left_out'])} here). delta = the median over rounds, with a distribution-free 95% interval "
            "(order statistics)."
        )
    return (
        f"{a['steps']} steps per run, {a['rounds']} runs per variant, each a fresh process; each Lightning run "
        "paired with the plain run of its repeat (saved before the probe ran in rounds)."
    )


def instruction_table(a: dict[str, Any]) -> pd.DataFrame:
    """Instructions per step of each counted variant, its difference to the plain loop and its rate."""
    rows = [
        {
            "shape": shape,
            "implementation": impl,
            "M instructions/step": c["per_step"] / 1e6,
            "delta, M/step": c["delta"] / 1e6 if c.get("delta") is not None and impl != "pytorch" else None,
            "instructions per us of its time": c.get("per_us"),
        }
        for shape, counts in a.get("instructions", {}).get("shapes", {}).items()
        for impl, c in counts.items()
    ]
    return pd.DataFrame(rows)


def section(
    device: str, a: dict[str, Any], results: list[RunResult], figures: dict[str, str], md: Callable
) -> list[str]:
    """The probe's part of REPORT.md for one device; `md` renders a table."""
    out = [
        f"### What the Trainer costs per step on {device}: the overhead probe",
        "",
        "`Linear(8, 1)` on batches of 8 from memory, one torch thread (the Trainer's own work is "
        "single-threaded Python; the tasks run on all cores), so a step's time is mostly the framework's. "
        + _method(a)
        + " `window mean` spreads what happens between steps (epoch ends, checkpoint writes) over the steps. "
        + parity_line(results, device)
        + (
            f" Left out: the repeats of {'; '.join(a['disturbed'])} (a run that gets less than 80% of a CPU "
            "was kept off it by another process or the hypervisor; its pair says nothing about the Trainer)."
            if a.get("disturbed")
            else " No run was kept off the CPU (each got at least 80% of one)."
        ),
        "",
        md(probe_table(a), ",.0f"),
        "",
        *_instruction_part(a, md),
        "#### The ladder: which part of the Trainer costs what",
        "",
        "From the plain loop to `Trainer(barebones=True)`, from there to the lean Trainer, then each default "
        "turned on alone on top of the lean Trainer, each measured against the variant below it. The sum of "
        "the rungs stands beside the default Trainer's own delta; the remainder is what the features cost "
        "together beyond their parts (e.g. the logger writing what `self.log` collects).",
        "",
        md(ladder_table(a), ",.0f"),
        "",
    ]
    for title, name in figures.items():
        if name.endswith(f"_{device.replace(':', '')}.png"):
            out += [f"#### {title}", "", f"![{title}]({name})", ""]
    return out


def _instruction_part(a: dict[str, Any], md: Callable) -> list[str]:
    table = instruction_table(a)
    if not len(table):
        why = a.get("instructions", {}).get("unavailable")
        return [f"Instruction counts: none ({why})." if why else "Instruction counts: none in these results.", ""]
    return [
        "Instructions per step, counted under valgrind's callgrind over one epoch of 64 steps after 20 warm-up "
        "steps (one count per variant: it moves by under 3% between runs of the same code and inputs, whatever the "
        "neighbours do). The rate turns counts into this machine's time: instructions per microsecond of the "
        "variant's median step above.",
        "",
        md(table, ",.3f"),
        "",
    ]


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
