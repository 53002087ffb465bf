"""Saved results -> REPORT.md + figures. Pure functions of the JSON: no training, no clock.

loopbench report results.json --out reports/<machine>
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import implementations
from loopbench import parity, rounds, stats
from loopbench.precision import PLUGIN_NOTE, device_type
from loopbench.report import job as job_report
from loopbench.report import probe as probe_report
from loopbench.report import scaling as scaling_report
from loopbench.report.figures import IMPL_STYLE, task_figures
from loopbench.store import save_results
from loopbench.suite import ROUND_LIMITS, by_group, placement, step_limit
from loopbench.trainers import is_lightning
from loopbench.types import RunResult

MIB = 2**20


# -- tables ---------------------------------------------------------------------------------------


def fresh(results: list[RunResult]) -> list[RunResult]:
    """The runs that each had a process of their own (speed, memory, the whole job): not the segments of a
    round (timed only, several to a process) nor the instruction counts (slowed by valgrind)."""
    return [r for r in results if not r.config.get("slot") and r.config.get("clock", "time") == "time"]


def frame(results: list[RunResult]) -> pd.DataFrame:
    """One row per fresh-process run."""
    rows = []
    for r in fresh(results):
        c = r.config
        rows.append(
            {
                "task": c["task"],
                "impl": c["impl"],
                "device": placement(c["device"], c.get("processes", 1), c.get("lightning")),
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


TARGET = 0.02  # a task cell's ratio is resolved to within +-2% when its interval's half-width is at most this


def overheads(results: list[RunResult]) -> pd.DataFrame:
    """Lightning / PyTorch step time per cell: from rounds (each Lightning segment over the plain segments
    beside it, median over rounds, order-statistic interval), else from fresh runs paired by repeat."""
    rows = []
    for (task, device, precision, *_, processes, lightning), impls in by_group(results).items():
        device = placement(device, processes, lightning)
        segments = [r for runs in impls.values() for r in runs if r.config.get("slot", 0) > 0]
        if segments:
            found, _ = rounds.pairs(segments, task)
            per_impl = {
                impl: [(rounds.of_plain(p, lambda r: r.step_time_median_s), p.mine.step_time_median_s) for p in ps]
                for impl, ps in found.items()
            }
        else:
            ref = _run_medians(impls.get("pytorch", []))
            per_impl = {
                impl: [(ref[k], cand[k]) for k in sorted(ref.keys() & cand.keys())]
                for impl, cand in ((i, _run_medians(runs)) for i, runs in impls.items())
            }
        for impl, pairs in per_impl.items():
            if impl == "pytorch" or not pairs:
                continue
            ratio = stats.robust_ratio if segments else stats.paired_ratio
            r = ratio(pairs, more_work=is_lightning(impl))
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
                    "from": "rounds" if segments else "fresh runs",
                    "verdict": r.verdict,
                    "label": r.label(TARGET if segments else None),
                }
            )
    return pd.DataFrame(rows)


def _run_medians(runs: list[RunResult]) -> dict[int, float]:
    """{repeat: median steady-state step time} of the successful runs (order of appearance if unrecorded)."""
    out = {}
    for i, r in enumerate(fresh(runs)):
        if r.ok and r.step_time_median_s:
            out[r.config.get("repeat", i)] = r.step_time_median_s
    return out


def parities(results: list[RunResult]) -> pd.DataFrame:
    """Each implementation's first run against PyTorch's first run of the same cell and seed."""
    rows = []
    for (task, device, precision, *_, processes, lightning), impls in by_group(results).items():
        device = placement(device, processes, lightning)
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
        predicted, agree = [], []
        for impl, label in (("lightning", "Lightning"), ("lightning-defaults", "Lightning defaults")):
            if (*key, impl) in ov.index:
                o = ov.loc[(*key, impl)]
                row[f"{label} step time"] = o["label"]
            elif (*key, impl) in table.index:
                row[f"{label} step time"] = table.loc[(*key, impl), "runs"]
            a = (probes or {}).get(device)
            ratio = probe_report.prediction(a, task, impl, plain.get("median step ms"), plain.get("host step ms"))
            predicted.append("–" if ratio is None else f"{ratio:.3f}x")
            agree.append(_agreement(ov.loc[(*key, impl)] if (*key, impl) in ov.index else None, ratio))
        if probes:
            row["probe predicts (L / Ld)"] = " / ".join(predicted)
            row["measured vs predicted (L / Ld)"] = " / ".join(agree)
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


def _agreement(o: pd.Series | None, predicted: float | None) -> str:
    """Whether the prediction lies inside the measured interval: `agrees`, `above` / `below` it, or `–`."""
    if o is None or predicted is None or pd.isna(o["95% CI low"]):
        return "–"
    if predicted < o["95% CI low"]:
        return "measured above"
    return "measured below" if predicted > o["95% CI high"] else "agrees"


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
            out.append(f"- {cell}: {steps} steps instead of the preset's {preset}{runs}: {why}.")
    for device, task in dict.fromkeys((device_type(r.config["device"]), r.config["task"]) for r in fresh(results)):
        if (device, task) in ROUND_LIMITS:
            out.append(f"- `{task}` on {device}: {ROUND_LIMITS[(device, task)][1]} (fresh runs only).")
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
    predict = probe_report.predictors(everything)
    none = ["_No task runs: the probe only._", ""]
    out += _task_sections(results, predict, table, cols, ov, par) if results else none
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


def _task_sections(results, probes, table, cols, ov, par) -> list[str]:
    """The tasks' part of REPORT.md: headline table, data, parity, speed and memory, overhead, scaling, epochs."""
    out: list[str] = []
    out += [
        "Step time of each Lightning variant relative to the plain PyTorch loop (1.00x = same speed), from "
        "rounds: one process per round runs short time-only segments P L P Ld P, and each Lightning segment's "
        "median step is divided by the plain segments' just before and after it; the ratio is the median over "
        "rounds with a distribution-free 95% interval, and where that interval is wider than ±2% the pairs that "
        "±2% would need are given (cells without rounds: fresh runs paired by repeat, t interval). "
        "Throughput, peak memory and the parity verdict come from fresh-process runs of the whole job."
        + (
            " `probe predicts`: (T + delta) / T, the ratio the overhead probe's per-step cost delta implies for "
            "the cell's plain step time T, delta measured at the tasks' thread count where the probe ran there "
            "(else at one thread; on CUDA: none while the host's work hides behind the GPU's); `measured vs "
            "predicted`: whether the prediction lies inside the measured interval."
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
        "Each Lightning segment's median step time over the plain segments beside it in its round (`from: "
        "rounds`), or each fresh Lightning run's over the plain run of its repeat (`from: fresh runs`). A pair "
        "with a segment whose two halves differ by more than 50% was hit by the machine's "
        "drift and is left out. An interval containing 1 is `within noise`; one entirely below 1 is also "
        "called noise, since every Lightning variant does strictly more work than the plain loop.",
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
    return out


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
