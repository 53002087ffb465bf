"""Saved results -> REPORT.md + figures. Pure functions of the JSON: no training, no clock.

loopbench report results.json --out reports/<machine>
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import implementations
from loopbench.core.limits import step_limit
from loopbench.core.precision import PLUGIN_NOTE
from loopbench.core.store import PUBLISHED_RESULTS_NAME, REPORT_RESULTS_NAME, compact, save_results
from loopbench.core.types import RunResult
from loopbench.report import counts as counts_report
from loopbench.report import first
from loopbench.report import job as job_report
from loopbench.report import probe as probe_report
from loopbench.report import probe_figures as probe_plots
from loopbench.report import scaling as scaling_report
from loopbench.report.figures import IMPL_STYLE, task_figures
from loopbench.report.gpu import gpu_notes
from loopbench.report.tables import (  # noqa: F401  (the report's tables, importable from here)
    MIB,
    TARGET,
    TRAINER_ALONE,
    data_table,
    frame,
    fresh,
    headline,
    overheads,
    parities,
    summary,
    trainer_alone,
)


def header(results: list[RunResult]) -> list[str]:
    envs = [r.env for r in tasks_only(results) if r.env] + [r.env for r in results if r.env]  # tasks' first
    env = envs[0] if envs else {}
    commits = sorted({e.get("commit", "unknown") for e in envs})
    data = sorted(
        {f"{r.data.get('source', r.config['data'])} ({r.data.get('dataset', '?')})" for r in results if r.data}
    )
    presets = sorted({r.config["preset"] for r in results})
    lines = [
        f"- **Machine:** {env.get('cpu', '?')}, {env.get('cpu_count', '?')} cores "
        f"({env.get('torch_threads', '?')} torch threads), {env.get('memory_gib', '?')} GiB"
        + (f"; GPU {env['gpu']} ({env.get('gpu_memory_gib')} GiB), CUDA {env.get('cuda')}" if env.get("gpu") else ""),
        f"- **Versions:** Python {env.get('python', '?')}, torch {env.get('torch', '?')}, "
        f"torchvision {env.get('torchvision', '?')}, pytorch-lightning {env.get('pytorch_lightning', '?')}"
        + (f"; the default Trainer's progress bar: {env['progress_bar']}" if env.get("progress_bar") else ""),
        f"- **CPU number formats:** {', '.join(env.get('cpu_flags') or ['not recorded'])} "
        f"(torch CPU kernels: {env.get('cpu_capability', '?')})",
        f"- **Platform:** {env.get('platform', '?')}",
        f"- **Commit:** {', '.join(commits)}; **date:** {min((e.get('date', '?') for e in envs), default='?')}",
        f"- **Data:** {', '.join(data) or '?'}; **preset:** {', '.join(presets)}; "
        f"**runs:** {len(results)} ({sum(r.ok for r in results)} ok)",
    ]
    return lines


def notes(results: list[RunResult]) -> list[str]:
    """Notes a reader needs once: precisions applied differently, cells run with fewer steps, and why."""
    out = []
    if any(r.precision_via and "MixedPrecision(" in r.precision_via for r in results):
        out.append(f"- {PLUGIN_NOTE}")
    seen = set()
    for r in fresh(results):
        c, steps = r.config, r.task_config.get("steps")
        key = (c["task"], c["device"], c["precision"], steps)
        if c.get("steps") is not None and key not in seen:
            seen.add(key)
            limit = step_limit(c["task"], c["device"], c["precision"], r.env.get("cpu_flags") or [])
            preset = implementations.spec(c["task"]).PRESETS[c["preset"]].steps
            cell = f"`{c['task']}` {c['device']} {c['precision']}"
            runs = f", {limit.repeats} run(s) per implementation" if limit else ""
            why = limit.reason if limit else "asked for"
            held_out = ", no held-out evaluation" if c.get("evaluate") is False else ""
            steps_text = f"{steps} step{'s' * (steps != 1)}"
            out.append(f"- {cell}: {steps_text} instead of the preset's {preset}{runs}{held_out}: {why}.")
    return [*out, ""] if out else []


def study(title: str, results: list[RunResult], body: list[str], method: list[str], answer: list[str] = ()) -> str:
    """A study's REPORT.md, in the bench report's order: its answer, its tables and figures, how to read them, and
    the machine and versions last. Each list holds its own blank lines."""
    how = ["## How to read this", "", *method]
    return "\n".join([f"# {title}", "", *answer, *body, *how, "## Machine and versions", "", *header(results), ""])


def markdown(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    if not len(df):
        return "_(none)_"
    return df.astype(object).where(df.notna(), None).to_markdown(index=False, floatfmt=floatfmt, missingval="–")


# -- the report --------------------------------------------------------------------------------------


def tasks_only(results: list[RunResult]) -> list[RunResult]:
    return [r for r in results if r.config["task"] not in implementations.PROBES]


def render(everything: list[RunResult], figures: dict[str, str], probe_figures: dict[str, str] | None = None) -> str:
    """REPORT.md: the first screen (verdict, machine, the timed cells, the figure), how to read it, the detail."""
    results, probes = tasks_only(everything), probe_report.answers(everything)
    table = summary(results) if results else pd.DataFrame(columns=["task"])
    cols = [c for c in table.columns if c not in ("p90 step ms", "host step ms")]
    ov, par = overheads(results), parities(results)
    failed = [r for r in everything if not r.ok]
    envs = [r.env for r in results if r.env] + [r.env for r in everything if r.env]
    pay = next((name for title, name in (probe_figures or {}).items() if title.startswith("What will I pay?")), None)
    out = ["# loopbench report", ""]
    tables = {"summary": table, "overheads": ov, "parities": par}
    out += first.screen(results, envs, tables, probe_report.floors(probes), pay, markdown)
    predict = probe_report.predictors(everything)
    if results:
        out += ["## How to read this", "", first.reading(bool(predict)), ""]
    if probes:
        out += ["## The overhead probe", "", *[probe_report.headline_sentence(d, a) + "\n" for d, a in probes.items()]]
    none = ["_No task runs: the probe only._", ""]
    out += _task_sections(results, predict, table, cols, ov, par) if results else none
    for device, a in probes.items():
        out += probe_report.section(device, a, everything, probe_figures or {}, markdown)
    for title, name in figures.items():
        out += [f"### {title}", "", f"![{title}]({name})", ""]
    if failed:
        counts: dict[tuple[str, str, str], int] = {}
        for r in failed:
            key = (r.run_config.label, r.status, r.message)
            counts[key] = counts.get(key, 0) + 1
        out += ["## Failed or refused cells", ""]
        out += [
            f"- `{label}` ({n} run{'s' * (n > 1)}): **{status}**: {message}"
            for (label, status, message), n in counts.items()
        ]
        out += [""]
    return "\n".join([*out, "## Machine and versions", "", *header(everything), ""])


def _task_sections(results, probes, table, cols, ov, par) -> list[str]:
    """The tasks' part of REPORT.md: headline table, data, parity, speed and memory, overhead, scaling, epochs."""
    out: list[str] = []
    out += [
        "## Every cell",
        "",
        markdown(headline(results, probes), ".4g"),
        "",
        *notes(results),
    ]
    out += ["## Data", "", markdown(data_table(results), ".3g"), ""]
    out += [
        "## Parity: does Lightning train the same model?",
        "",
        "Each implementation's first run against the plain PyTorch loop's, same cell and seed. "
        "`bitwise`: identical per-step losses and final weights; `within_tolerance`: per-step losses within "
        "the stated relative tolerance (CUDA); `holds`: the verdict meets what the cell should reach.",
        "",
        markdown(par),
        "",
    ]
    out += [
        "## Speed and memory",
        "",
        "Medians over repeats; each run in a fresh process; warm-up steps excluded from samples/s and step "
        "times; end-to-end includes model and Trainer construction (data generation excluded). Peak RSS is the "
        "process's resident-memory peak from the start of the job (libraries imported and data resident) to "
        "the last step.",
        "",
        *[
            line
            for task, t in table[cols].groupby("task", sort=False)
            for line in (f"### {task}", "", markdown(t.drop(columns="task").dropna(axis=1, how="all")), "")
        ],
        *gpu_notes(table),
    ]
    out += [
        "## Lightning overhead",
        "",
        "Each Lightning segment's median step time over the plain segments beside it in its round (`from: "
        "rounds`), or each fresh Lightning run's over the plain run of its repeat (`from: fresh runs`). A pair "
        "with a segment whose two halves differ by more than 50% was hit by the machine's "
        "drift and is left out. An interval containing 1 is `within noise`; one entirely below 1 is also "
        "called noise, since every Lightning variant does strictly more work than the plain loop.",
        "",
        markdown(ov.drop(columns="label") if len(ov) else ov, ".3f"),
        "",
    ]
    counts = counts_report.table(results, probes)
    if len(counts):
        out += ["## Instructions per step: each task cell against the probe", "", counts_report.INTRO, ""]
        out += [markdown(counts, ".4g"), ""]
    scale = scaling_report.scaling(table, ov)
    if len(scale):
        out += ["## Data parallel: scaling", "", scaling_report.INTRO, "", markdown(scale, ".3g"), ""]
    alone = trainer_alone(results)
    if len(alone):
        out += ["## The Trainers alone", "", TRAINER_ALONE, "", markdown(alone, ".3g"), ""]
    where = job_report.phases(results)
    if len(where):
        out += ["## Where the job's time goes", "", job_report.PHASES_INTRO, "", markdown(where, ".3g"), ""]
    job = job_report.between_epochs(results) if not len(where) else where.iloc[:0]
    if len(job):
        out += ["## Between epochs: validation and checkpoints", "", job_report.INTRO, "", markdown(job, ".3g"), ""]
    return out


def write_report(results: list[RunResult], out_dir: str | Path, runs: str = REPORT_RESULTS_NAME) -> Path:
    """Write the runs (`runs`: results.json, or results.json.gz compacted), the figures and REPORT.md into out_dir;
    return REPORT.md's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_results(compact(results) if runs.endswith(".gz") else results, out / runs)
    for other in {REPORT_RESULTS_NAME, PUBLISHED_RESULTS_NAME} - {runs}:  # an earlier report's runs: not these
        (out / other).unlink(missing_ok=True)
    everything, results = results, tasks_only(results)
    table = summary(results) if results else None
    probe_figures = probe_plots.write_figures(everything, table, overheads(results), out, IMPL_STYLE)
    figures = task_figures(results, frame(results), overheads(results), out)
    path = out / "REPORT.md"
    path.write_text(render(everything, figures, probe_figures))
    return path
