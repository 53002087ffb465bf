"""The report's figures of the tasks' runs: throughput and memory, overhead ratios, loss curves, samples.
Pure functions of saved results, drawn to files."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import matplotlib
from matplotlib.lines import Line2D

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

import implementations
from loopbench.core.store import SAMPLES_PRESETS
from loopbench.core.types import RunResult

IMPL_STYLE = {  # the same colour per implementation in every figure
    "pytorch": {"color": "#1f77b4", "linestyle": "-", "linewidth": 2.5},
    "lightning": {"color": "#ff7f0e", "linestyle": "--", "linewidth": 1.8},
    "lightning-defaults": {"color": "#2ca02c", "linestyle": ":", "linewidth": 1.8},
    "fabric": {"color": "#9467bd", "linestyle": "-.", "linewidth": 1.8},
}


TASK_MARKERS = {"mnist_gan": "s", "efficientnet_binary": "^", "cifar_cnn": "o", "overhead_probe": "D"}  # everywhere


def save(fig, path: Path) -> Path:
    """Save and close a figure (tests capture the figure here)."""
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_throughput_memory(df: pd.DataFrame, path: Path) -> Path | None:
    """Per task and device: samples/s per precision and implementation, and each Lightning variant's peak
    memory minus the plain loop's (MiB): the tens of MiB that bars from 0 would hide. Bars are medians over
    fresh runs with their range; with one run per bar the titles say so (no spread: the paired speed ratio with
    its interval is the overhead figure's)."""
    if df.empty or "status" not in df:  # no task runs (a report of the probe alone)
        return None
    ok = df[df.status == "ok"]
    if ok.empty:
        return None
    panels = list(ok.groupby(["task", "device"], sort=False))
    fig, axes = plt.subplots(len(panels), 2, figsize=(11, 3.4 * len(panels)), squeeze=False)
    for row, ((task, device), g) in enumerate(panels):
        ax_t, ax_m = axes[row]
        mem_col = "peak CUDA alloc MiB" if device.startswith("cuda") else "peak RSS MiB"
        by = g.groupby(["precision", "impl"], sort=False)[["samples/s", mem_col]]
        med, low, high = (x.reset_index() for x in (by.median(), by.min(), by.max()))
        runs = int(by.size().min())
        each = "one fresh run per bar, no spread" if runs == 1 else f"median of {runs}+ fresh runs, bars: range"
        precisions = list(dict.fromkeys(med.precision))
        impls = list(dict.fromkeys(med.impl))
        plain = med[med.impl == "pytorch"].set_index("precision")[mem_col].reindex(precisions)
        width = 0.8 / len(impls)
        for j, impl in enumerate(impls):
            m, lo, hi = (x[x.impl == impl].set_index("precision").reindex(precisions) for x in (med, low, high))
            xs = [i + j * width for i in range(len(precisions))]
            color = IMPL_STYLE.get(impl, {}).get("color")
            spread = None if runs == 1 else [m["samples/s"] - lo["samples/s"], hi["samples/s"] - m["samples/s"]]
            ax_t.bar(xs, m["samples/s"], width, label=impl, color=color, yerr=spread, capsize=2)
            if impl != "pytorch":
                extra = None if runs == 1 else [m[mem_col] - lo[mem_col], hi[mem_col] - m[mem_col]]
                ax_m.bar(xs, m[mem_col] - plain, width, label=f"{impl} minus pytorch", color=color, yerr=extra,
                         capsize=2)  # fmt: skip
        for ax in (ax_t, ax_m):
            ax.set_xticks([i + width * (len(impls) - 1) / 2 for i in range(len(precisions))], precisions)
            ax.set_xlabel("precision")
        ax_t.set_ylabel("samples/s")
        ax_t.set_title(f"{task} on {device}: throughput\n(higher is better; {each})", fontsize=8)
        ax_m.axhline(0, color="grey", linewidth=1)
        ax_m.set_ylabel(f"{mem_col.replace(' MiB', '')}, Lightning minus plain, MiB")
        ax_m.set_title(f"{task} on {device}: extra peak memory\n(Lightning minus plain; {each})", fontsize=8)
        for ax in (ax_t, ax_m):
            if ax.get_legend_handles_labels()[0]:  # a cell whose other sides failed draws nothing to label
                ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return save(fig, path)


def plot_overhead(ov: pd.DataFrame, path: Path) -> Path | None:
    """Every task cell's Lightning / plain step-time ratio with its interval (hollow: not resolved); the cells that
    ran one step, for parity alone, are left out (the report lists them in a line)."""
    ov = ov[ov["pairs"] >= 2] if len(ov) else ov
    if ov.empty:
        return None
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(ov) + 1.6))
    labels = [f"{r.task} {r.device} {r.precision} {r.impl}" for r in ov.itertuples()]
    ys = range(len(ov))
    for y, (_, r) in zip(ys, ov.iterrows(), strict=True):
        ratio, low, high = r["step-time ratio"], r["95% CI low"], r["95% CI high"]
        color = IMPL_STYLE.get(r["impl"], {}).get("color")
        if pd.isna(low):  # not resolved: the point alone, hollow
            ax.plot(ratio, y, "o", mfc="none", color=color)
            continue
        ax.errorbar(ratio, y, xerr=[[ratio - low], [high - ratio]], fmt="o", capsize=3, color=color)
    ax.axvline(1.0, color="grey", linewidth=1)
    ax.set_yticks(list(ys), labels, fontsize=8)
    ax.invert_yaxis()
    ends = pd.concat([ov["95% CI low"], ov["95% CI high"], ov["step-time ratio"]]).dropna()
    if len(ends) and ends.max() / max(ends.min(), 1e-9) > 2.5:  # one wide interval would squash the others: log x
        ax.set_xscale("log")
        low, high = ax.get_xlim()
        ax.set_xticks([x for x in (0.5, 0.8, 1, 1.25, 1.5, 2, 3, 5, 10, 20) if low <= x <= high])
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}x"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("Lightning / plain step time (1x = the same; 95% interval)")
    ax.set_title("What each Lightning variant costs per step, per task cell", fontsize=10)
    handles = [Line2D([], [], marker="o", linestyle="", color=IMPL_STYLE[i]["color"], label=i)
               for i in dict.fromkeys(ov.impl) if i in IMPL_STYLE]  # fmt: skip
    handles.append(Line2D([], [], marker="o", mfc="none", linestyle="", color="black", label="not resolved"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return save(fig, path)


def first_runs(results: list[RunResult], task: str, device: str, artifact: str | None = None) -> dict:
    """{precision: {impl: its first successful run}} of one task on one device (with `artifact`, if asked)."""
    cells: dict[str, dict[str, RunResult]] = {}
    for r in results:
        c = r.config
        if r.ok and c["task"] == task and c["device"] == device and (artifact is None or artifact in r.artifacts):
            cells.setdefault(c["precision"], {}).setdefault(c["impl"], r)
    return cells


def plot_losses(results: list[RunResult], task: str, device: str, path: Path) -> Path | None:
    """Every implementation's per-step losses (first run of each cell) overlaid, a panel per precision (a cell
    that ran one step, for parity alone, has no curve to draw: its panel is left out)."""
    cells = {p: runs for p, runs in first_runs(results, task, device).items()
             if any(len(v) > 1 for r in runs.values() for v in r.losses.values())}  # fmt: skip
    if not cells:
        return None
    loss_names = list(next(iter(next(iter(cells.values())).values())).losses)
    fig, axes = plt.subplots(
        len(loss_names), len(cells), figsize=(4.5 * len(cells), 3 * len(loss_names)), squeeze=False
    )
    for j, (precision, impls) in enumerate(cells.items()):
        for i, name in enumerate(loss_names):
            ax = axes[i][j]
            for impl, r in impls.items():
                ax.plot(r.losses[name], label=impl, **IMPL_STYLE.get(impl, {}))
            ax.set_title(f"{task} {device} {precision}: {name}", fontsize=9)
            ax.set_xlabel("optimizer step (batch)")
            ax.set_ylabel(f"{name} (training loss)")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, title="one line where bitwise equal", title_fontsize=6)
    fig.tight_layout()
    return save(fig, path)


def plot_samples(results: list[RunResult], task: str, device: str, path: Path) -> Path | None:
    """Generated samples (a task's `samples_png` artifact), implementations side by side, a row per precision."""
    cells = first_runs(results, task, device, artifact="samples_png")
    if not cells:
        return None
    impls = list(dict.fromkeys(i for row in cells.values() for i in row))
    fig, axes = plt.subplots(len(cells), len(impls), figsize=(3.2 * len(impls), 3.4 * len(cells)), squeeze=False)
    for i, (precision, row) in enumerate(cells.items()):
        for j, impl in enumerate(impls):
            ax = axes[i][j]
            ax.axis("off")
            if impl in row:
                png = base64.b64decode(row[impl].artifacts["samples_png"])
                ax.imshow(plt.imread(io.BytesIO(png), format="png"), cmap="gray", vmin=0, vmax=1)
                ax.set_title(f"{impl}\n{precision}", fontsize=9)
    fig.suptitle(f"{task} on {device}: samples from fixed noise after training", fontsize=10)
    fig.tight_layout()
    return save(fig, path)


def task_figures(results: list[RunResult], df: pd.DataFrame, ov: pd.DataFrame, out: Path) -> dict[str, str]:
    """Draw every figure the tasks' results allow into `out`; {title: file name} of those drawn."""
    figures: dict[str, str] = {}
    results = [r for r in results if not r.config.get("slot") and r.config.get("clock", "time") == "time"]
    if plot_throughput_memory(df, out / "throughput_memory.png"):
        figures["Throughput and peak memory"] = "throughput_memory.png"
    if plot_overhead(ov, out / "overhead.png"):
        figures["Overhead ratio"] = "overhead.png"
    for task, device in dict.fromkeys((r.config["task"], r.config["device"]) for r in results):
        name = f"losses_{implementations.short_name(task)}_{device.replace(':', '')}.png"
        if plot_losses(results, task, device, out / name):
            figures[f"Loss curves: {task} on {device}"] = name
        name = f"samples_{implementations.short_name(task)}_{device.replace(':', '')}.png"
        full = [r for r in results if r.config["preset"] in SAMPLES_PRESETS]
        if plot_samples(full, task, device, out / name):
            figures[f"Generated samples (fixed noise): {task} on {device}"] = name
    return figures
