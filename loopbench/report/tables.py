"""The report's tables: pure functions of saved results (pandas frames, one row per cell or run)."""

from __future__ import annotations

import statistics

import pandas as pd

from loopbench.analysis import inplace, logged, parity, rounds, stats
from loopbench.analysis.grouping import by_group, placement
from loopbench.core.trainers import COMPARED, PLAIN, is_lightning
from loopbench.core.types import RunResult
from loopbench.report import counts as counts_report
from loopbench.report import probe as probe_report
from loopbench.report.gpu import device_work

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
                **device_work(r),
                **{f"final {k}": v for k, v in r.metrics.items()},
            }
        )
    return pd.DataFrame(rows)


def trainer_alone(results: list[RunResult]) -> pd.DataFrame:
    """Where the Trainers ran without a plain loop (a job none could mirror): each one's step, and the time of a
    step outside the model's forward, backward and optimizer update, from the in-place split of its fresh runs."""
    rows = []
    for (task, device, precision, *_, processes, lightning), impls in by_group(fresh(results)).items():
        if PLAIN in impls:
            continue
        for impl, runs in impls.items():
            rests = [r.rest_time_median_s for r in runs if r.ok and r.rest_time_median_s is not None]
            steps = [r.step_time_median_s for r in runs if r.ok and r.step_time_median_s]
            if not rests or not steps:
                continue
            rest, step = statistics.median(rests), statistics.median(steps)
            where = {"task": task, "device": placement(device, processes, lightning), "precision": precision}
            rows.append(
                where
                | {
                    "impl": impl,
                    "runs": len(rests),
                    "median step ms": 1e3 * step,
                    "outside the model's own work ms": 1e3 * rest,
                    "share of the step %": 100 * rest / step,
                }
            )
    return pd.DataFrame(rows)


TRAINER_ALONE = (
    "The Trainers without a plain side (parity: not checked, above): the Trainer's time outside the model's own work "
    "(its forward, backward and optimizer update, timed in place), per step. It is an upper bound on what the "
    "Trainer costs: it also holds the data fetch and the module's own hook bodies, which a plain loop pays too."
)


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
        found: dict[str, list[rounds.Pair]] = {}
        if segments:
            found, _ = rounds.pairs(segments, task)
            per_impl = {
                impl: [(rounds.of_plain(p, lambda r: r.step_time_median_s), p.mine.step_time_median_s) for p in ps]
                for impl, ps in found.items()
            }
        else:
            ref = _run_medians(impls.get(PLAIN, []))
            per_impl = {
                impl: [(ref[k], cand[k]) for k in sorted(ref.keys() & cand.keys())]
                for impl, cand in ((i, _run_medians(runs)) for i, runs in impls.items())
            }
        for impl, pairs in per_impl.items():
            if impl == PLAIN or not pairs:
                continue
            ratio = stats.robust_ratio if segments else stats.paired_ratio
            r = ratio(pairs, more_work=is_lightning(impl))
            own = inplace.trainer_time(found.get(impl, []))
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
                    **_own_columns(own),
                }
            )
    return pd.DataFrame(rows)


def _own_columns(own: dict | None) -> dict:
    """The in-place split's columns of a cell's row: the framework's own time per step (the Trainer's, or
    Fabric's), its share of the step, the work."""
    if own is None:
        return {"own time": "–"}
    return {
        "own time": inplace.label(own),
        "own ms": own["own_s"] * 1e3,
        "own share %": own["share"] * 100,
        "own share low %": _scale(own["share_low"], 100),
        "own share high %": _scale(own["share_high"], 100),
        "work diff ms": own["work_s"] * 1e3,
        "own pinned": own["pinned"],
    }


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
    for (task, device, precision, *_, processes, lightning), impls in by_group(fresh(results)).items():
        device = placement(device, processes, lightning)
        refs = [r for r in impls.get(PLAIN, []) if r.ok]
        for impl, runs in impls.items():
            runs = [r for r in runs if r.ok]
            why_not = runs[0].task_config.get("unmirrored") if runs and not refs else None
            if why_not:  # a job no plain loop could mirror: the Trainers ran alone
                rows.append({"task": task, "device": device, "precision": precision, "impl": impl,
                             "verdict": "not checked", "holds": None, "why": why_not})  # fmt: skip
            if impl == PLAIN or not refs or not runs:
                continue
            unjudged = logged.unrepeated(refs) | logged.unrepeated(runs)  # differs run to run: not judged
            p = parity.compare_cell(logged.without(refs[0], unjudged), logged.without(runs[0], unjudged))
            row = {
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
            } | logged.why(p.logged_difference, unjudged)
            unrepeated = [i for i, rs in ((PLAIN, refs), (impl, runs)) if _unrepeatable(rs)]
            if unrepeated:  # the job itself differs between runs: a verdict on the module, not on Lightning
                row |= {"verdict": "not comparable", "holds": None,
                        "why": f"two runs of {' and of '.join(unrepeated)} with one seed trained different weights "
                               "(the job draws from a generator of its own, or runs nondeterministic ops)"}  # fmt: skip
            rows.append(row)
    return pd.DataFrame(rows)


def _unrepeatable(runs: list[RunResult]) -> bool:
    """Do two successful fresh runs of the same seed hold different weights?"""
    seed = runs[0].config["seed"]
    return len({r.weights_digest for r in runs if r.config["seed"] == seed}) > 1


def headline(results: list[RunResult], probes: dict | None = None) -> pd.DataFrame:
    """The answer in one table: per task, device and precision, what each Lightning variant costs, and
    what the overhead probe predicts it costs (delta / T) where the probe ran on that device."""
    keys = ["task", "device", "precision", "impl"]

    def indexed(df: pd.DataFrame) -> pd.DataFrame:
        return df.set_index(keys) if not df.empty else pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=keys))

    table, ov, par = indexed(summary(results)), indexed(overheads(results)), indexed(parities(results))
    counts = counts_report.table(results, probes)
    mem = "peak CUDA alloc MiB" if "peak CUDA alloc MiB" in table else "peak RSS MiB"
    rows = []
    for task, device, precision in dict.fromkeys(k[:3] for k in table.index):
        key = (task, device, precision)
        if (*key, PLAIN) not in table.index or pd.isna(table.loc[(*key, PLAIN)].get("samples/s")):
            continue
        row = {
            "task": task,
            "device": device,
            "precision": precision,
            "PyTorch samples/s": table.loc[(*key, PLAIN), "samples/s"],
        }
        plain = table.loc[(*key, PLAIN)]
        compared = [i for i in COMPARED if (*key, i) in table.index or (*key, i) in ov.index]
        short = " / ".join(COMPARED[i][1] for i in compared)
        predicted, agree, own = [], [], []
        for impl in compared:
            label = COMPARED[impl][0]
            if (*key, impl) in ov.index:
                o = ov.loc[(*key, impl)]
                row[f"{label} step time"] = o["label"]
            elif (*key, impl) in table.index:
                row[f"{label} step time"] = table.loc[(*key, impl), "runs"]
            a = (probes or {}).get(device)
            step = (plain.get("median step ms"), plain.get("host step ms"))
            ratio = probe_report.prediction(a, task, impl, *step)
            predicted.append("–" if ratio is None else f"{ratio:.3f}x")
            ends = [probe_report.prediction(a, task, impl, *step, delta=d) for d in ("delta_low", "delta_high")]
            o = ov.loc[(*key, impl)] if (*key, impl) in ov.index else None
            agree.append("–" if o is None else stats.agreement(o["95% CI low"], o["95% CI high"], *ends))
            text = None if o is None else o.get("own time")
            own.append(text if isinstance(text, str) else "–")
        if any(x != "–" for x in own):
            row[f"own time ({short})"] = " / ".join(own)
        row |= counts_report.headline_cells(counts, *key, compared)
        if probes:
            row[f"probe predicts ({short})"] = " / ".join(predicted)
            row[f"measured vs predicted ({short})"] = " / ".join(agree)
        mems = [table.loc[(*key, i)].get(mem) if (*key, i) in table.index else None for i in (PLAIN, *compared)]
        row[f"{mem} (P / {short})"] = " / ".join("–" if m is None or pd.isna(m) else f"{m:.0f}" for m in mems)
        verdicts = {par.loc[(*key, i), "verdict"] for i in compared if (*key, i) in par.index}
        row["parity"] = ", ".join(sorted(verdicts)) or "–"
        rows.append(row)
    return pd.DataFrame(rows)


def data_table(results: list[RunResult]) -> pd.DataFrame:
    """What each task trained and was evaluated on (from its first successful run)."""
    rows = {}
    for r in results:
        if r.ok and r.config["task"] not in rows:
            rows[r.config["task"]] = {"task": r.config["task"], **{k: v for k, v in r.data.items() if k != "dir"}}
    return pd.DataFrame(list(rows.values()))
