"""What a Trainer costs per optimizer step, measured where it is large and noise is small.

The overhead probe (`implementations/overhead_probe`) does almost no compute, so a step's time is
mostly the framework's. Each implementation runs in many short fresh processes in A B C / C B A
order; each Lightning run is paired with the plain run of the same repeat, and the per-step
difference gets a 95% t interval over the pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import implementations
from loopbench.stats import paired_difference
from loopbench.suite import run_cells
from loopbench.types import RunConfig, RunResult

PROBE = "overhead_probe"


def plan(device: str, shape: str, processes: int, steps: int | None, seed: int = 0) -> list[RunConfig]:
    """`processes` fresh runs of each implementation, alternating A B C / C B A."""
    impls = tuple(implementations.IMPLS)
    cells = []
    for repeat in range(processes):
        order = impls if repeat % 2 == 0 else tuple(reversed(impls))
        cells += [
            RunConfig(PROBE, impl, device, "32-true", "quick", seed, steps, overrides={"shape": shape}, repeat=repeat)
            for impl in order
        ]
    return cells


def summarize(results: list[RunResult]) -> dict[str, Any]:
    """{impl: {"us_per_step", and for Lightning variants "delta_us", "delta_low_us", "delta_high_us"}}."""
    failed = [r for r in results if not r.ok]
    if failed:
        raise RuntimeError(f"{failed[0].run_config.label}: {failed[0].status}: {failed[0].message}")
    medians: dict[str, dict[int, float]] = {}
    for r in results:
        medians.setdefault(r.config["impl"], {})[r.config["repeat"]] = r.step_time_median_s * 1e6
    plain = medians["pytorch"]
    out: dict[str, Any] = {"pytorch": {"us_per_step": sum(plain.values()) / len(plain)}}
    for impl, runs in medians.items():
        if impl == "pytorch":
            continue
        d = paired_difference([(plain[k], runs[k]) for k in sorted(plain.keys() & runs.keys())])
        out[impl] = {
            "us_per_step": sum(runs.values()) / len(runs),
            "delta_us": d.delta,
            "delta_low_us": d.low,
            "delta_high_us": d.high,
            "pairs": d.pairs,
        }
    return out


def measure(
    device: str,
    shapes: tuple[str, ...],
    processes: int,
    steps: int | None,
    on_result: Callable[[int, int, RunResult], None] | None = None,
) -> dict[str, Any]:
    """Run the probe for each shape and return the JSON-ready answer."""
    answer: dict[str, Any] = {
        "device": device,
        "threads": 1,
        "processes": processes,
        "step_means": {"auto": "one optimizer step", "manual": "one batch: two optimizer steps"},
        "shapes": {},
    }
    for shape in shapes:
        cells = plan(device, shape, processes, steps)
        results = run_cells(cells, on_result=on_result)
        answer["shapes"][shape] = summarize(results)
        answer["steps"] = results[0].task_config.get("steps")
        answer["env"] = {k: results[0].env.get(k) for k in ("cpu", "cpu_flags", "torch", "pytorch_lightning", "commit")}
    return answer


def lines(answer: dict[str, Any]) -> list[str]:
    out = []
    for shape, impls in answer["shapes"].items():
        for impl, v in impls.items():
            line = f"{shape:<7} {impl:<19} {v['us_per_step']:9.1f} us/step"
            if "delta_us" in v:
                interval = f"[{v['delta_low_us']:+.1f}, {v['delta_high_us']:+.1f}]"
                line += f"  {v['delta_us']:+9.1f} us {interval} ({v['pairs']} pairs)"
            out.append(line)
    return out
