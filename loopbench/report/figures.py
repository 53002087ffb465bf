"""The report's figures of the tasks' runs: throughput and memory, overhead ratios, loss curves, samples.
Pure functions of saved results, drawn to files."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt
import pandas as pd

from loopbench.types import RunResult

IMPL_STYLE = {  # the same colour per implementation in every figure
    "pytorch": {"color": "#1f77b4", "linestyle": "-", "linewidth": 2.5},
    "lightning": {"color": "#ff7f0e", "linestyle": "--", "linewidth": 1.8},
    "lightning-defaults": {"color": "#2ca02c", "linestyle": ":", "linewidth": 1.8},
}


def plot_throughput_memory(df: pd.DataFrame, path: Path) -> Path | None:
    """Samples/s and peak memory side by side, per task and device, bars per precision x impl."""
    if df.empty or "status" not in df:  # no task runs (a report of the probe alone)
        return None
    ok = df[df.status == "ok"]
    if ok.empty:
        return None
    panels = list(ok.groupby(["task", "device"], sort=False))
    fig, axes = plt.subplots(len(panels), 2, figsize=(11, 3.2 * len(panels)), squeeze=False)
    for (task, device), g in panels:
        ax_t, ax_m = axes[panels.index(((task, device), g))]
        mem_col = "peak CUDA alloc MiB" if device.startswith("cuda") else "peak RSS MiB"
        med = g.groupby(["precision", "impl"], sort=False)[["samples/s", mem_col]].median().reset_index()
        precisions = list(dict.fromkeys(med.precision))
        impls = list(dict.fromkeys(med.impl))
        width = 0.8 / len(impls)
        for j, impl in enumerate(impls):
            m = med[med.impl == impl].set_index("precision").reindex(precisions)
            xs = [i + j * width for i in range(len(precisions))]
            for ax, col in ((ax_t, "samples/s"), (ax_m, mem_col)):
                ax.bar(xs, m[col], width, label=impl, color=IMPL_STYLE.get(impl, {}).get("color"))
        for ax, title in ((ax_t, "throughput, samples/s (higher is better)"), (ax_m, f"{mem_col} (lower is better)")):
            ax.set_xticks([i + width * (len(impls) - 1) / 2 for i in range(len(precisions))], precisions)
            ax.set_title(f"{task} on {device}: {title}", fontsize=9)
        ax_t.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_overhead(ov: pd.DataFrame, path: Path) -> Path | None:
    if ov.empty:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(ov) + 1.2))
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
    ax.set_xlabel("Lightning / PyTorch step time (95% CI over paired runs; hollow: not resolved)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def first_runs(results: list[RunResult], task: str, device: str, artifact: str | None = None) -> dict:
    """{precision: {impl: its first successful run}} of one task on one device (with `artifact`, if asked)."""
    cells: dict[str, dict[str, RunResult]] = {}
    for r in results:
        c = r.config
        if r.ok and c["task"] == task and c["device"] == device and (artifact is None or artifact in r.artifacts):
            cells.setdefault(c["precision"], {}).setdefault(c["impl"], r)
    return cells


def plot_losses(results: list[RunResult], task: str, device: str, path: Path) -> Path | None:
    """Every implementation's per-step losses (first run of each cell) overlaid, a panel per precision."""
    cells = first_runs(results, task, device)
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
            ax.set_xlabel("step")
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_samples(results: list[RunResult], task: str, device: str, path: Path) -> Path | None:
    """Generated samples (a task's `samples_png` artifact), implementations side by side, a row per precision."""
    import base64
    import io

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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def task_figures(results: list[RunResult], df: pd.DataFrame, ov: pd.DataFrame, out: Path) -> dict[str, str]:
    """Draw every figure the tasks' results allow into `out`; {title: file name} of those drawn."""
    figures: dict[str, str] = {}
    if plot_throughput_memory(df, out / "throughput_memory.png"):
        figures["Throughput and peak memory"] = "throughput_memory.png"
    if plot_overhead(ov, out / "overhead.png"):
        figures["Overhead ratio"] = "overhead.png"
    for task, device in dict.fromkeys((r.config["task"], r.config["device"]) for r in results):
        name = f"losses_{task}_{device.replace(':', '')}.png"
        if plot_losses(results, task, device, out / name):
            figures[f"Loss curves: {task} on {device}"] = name
        name = f"samples_{task}_{device.replace(':', '')}.png"
        if plot_samples(results, task, device, out / name):
            figures[f"Generated samples (fixed noise): {task} on {device}"] = name
    return figures
