"""Does the probe, taken after a few milliseconds of model work, predict what real jobs pay per step?

    python -m experiments.probe_after_work [--rounds 8] [--json PATH]

One invocation of rounds. Each round runs, one forked process each, segments P L P D P (plain, lean Trainer,
default Trainer) of:
- every task at three sizes, the bench's own cell among them (the task's `quick` preset: GAN at batch 64,
  CIFAR at batch 64, EfficientNet at batch 32), validation off inside the segments as on the pay curve;
- the overhead probe in both shapes, as measured (a near-zero step), and after model work of two kinds
  (experiments/trainer_cache.py): 200 small matmuls in its forward (code through the dispatcher, autograd and
  the GEMM kernels, little data), or a read of 64 MiB (more than the caches hold, the L3 included).
The Trainer's own time in place (rest(Lightning) - rest(plain), loopbench.analysis.inplace) of every point is set
against each probe in the task's shape, and against the task's other points (own = a constant per task):
"agrees" where the intervals overlap, the reports' one meaning of the word. Then the Trainers' extra instructions
per step are counted under callgrind on each task's shortest point and on the probe in both shapes, and the probe
after a read is scaled by the task's counted work over the probe's: own = delta_read x instructions(task) /
instructions(probe), the model that adds the work a task's Trainer does beyond the probe's (EfficientNet's 213
parameter tensors to the probe's few). A count depends on the code and versions, not on the machine's load, so
counts made elsewhere with the same code and versions may stand in (--counted).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

import implementations
from experiments import measured
from loopbench.analysis.paycurve import IMPLS, POINTS, Point, common, measured_at_point, per_task, point_of
from loopbench.analysis.probe import PROBE, SHAPES
from loopbench.analysis.stats import agreement
from loopbench.core.trainers import DEFAULTS, LEAN, PLAIN
from loopbench.core.types import ALLOCATORS, RunConfig, RunResult
from loopbench.studies import overhead, protocol
from loopbench.studies.paycurve import point_cells, point_count_cells

CURVE = {p.name: p for p in POINTS}
POINTS_HERE: tuple[Point, ...] = (  # per task, from the shortest step to the bench's cell
    CURVE["GAN, widths 16, batch 2"],
    CURVE["GAN, widths 16-128, batch 16"],
    CURVE["GAN quick, batch 64"],
    CURVE["CIFAR, widths 4-8, batch 2"],
    CURVE["CIFAR, widths 8-32, batch 16"],
    CURVE["CIFAR quick, batch 64"],
    CURVE["EfficientNet, image 32, batch 2"],
    CURVE["EfficientNet, image 64, batch 8"],
    CURVE["EfficientNet quick, batch 32"],
)
SETTINGS = ("spin", "ballast_mib")
READ = "after a 64 MiB read"
CELLS = ("GAN quick, batch 64", "CIFAR quick, batch 64", "EfficientNet quick, batch 32")  # the bench's
PROBES = {  # settings, steps per segment
    "as measured": ({}, protocol.SUITE_STEPS),
    "after matmuls": ({"spin": 200}, 60),
    "after a 64 MiB read": ({"ballast_mib": 64}, 60),
}


def _probe(k: int, shape: str, load: str) -> list[RunConfig]:
    settings, steps = PROBES[load]
    cells = overhead.plan("cpu", shape, 1, steps, IMPLS, first=k)
    return [dataclasses.replace(c, overrides=c.overrides | settings | {"threads": 1}) for c in cells]


def round_cells(k: int) -> list[list[RunConfig]]:
    """Round k: every point's process, then the probe's (two shapes, each load); reversed every other round."""
    batches = [point_cells(p, k) for p in POINTS_HERE] + [_probe(k, s, load) for s in SHAPES for load in PROBES]
    return batches if k % 2 == 0 else batches[::-1]


def count_cells() -> list[RunConfig]:
    """Plain loop and both Trainers counted on each task's shortest point, and on the probe in both shapes."""
    shortest = {p.task: p for p in reversed(POINTS_HERE)}
    return [c for p in shortest.values() for c in point_count_cells(p)] + [
        c for s in SHAPES for c in overhead.count_plan("cpu", s, IMPLS)
    ]


def _work(counted: list[RunResult]) -> dict[str, dict[str, float]]:
    """{task, or "probe <shape>": {Trainer: its instructions per step over the plain loop's}}, from the counts of
    a task's points (the first point with the plain loop counted) and of the probe as measured."""
    by: dict[str, dict[str, dict[str, float]]] = {}
    for r in counted:
        over = r.config["overrides"]
        if r.config["task"] == PROBE and any(over.get(k) for k in SETTINGS):
            continue
        point = None if r.config["task"] == PROBE else point_of(r, POINTS)
        key = (f"probe {over['shape']}", "") if point is None else (r.config["task"], point.name)
        by.setdefault(key, {}).setdefault(r.config["impl"], r.instructions_per_step)  # the first count of each
    out: dict[str, dict[str, float]] = {}
    for (name, _), counts in by.items():
        if PLAIN in counts and name not in out:
            out[name] = {impl: counts[impl] - counts[PLAIN] for impl in (LEAN, DEFAULTS) if impl in counts}
    return out


def _scaled(probe: dict[str, Any], factor: float) -> dict[str, Any]:
    return {k: probe[k] * factor for k in ("own_us", "own_low_us", "own_high_us") if probe.get(k) is not None}


def analyse(timed: list[RunResult], counted: list[RunResult]) -> dict[str, Any]:
    """{"points": [per point and Trainer: step, ratio, own time in place], "probes": {shape: {load: {Trainer: own
    time}}}, "models": {Trainer: {"per task": leave-one-out per task, "probe <load>": agreements}}}."""
    probes: dict[str, dict[str, Any]] = {}
    for r in timed:
        if r.config["task"] == PROBE:
            over = r.config["overrides"]
            load = next(n for n, (v, _) in PROBES.items() if all(over.get(k, 0) == v.get(k, 0) for k in SETTINGS))
            probes.setdefault(r.config["overrides"]["shape"], {}).setdefault(load, []).append(r)
    probe_own = {
        shape: {load: {i: measured_at_point(runs, i) for i in (LEAN, DEFAULTS)} for load, runs in by_load.items()}
        for shape, by_load in probes.items()
    }
    work = _work(counted)
    rows = []
    for point in POINTS_HERE:
        runs = [r for r in timed if r.config["task"] != PROBE and point_of(r, POINTS_HERE) is point]
        plain = sorted(
            r.step_time_median_s for r in runs if r.ok and r.config["impl"] == PLAIN and r.step_time_median_s
        )
        if not plain:
            continue
        shape = implementations.spec(point.task).HARNESS.probe_shape
        for impl in (LEAN, DEFAULTS):
            row = {"point": point.name, "task": point.task, "impl": impl, "shape": shape, "cell": point.name in CELLS,
                   "step_ms": plain[len(plain) // 2] * 1e3} | measured_at_point(runs, impl)  # fmt: skip
            for load in PROBES:
                p = probe_own.get(shape, {}).get(load, {}).get(impl, {})
                row[f"agrees_probe_{load}"] = _overlap(row, p)
            mine, probe = work.get(point.task, {}).get(impl), work.get(f"probe {shape}", {}).get(impl)
            if mine and probe:
                row["work_factor"] = mine / probe  # the task's Trainer's counted work over the probe's
                row["scaled"] = _scaled(probe_own.get(shape, {}).get(READ, {}).get(impl, {}), mine / probe)
                row["agrees_scaled"] = _overlap(row, row["scaled"])
            rows.append(row)
    models = {}
    for impl in (LEAN, DEFAULTS):
        mine = [r for r in rows if r["impl"] == impl and r.get("own_low_us") is not None]
        models[impl] = {
            "per task": {
                t: per_task([r for r in mine if r["task"] == t]) for t in dict.fromkeys(r["task"] for r in mine)
            },
            "one value": common(mine),
            **{f"probe {load}": int(sum(bool(r[f"agrees_probe_{load}"]) for r in mine)) for load in PROBES},
            "scaled by counted work": int(sum(bool(r.get("agrees_scaled")) for r in mine)),
            "scaled points": int(sum("agrees_scaled" in r for r in mine)),
            "points": len(mine),
        }
    return {"points": rows, "probes": probe_own, "models": models, "work": work}


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool | None:
    """The reports' "agrees" (stats.agreement) of two in-place figures; None where either has no interval."""
    verdict = agreement(a.get("own_low_us"), a.get("own_high_us"), b.get("own_low_us"), b.get("own_high_us"))
    return None if verdict == "–" else verdict == "agrees"


def _own(v: dict[str, Any]) -> str:
    if v.get("own_low_us") is None:
        return "–"
    return f"{v['own_us']:+,.0f} us [{v['own_low_us']:+,.0f}, {v['own_high_us']:+,.0f}]"


def lines(a: dict[str, Any]) -> list[str]:
    out = []
    for shape, by_load in a["probes"].items():
        for load, v in by_load.items():
            out.append(f"the probe ({shape}), {load}: lean {_own(v[LEAN])}; default {_own(v[DEFAULTS])}")
    for r in a["points"]:
        marks = ", ".join(f"{load}: {'agrees' if r[f'agrees_probe_{load}'] else 'no'}" for load in PROBES)
        if "scaled" in r:
            marks += (
                f"; scaled x{r['work_factor']:.2f}: {_own(r['scaled'])}, {'agrees' if r['agrees_scaled'] else 'no'}"
            )
        cell = " (the bench's cell)" if r["cell"] else ""
        out.append(f"{r['point']}{cell}, {r['impl']}: plain {r['step_ms']:,.1f} ms, own {_own(r)}; probe {marks}")
    for impl, m in a["models"].items():
        tasks = "; ".join(f"{t} {v['predicted']} of {v['points']}" for t, v in m["per task"].items())
        probes = "; ".join(f"probe {load} {m[f'probe {load}']} of {m['points']}" for load in PROBES)
        probes += f"; scaled by counted work {m['scaled by counted work']} of {m['scaled points']}"
        out.append(f"{impl}: each point from its task's others: {tasks}; {probes}; one value for all: {m['one value']}")
    return out


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(prog="python -m experiments.probe_after_work", add_help=False)
    options.add_argument("--allocator", choices=tuple(ALLOCATORS), default="glibc",
                         help="every process's allocator (default: glibc, as the environment sets it)")  # fmt: skip
    known, rest = options.parse_known_args(argv)

    def batches(k: int) -> list[list[RunConfig]]:
        return [[dataclasses.replace(c, allocator=known.allocator) for c in b] for b in round_cells(k)]

    return measured.main(rest, "probe_after_work", __doc__, 8, batches, count_cells(), analyse, lines, (options,))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
