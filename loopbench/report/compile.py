"""The compile report: per task, each implementation compiled as its framework documents (and a Trainer's
module's own nets, `inner`), beside the plain loop compiled and in eager mode.

Per row: the first step (where dynamo traces and the backend compiles, from a cold cache), the steady step
after warm-up, its ratio to the compiled plain loop's and to the eager plain loop's over runs paired by
repeat (t interval), what dynamo made (graphs, graph breaks and recompiles, with torch's reasons), and
parity against both plain loops. Pure functions of saved results, like the rest of the report.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import ScalarFormatter

from loopbench.analysis import stats
from loopbench.analysis.grouping import release_of
from loopbench.analysis.parity import compare_cell
from loopbench.analysis.probe import PROBE
from loopbench.core.store import compact, save_results
from loopbench.core.trainers import PLAIN, is_lightning
from loopbench.core.types import RunResult
from loopbench.report import dynamo, markdown, study
from loopbench.report.figures import IMPL_STYLE, save


def _key(r: RunResult) -> tuple[str, str, str, str]:
    """Task, implementation, compile mode and Lightning release ("" for the installed one)."""
    return r.config["task"], r.config["impl"], r.config.get("compile", "off"), r.config.get("lightning") or ""


def _first_steps(runs: list[RunResult], cache: str) -> float | None:
    """The median first step (the compile) of the runs that found their cache `cache` (eager runs: as cold)."""
    first = [r.step_times_s[0] for r in runs if r.step_times_s and r.compiled.get("cache", "cold") == cache]
    return statistics.median(first) if first else None


def _by_repeat(runs: list[RunResult]) -> dict[int, float]:
    return {r.config["repeat"]: r.step_time_median_s for r in runs if r.ok and r.step_time_median_s}


def _ratio(ref: list[RunResult], mine: list[RunResult], more_work: bool) -> str:
    a, b = _by_repeat(ref), _by_repeat(mine)
    pairs = [(a[k], b[k]) for k in sorted(a.keys() & b.keys())]
    return stats.paired_ratio(pairs, more_work=more_work).label() if pairs else "–"


def _parity(ref: list[RunResult], mine: list[RunResult]) -> str:
    ref, mine = [r for r in ref if r.ok], [r for r in mine if r.ok]
    if not ref or not mine or ref[0] is mine[0]:
        return "–"
    p = compare_cell(ref[0], mine[0])
    return p.verdict if p.verdict == "bitwise" else f"{p.verdict} (max |loss diff| {p.max_abs_loss_diff:.2g})"


def _groups(results: list[RunResult]) -> dict[tuple[str, str, str, str], list[RunResult]]:
    groups: dict[tuple[str, str, str, str], list[RunResult]] = {}
    for r in results:
        groups.setdefault(_key(r), []).append(r)
    return groups


def _steady(runs: list[RunResult]) -> float | None:
    times = [r.step_time_median_s for r in runs if r.ok and r.step_time_median_s]
    return statistics.median(times) if times else None


def curve(results: list[RunResult]) -> list[dict[str, Any]]:
    """The compiled steps on the pay curve: per task and compiled Lightning variant (installed release), the
    measured ratio to the compiled plain step T beside what the probe, compiled the same way in the same study,
    predicts: (T + delta) / T, delta = steady(variant) - steady(plain compiled) of the probe, paired by repeat."""
    groups, points = _groups(results), []
    for (task, impl, mode, release), runs in groups.items():
        plain = groups.get((task, PLAIN, "on", ""), [])
        if impl == PLAIN or mode == "off" or release or not (t := _steady(plain)):
            continue
        a, b = _by_repeat(groups.get((PROBE, PLAIN, "on", ""), [])), _by_repeat(groups.get((PROBE, impl, mode, ""), []))
        deltas = [b[k] - a[k] for k in sorted(a.keys() & b.keys())]
        a, b = _by_repeat(plain), _by_repeat(runs)
        pairs = [(a[k], b[k]) for k in sorted(a.keys() & b.keys())]
        if len(deltas) < 2 or not pairs:
            continue
        d, ratio = stats.robust_difference(deltas), stats.paired_ratio(pairs, more_work=is_lightning(impl))
        predicted = (1 + d.delta / t, 1 + d.low / t, 1 + d.high / t)
        points.append(
            {"task": task, "impl": impl, "compile": mode, "step_ms": t * 1e3, "ratio": ratio.ratio,
             "low": ratio.low, "high": ratio.high, "delta_us": d.delta * 1e6, "predicted": predicted[0],
             "predicted_low": predicted[1], "predicted_high": predicted[2],
             "verdict": "–" if task == PROBE else stats.agreement(ratio.low, ratio.high, *predicted[1:])}
        )  # fmt: skip
    return points


def curve_lines(points: list[dict[str, Any]]) -> list[str]:
    out = []
    for p in points:
        if p["task"] == PROBE:
            continue
        measured = f"{p['ratio']:.3f}x" + (f" [{p['low']:.3f}, {p['high']:.3f}]" if p["low"] is not None else "")
        out.append(
            f"- {p['task']}, {p['impl']} compiled `{p['compile']}`: plain step {p['step_ms']:.3g} ms, measured "
            f"{measured}; the compiled probe's {p['delta_us']:+,.0f} us predicts {p['predicted']:.3f}x "
            f"[{p['predicted_low']:.3f}, {p['predicted_high']:.3f}]: {p['verdict']}"
        )
    widths = [100 * (p["high"] - p["low"]) / 2 / p["ratio"] for p in points if p["low"] is not None]
    if widths:
        out.append(
            f"- The measured intervals' half-widths run from {min(widths):.0f}% to {max(widths):.0f}% of the ratio "
            "(a few fresh-process pairs, each with its own compile): where they are this wide, `agrees` places the "
            "compiled steps on the curve and does not test it. The probe runs in its automatic shape; a task "
            "with manual optimization (the GAN) pays more (see the eager probe's two shapes)."
        )
    return out


def plot_curve(points: list[dict[str, Any]], path: Path) -> Path | None:
    """Measured ratio against the compiled plain step, each compiled variant's probe prediction as a curve."""
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(9, 5.5))
    t = np.logspace(np.log10(min(p["step_ms"] for p in points) / 2), np.log10(max(p["step_ms"] for p in points) * 2))
    for p in points:
        style = IMPL_STYLE.get(p["impl"], {})
        if p["task"] == PROBE:
            label = f"{p['impl']} `{p['compile']}`: the compiled probe predicts"
            width = 1.6 if p["compile"] == "on" else 0.8
            ax.plot(t, 1 + p["delta_us"] / (t * 1e3), style.get("linestyle", "-"), color=style.get("color"),
                    linewidth=width, label=label)  # fmt: skip
        yerr = None if p["low"] is None else [[p["ratio"] - p["low"]], [p["high"] - p["ratio"]]]
        marker = "o" if p["compile"] == "on" else "s"
        ax.errorbar(p["step_ms"], p["ratio"], yerr=yerr, fmt=marker, color=style.get("color"), capsize=3)
    ax.axhline(1.0, color="grey", linewidth=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(ScalarFormatter())
    ax.set_xlabel("the compiled plain loop's time per step, ms (log scale)")
    ax.set_ylabel("step time / the compiled plain step")
    ax.set_title(
        "Compiled steps on the pay curve: measured (95% t interval; o `on`, s `inner`) and predicted", fontsize=10
    )
    ax.legend(fontsize=7, loc="upper right")
    return save(fig, path)


def table(results: list[RunResult]) -> pd.DataFrame:
    """One row per task, implementation and compile mode."""
    groups = _groups(results)
    rows = []
    for (task, impl, mode, _), runs in groups.items():
        ok, own = [r for r in runs if r.ok], (impl, mode) == (PLAIN, "on")
        eager, compiled = groups.get((task, PLAIN, "off", ""), []), groups.get((task, PLAIN, "on", ""), [])
        made = [r.compiled for r in ok if r.compiled]
        rows.append(
            {
                "task": task,
                "implementation": impl,
                "lightning": "–" if impl == PLAIN else ", ".join(sorted({release_of(r) for r in runs})),
                "compile": mode,
                "runs": f"{len(ok)}/{len(runs)} ok" if len(ok) < len(runs) else str(len(runs)),
                "first step s": _first_steps(ok, "cold"),
                "first step warm s": _first_steps(ok, "warm"),
                "steady step ms": steady * 1e3 if (steady := _steady(ok)) else None,
                "vs plain compiled": _ratio(compiled, runs, is_lightning(impl)) if mode != "off" and not own else "–",
                "vs plain eager": _ratio(eager, runs, False) if (impl, mode) != (PLAIN, "off") else "–",
                "graphs": made[0]["graphs"] if made else None,
                "graph breaks": dynamo.reasons(made[0]["graph_breaks"]) if made else "–",
                "recompiles": dynamo.reasons(made[0]["recompiles"]) if made else "–",
                "parity vs plain compiled": _parity(compiled, runs) if mode != "off" else "–",
                "parity vs plain eager": _parity(eager, runs),
            }
        )
    return pd.DataFrame(rows)


def failures(results: list[RunResult]) -> list[str]:
    """Each failed run's line: what broke, on which implementation, mode and release (a result, not a crash)."""
    lines = []
    for r in results:
        if not r.ok:
            release = release_of(r)
            where = f" (pytorch-lightning {release})" if release != "?" and r.config["impl"] != PLAIN else ""
            lines.append(f"- `{r.run_config.label}`{where}: **{r.status}**: {r.message}")
    return lines


def installed(results: list[RunResult]) -> list[RunResult]:
    """The runs of the installed Lightning (and the plain loop's): the main table's, where several releases ran."""
    return [r for r in results if not r.config.get("lightning")]


def summary(results: list[RunResult]) -> dict[str, Any]:
    rows = json.loads(table(installed(results)).to_json(orient="records"))
    out = {"rows": rows, "curve": curve(results), "failed": failures(results)}
    if len(dynamo.releases(results)) > 1:
        out["releases"] = json.loads(dynamo.table(results).to_json(orient="records"))
        out["changes"] = dynamo.changes(results)
    return out


def write(results: list[RunResult], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "compile.json").write_text(json.dumps(summary(results), indent=1) + "\n")
    save_results(compact(results), out / "results.json.gz")
    rows = table(installed(results))
    warm = rows["first step warm s"].notna().any()
    rows = rows if warm else rows.drop(columns=["first step warm s"])
    backends = sorted(
        {r.config.get("compile_backend", "inductor") for r in results if r.config.get("compile") != "off"}
    )
    method = [
        f"Backend: {', '.join(backends)}. Every run is a process of its own, forked from a server that imported "
        "torch and Lightning (the release of its row) and compiled nothing, with dynamo reset. Inductor's on-disk "
        "cache: `first step s` is from runs that found it cold (a new empty folder)"
        + (
            "; `first step warm s` from runs that found the variant's own cache, kept from its earlier repeats "
            "(what a user's second process finds). The state is what each run found, not assumed"
            if warm
            else ", as every run did"
        )
        + ". `on`: the plain loop compiles "
        "its model (`torch.compile(model)`; several nets: `net.compile()` each), Fabric its model before "
        "`fabric.setup`, the Trainer its LightningModule before `fit`, as Lightning documents: Lightning then "
        "compiles the module's `forward` and `training_step` (with its `self.log`). `inner`: for a Trainer, the "
        "module's own nets compiled in place instead. "
        "`first step`: the step in which dynamo traced and the backend compiled. `steady step`: the median "
        "after warm-up. Ratios: runs paired by repeat (A B C / C B A), geometric mean, t interval (3 pairs at "
        "least). Parity: the first run of each against the plain loop's first run, compiled and in eager mode; "
        "against eager, inductor's generated code is not expected to give the same bits (it fuses and reorders "
        "the arithmetic): `mismatch` there gives how far the losses lay apart.",
        "",
    ]
    lines = [markdown(rows, ".4g"), ""]
    if len(dynamo.releases(results)) > 1:
        lines += [
            "## Across Lightning's releases",
            "",
            "The same code compiled on each release (the table above: the installed one's runs). Per task, "
            "implementation and mode, each release's `graphs / graph breaks / recompiles` (dynamo's counters), "
            "`*` where the run did not train the plain loop's bits in eager mode, or its failure; below it, the "
            "releases grouped by what dynamo made of them, with the reasons.",
            "",
            markdown(dynamo.table(results)),
            "",
            *dynamo.changes(results),
            "",
        ]
    points = curve(results)
    if plot_curve(points, out / "compiled_curve.png"):
        lines += [
            "## Compiled steps on the pay curve",
            "",
            "Compiled steps are shorter, so a Trainer's constant cost is a larger share of them. Each compiled "
            "variant's ratio to the compiled plain step T, beside (T + delta) / T with delta the probe's own "
            "compiled cost in this study (its per-repeat differences: their median with an order-statistic "
            "interval from 6 repeats on, else their mean with a t interval); `agrees`: the intervals overlap, as in "
            "every report here.",
            "",
            *curve_lines(points),
            "",
            "![compiled steps on the pay curve](compiled_curve.png)",
            "",
        ]
    broken = failures(results)
    lines += ["## What broke", "", *(broken or ["Nothing: every run ended."]), ""]
    path = out / "REPORT.md"
    path.write_text(
        study("torch.compile: each implementation compiled as its framework documents", results, lines, method)
    )
    return path
