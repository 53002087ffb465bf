"""The report's answer to "what does the Trainer cost me per step?", from the overhead probe's runs.

A headline sentence, the probe's table per shape, the ladder (each Trainer default's cost, their sum beside the
default Trainer's), the prediction for each task and the instruction counts; the figures are probe_figures.py's.
Pure functions of the saved results, like the rest of the report.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

import implementations
from loopbench.analysis.probe import HEADLINE_IMPLS, PROBE, STEP_MEANS, answer, predicted_ratio
from loopbench.core.trainers import COMPARED, DEFAULTS, FABRIC, LEAN, PLAIN
from loopbench.core.types import RunResult

NAMES = {LEAN: "the lean Trainer", DEFAULTS: "the default Trainer (with `self.log` every step)", FABRIC: "Fabric"}


def _probe_threads(r: RunResult) -> int:
    return r.config["overrides"].get("threads", 1)


def answers(results: list[RunResult], threads: int = 1) -> dict[str, dict[str, Any]]:
    """{device: the probe's answer at `threads` torch threads} for every device the probe ran on there."""
    probe = [r for r in results if r.config["task"] == PROBE and _probe_threads(r) == threads]
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


def interval_text(v: dict[str, Any], key: str = "delta") -> str:
    if v.get(f"{key}_us") is None:
        return "–"
    if v.get(f"{key}_low_us") is None:  # too few pairs for an interval: the middle alone, said so
        return f"{v[f'{key}_us']:+,.0f} (no interval: too few pairs)"
    return f"{v[f'{key}_us']:+,.0f} [{v[f'{key}_low_us']:+,.0f}, {v[f'{key}_high_us']:+,.0f}]"


def floors(probes: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Each framework's extra time per step on the probe's auto shape, on the first device it ran on."""
    if not probes:
        return {}
    shapes = next(iter(probes.values()))["shapes"]
    auto = shapes.get("auto") or next(iter(shapes.values()))
    return {i: f"{auto[i]['delta_us']:+,.0f} us" for i in COMPARED if auto.get(i, {}).get("delta_us") is not None}


def headline_sentence(device: str, a: dict[str, Any]) -> str:
    auto = a["shapes"].get("auto") or next(iter(a["shapes"].values()))
    parts = [f"{NAMES[i]} {interval_text(auto[i])} us" for i in COMPARED if i in auto]
    steal = a.get("cpu_steal_max")
    counts = a.get("instructions", {}).get("shapes", {}).get("auto", {})
    counted = [f"{counts[i]['delta'] / 1e6:+.2f} M" for i in COMPARED if counts.get(i, {}).get("delta")]
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
            f"; counted, they cost {' and '.join(counted)} instructions per step more than the plain loop's "
            f"{counts['pytorch']['per_step'] / 1e6:.2f} M, on any machine with these versions"
            if len(counted) == len(parts) and "pytorch" in counts
            else ""
        )
        + ". A job whose plain step takes T pays about that delta / T: "
        + WHERE_IT_HOLDS["nothing"]
    )


# where the constant-delta model holds, as the pay curve measured in place found it (docs/pay-curve.md): per
# `loopbench overhead --after`, what the delta it measured is
WHERE_IT_HOLDS = {
    "nothing": (
        "a floor, measured after a near-zero step. Real jobs paid more, at any step length: about the delta of "
        "`loopbench overhead --after read`, whose step first reads 64 MiB, so that the Trainer's per-step working "
        "set comes back from memory as it does after real model work (docs/pay-curve.md); or measure your job's own "
        "in place with `loopbench module`, beside what you compare: it holds at any T, not across days."
    ),
    "read": (
        "this delta, measured after a read that sends the Trainer's per-step working set back to memory, is about "
        "what real jobs paid in place at any step length, within one invocation (docs/pay-curve.md); --after "
        "nothing gives the floor."
    ),
}


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
                        "delta us/step [95% CI]": interval_text(v),
                        "delta, window mean [95% CI]": interval_text(v, "mean_delta"),
                        "in place: own [95% CI]": interval_text(v, "in_place_own"),
                        "in place: model's work slower by": interval_text(v, "in_place_work"),
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
            "us/step [95% CI]": interval_text(row),
            "window mean [95% CI]": interval_text(row, "mean_delta"),
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
                    "own_ms": o.get("own ms"),
                    "pairs": o.get("pairs", 0),
                }
            )
    return points


def prediction(
    a: dict[str, Any] | None, task: str, impl: str, step_ms: float, host_ms: float | None, delta: str = "delta"
) -> float | None:
    """The ratio the probe predicts for a task cell, or None without a probe answer for its shape; `delta`:
    "delta_low" or "delta_high" for the ends of the prediction's interval (from the probe's delta's)."""
    if a is None or task in implementations.PROBES:
        return None
    v = a["shapes"].get(implementations.spec(task).HARNESS.probe_shape, {}).get(impl)
    if not v or v.get(f"{delta}_us") is None:
        return None
    host = host_ms * 1e-3 if host_ms is not None and not pd.isna(host_ms) else None
    return predicted_ratio(step_ms * 1e-3, host, v[f"{delta}_us"])


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
        if impl != PLAIN and shape in plain and r.weights_digest != plain[shape].weights_digest
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
            "mean of the plain segments just before and after it (within a second, in the same process); a pair "
            "with a segment whose two halves differ by more than 50% was hit by the machine's drift and is left out "
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
