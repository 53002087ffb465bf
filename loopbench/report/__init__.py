"""Saved results -> REPORT.md + figures. Pure functions of the JSON: no training, no clock.

loopbench report results.json --out reports/<machine>
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import implementations
from loopbench import parity, stats
from loopbench.precision import PLUGIN_NOTE, device_type
from loopbench.report import job as job_report
from loopbench.report import probe as probe_report
from loopbench.report import scaling as scaling_report
from loopbench.report.figures import IMPL_STYLE, task_figures
from loopbench.store import save_results
from loopbench.suite import STEP_LIMITS, by_group, placement
from loopbench.trainers import is_lightning
from loopbench.types import RunResult

MIB = 2**20


# -- tables ---------------------------------------------------------------------------------------


def frame(results: list[RunResult]) -> pd.DataFrame:
    """One row per run."""
    rows = []
    for r in results:
        c = r.config
        rows.append(
            {
                "task": c["task"],
                "impl": c["impl"],
                "device": placement(c["device"], c.get("processes", 1)),
                "processes": c.get("processes", 1),
                "precision": c["precision"],
                "preset": c["preset"],
                "seed": c["seed"],
                "status": r.status,
                "message": r.message,
                "data": r.data.get("source", c["data"]),
                "batch": r.batch_size or None,
                "steps": r.task_config.get("steps"),
                "forward dtype": r.forward_dtype,
                "samples/s": r.samples_per_s,
                "median step ms": _scale(r.step_time_median_s, 1e3),
                "host step ms": _scale(r.host_step_time_median_s, 1e3),
                "CPU steal %": _scale(r.cpu_steal_fraction, 100),
                "p90 step ms": _scale(r.step_time_p90_s, 1e3),
                "end-to-end s": r.end_to_end_s,
                "peak RSS MiB": _scale(r.peak_rss_bytes, 1 / MIB),
                "peak CUDA alloc MiB": _scale(r.peak_cuda_allocated_bytes, 1 / MIB),
                "peak CUDA reserved MiB": _scale(r.peak_cuda_reserved_bytes, 1 / MIB),
                **{f"final {k}": v for k, v in r.metrics.items()},
            }
        )
    return pd.DataFrame(rows)


def _scale(x: float | None, k: float) -> float | None:
    return None if x is None else x * k


def summary(results: list[RunResult]) -> pd.DataFrame:
    """One row per cell: medians over its repeats; failed repeats are counted, not averaged in."""
    df = frame(results)
    keys = ["task", "device", "precision", "impl"]
    text = {"preset", "seed", "status", "message", "data", "forward dtype"}
    numeric = [c for c in df.columns if c not in {*keys, *text}]
    rows = []
    for key, g in df.groupby(keys, sort=False):
        ok = g[g.status == "ok"]
        row = dict(zip(keys, key, strict=True))
        failed = sorted(set(g.status[g.status != "ok"]))
        row["runs"] = f"{len(ok)}/{len(g)} ok ({', '.join(failed)})" if failed else str(len(g))
        row["forward dtype"] = ", ".join(sorted(set(ok["forward dtype"].dropna()))) or None
        for col in numeric:
            row[col] = ok[col].median() if len(ok) and ok[col].notna().any() else None
        rows.append(row)
    return pd.DataFrame(rows).dropna(axis=1, how="all")


def overheads(results: list[RunResult]) -> pd.DataFrame:
    """Lightning / PyTorch step time per cell, from runs paired by repeat (adjacent in time)."""
    rows = []
    for (task, device, precision, *_, processes), impls in by_group(results).items():
        device = placement(device, processes)
        ref = _run_medians(impls.get("pytorch", []))
        for impl, runs in impls.items():
            cand = _run_medians(runs)
            pairs = [(ref[k], cand[k]) for k in sorted(ref.keys() & cand.keys())]
            if impl == "pytorch" or not pairs:
                continue
            r = stats.paired_ratio(pairs, more_work=is_lightning(impl))
            rows.append(
                {
                    "task": task,
                    "device": device,
                    "precision": precision,
                    "impl": impl,
                    "step-time ratio": r.ratio,
                    "95% CI low": r.low,
                    "95% CI high": r.high,
                    "pairs": r.pairs,
                    "verdict": r.verdict,
                    "label": r.label(),
                }
            )
    return pd.DataFrame(rows)


def _run_medians(runs: list[RunResult]) -> dict[int, float]:
    """{repeat: median steady-state step time} of the successful runs (order of appearance if unrecorded)."""
    out = {}
    for i, r in enumerate(runs):
        if r.ok and r.step_time_median_s:
            out[r.config.get("repeat", i)] = r.step_time_median_s
    return out


def parities(results: list[RunResult]) -> pd.DataFrame:
    """Each implementation's first run against PyTorch's first run of the same cell and seed."""
    rows = []
    for (task, device, precision, *_, processes), impls in by_group(results).items():
        device = placement(device, processes)
        refs = [r for r in impls.get("pytorch", []) if r.ok]
        for impl, runs in impls.items():
            runs = [r for r in runs if r.ok]
            if impl == "pytorch" or not refs or not runs:
                continue
            p = parity.compare_cell(refs[0], runs[0])
            rows.append(
                {
                    "task": task,
                    "device": device,
                    "precision": precision,
                    "impl": impl,
                    "verdict": p.verdict,
                    "expected": p.expected,
                    "holds": p.holds,
                    "steps": p.steps,
                    "max |loss diff|": p.max_abs_loss_diff,
                    "weights equal": p.weights_equal,
                }
            )
    return pd.DataFrame(rows)


def headline(results: list[RunResult], probes: dict | None = None) -> pd.DataFrame:
    """The answer in one table: per task, device and precision, what each Lightning variant costs, and
    what the overhead probe predicts it costs (delta / T) where the probe ran on that device."""
    keys = ["task", "device", "precision", "impl"]

    def indexed(df: pd.DataFrame) -> pd.DataFrame:
        return df.set_index(keys) if not df.empty else pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=keys))

    table, ov, par = indexed(summary(results)), indexed(overheads(results)), indexed(parities(results))
    mem = "peak CUDA alloc MiB" if "peak CUDA alloc MiB" in table else "peak RSS MiB"
    rows = []
    for task, device, precision in dict.fromkeys(k[:3] for k in table.index):
        key = (task, device, precision)
        if (*key, "pytorch") not in table.index or pd.isna(table.loc[(*key, "pytorch")].get("samples/s")):
            continue
        row = {
            "task": task,
            "device": device,
            "precision": precision,
            "PyTorch samples/s": table.loc[(*key, "pytorch"), "samples/s"],
        }
        plain = table.loc[(*key, "pytorch")]
        predicted = []
        for impl, label in (("lightning", "Lightning"), ("lightning-defaults", "Lightning defaults")):
            if (*key, impl) in ov.index:
                o = ov.loc[(*key, impl)]
                row[f"{label} step time"] = o["label"]
            elif (*key, impl) in table.index:
                row[f"{label} step time"] = table.loc[(*key, impl), "runs"]
            a = (probes or {}).get(device)
            ratio = probe_report.prediction(a, task, impl, plain.get("median step ms"), plain.get("host step ms"))
            predicted.append("–" if ratio is None else f"{ratio:.3f}x")
        if probes:
            row["probe predicts (L / Ld)"] = " / ".join(predicted)
        mems = [
            table.loc[(*key, i)].get(mem) if (*key, i) in table.index else None
            for i in ("pytorch", "lightning", "lightning-defaults")
        ]
        row[f"{mem} (P / L / Ld)"] = " / ".join("–" if m is None or pd.isna(m) else f"{m:.0f}" for m in mems)
        verdicts = {
            par.loc[(*key, i), "verdict"] for i in ("lightning", "lightning-defaults") if (*key, i) in par.index
        }
        row["parity"] = ", ".join(sorted(verdicts)) or "–"
        rows.append(row)
    return pd.DataFrame(rows)


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
        f"torchvision {env.get('torchvision', '?')}, pytorch-lightning {env.get('pytorch_lightning', '?')}",
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
    for r in results:
        c, steps = r.config, r.task_config.get("steps")
        key = (c["task"], c["device"], c["precision"], steps)
        if c.get("steps") is not None and key not in seen:
            seen.add(key)
            limit = STEP_LIMITS.get((device_type(c["device"]), c["precision"], c["task"]))
            preset = implementations.spec(c["task"]).PRESETS[c["preset"]].steps
            cell = f"`{c['task']}` {c['device']} {c['precision']}"
            runs = f", {limit.repeats} run(s) per implementation" if limit else ""
            why = limit.reason if limit else "asked for"
            out.append(f"- {cell}: {steps} steps instead of the preset's {preset}{runs}: {why}.")
    return [*out, ""] if out else []


def data_table(results: list[RunResult]) -> pd.DataFrame:
    """What each task trained and was evaluated on (from its first successful run)."""
    rows = {}
    for r in results:
        if r.ok and r.config["task"] not in rows:
            rows[r.config["task"]] = {"task": r.config["task"], **{k: v for k, v in r.data.items() if k != "dir"}}
    return pd.DataFrame(list(rows.values()))


def _md(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    if not len(df):
        return "_(none)_"
    return df.astype(object).where(df.notna(), None).to_markdown(index=False, floatfmt=floatfmt, missingval="–")


# -- the report --------------------------------------------------------------------------------------


def tasks_only(results: list[RunResult]) -> list[RunResult]:
    return [r for r in results if r.config["task"] not in implementations.PROBES]


def render(everything: list[RunResult], figures: dict[str, str], probe_figures: dict[str, str] | None = None) -> str:
    """REPORT.md: the tasks' tables, and the probe's answer where the results hold probe runs."""
    results, probes = tasks_only(everything), probe_report.answers(everything)
    table = summary(results) if results else pd.DataFrame(columns=["task"])
    cols = [c for c in table.columns if c not in ("p90 step ms", "host step ms")]
    ov, par = overheads(results), parities(results)
    failed = [r for r in everything if not r.ok]
    out = ["# loopbench report", "", *header(everything), ""]
    out += ["## Headline", "", *[probe_report.headline_sentence(d, a) + "\n" for d, a in probes.items()]]
    out += [
        "Step time of each Lightning variant relative to the plain PyTorch loop (1.00x = same speed): the "
        "geometric mean over pairs of adjacent fresh-process runs of their median step times, with a 95% t "
        "interval over the pairs; with fewer than 3 pairs the ratio is `not resolved` and the number of pairs "
        "that would resolve it at the observed run-to-run spread is given. Throughput, peak memory and the "
        "parity verdict beside it."
        + (
            " `probe predicts`: the ratio the overhead probe's per-step cost implies for the cell's plain step "
            "time (on CUDA: none while the host's work hides behind the GPU's)."
            if probes
            else ""
        ),
        "",
        _md(headline(results, probes), ".4g"),
        "",
        *notes(results),
    ]
    out += ["## Data", "", _md(data_table(results), ".3g"), ""]
    out += [
        "## Parity: does Lightning train the same model?",
        "",
        "Each implementation's first run against the plain PyTorch loop's, same cell and seed. "
        "`bitwise`: identical per-step losses and final weights; `within_tolerance`: per-step losses within "
        "the stated relative tolerance (CUDA); `holds`: the verdict meets what the cell should reach.",
        "",
        _md(par),
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
            for line in (f"### {task}", "", _md(t.drop(columns="task").dropna(axis=1, how="all")), "")
        ],
    ]
    out += [
        "## Lightning overhead",
        "",
        "Each Lightning run's median step time over the plain run of the same repeat (adjacent in the A B C / "
        "C B A order), combined over pairs with a 95% t interval. An interval containing 1 is `within noise`; "
        "one entirely below 1 is also called noise, since every Lightning variant does strictly more work "
        "than the plain loop. Run-to-run variation is what limits these intervals, not the steps within a run.",
        "",
        _md(ov.drop(columns="label") if len(ov) else ov, ".3f"),
        "",
    ]
    scale = scaling_report.scaling(table, ov)
    if len(scale):
        out += ["## Data parallel: scaling", "", scaling_report.INTRO, "", _md(scale, ".3g"), ""]
    job = job_report.between_epochs(results)
    if len(job):
        out += ["## Between epochs: validation and checkpoints", "", job_report.INTRO, "", _md(job, ".3g"), ""]
    for device, a in probes.items():
        out += probe_report.section(device, a, everything, probe_figures or {}, _md)
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
    return "\n".join(out)


def write_report(results: list[RunResult], out_dir: str | Path) -> Path:
    """Write results.json, the figures and REPORT.md into out_dir; return REPORT.md's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_results(results, out / "results.json")
    everything, results = results, tasks_only(results)
    table = summary(results) if results else None
    probe_figures = probe_report.write_figures(everything, table, overheads(results), out, IMPL_STYLE)
    figures = task_figures(results, frame(results), overheads(results), out)
    path = out / "REPORT.md"
    path.write_text(render(everything, figures, probe_figures))
    return path
