"""Does the GAN pay, in instructions, what the probe's two-optimizer shape predicts? (The per-tensor suspect.)

    python -m experiments.gan_counts [--json PATH]

The pay curve put the GAN's measured time ratios above the probe's prediction at every point (4 of 4
points for each Trainer; p = 0.12, so a lead, not a result), and the thread count was ruled out
(experiments/gan_threads.py). The suspect left: per-step work that grows with the number of parameter
tensors (`toggle_optimizer` walks every optimizer's parameters twice per update, `zero_grad` and the
optimizer step visit each), which the probe, with 4 tensors, would not show. Instructions settle it
without the machine's noise: the GAN's cell (quick preset, 32-true, one torch thread: the suite's
`--counts on` cell) and the probe's manual shape (plain loop, lean and default Trainer) are counted under
valgrind's callgrind, side by side, and each Lightning variant's delta over the plain loop is set
beside the probe's with the two jobs' parameter-tensor counts: a per-tensor term would show as a GAN
delta above the probe's by about (its tensors - the probe's) x the term.

Under valgrind torch takes its AVX2 kernels (valgrind runs no AVX-512), so a counted run does not
reproduce a native run's bits; plain and Lightning still train the same bits as each other there, and
the script checks and prints that for every variant.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from implementations.mnist_gan import spec as gan
from implementations.overhead_probe import spec as probe
from loopbench.core.trainers import DEFAULTS, LEAN, PLAIN
from loopbench.core.types import RunConfig, RunResult
from loopbench.launch.valgrind import count, unavailable
from loopbench.studies import overhead

IMPLS = (PLAIN, LEAN, DEFAULTS)


def cells() -> tuple[list[RunConfig], list[RunConfig]]:
    """The GAN's counted cell (as the suite counts it) and the probe's manual shape (as the overhead command)."""
    steps, warmup = gan.HARNESS.count
    task = [
        RunConfig("mnist_gan", impl, "cpu", "32-true", "quick", 0, steps, warmup, clock="instructions", threads=1)
        for impl in IMPLS
    ]
    return task, overhead.count_plan("cpu", "manual", IMPLS)


def tensors() -> dict[str, int]:
    """Parameter tensors each job's optimizers hold (what per-tensor work would scale with)."""
    cfg = gan.PRESETS["quick"]
    nets = gan.build_nets(cfg)
    models = probe.build_models(dataclasses.replace(probe.PRESETS["quick"], shape="manual"))
    return {"mnist_gan": len(list(nets.parameters())), "overhead_probe": len(list(models.parameters()))}


def analyse(task: list[RunResult], probe_runs: list[RunResult], counts: dict[str, int]) -> dict[str, Any]:
    """Per Lightning variant: the GAN's delta, the probe's, their difference per extra tensor; bitwise per job."""

    def per_step(runs: list[RunResult]) -> dict[str, float]:
        return {r.config["impl"]: r.instructions_per_step for r in runs if r.ok and r.instructions_per_step}

    def same_bits(runs: list[RunResult]) -> dict[str, bool]:
        ref = next((r for r in runs if r.config["impl"] == PLAIN and r.ok), None)
        return {
            r.config["impl"]: ref is not None and r.losses == ref.losses and r.weights_digest == ref.weights_digest
            for r in runs
            if r.config["impl"] != PLAIN and r.ok
        }

    g, p = per_step(task), per_step(probe_runs)
    extra = counts["mnist_gan"] - counts["overhead_probe"]
    out: dict[str, Any] = {"tensors": counts, "plain": {"mnist_gan": g.get(PLAIN), "overhead_probe": p.get(PLAIN)}}
    for impl in (LEAN, DEFAULTS):
        if not all(k in d for d in (g, p) for k in (PLAIN, impl)):
            continue
        dg, dp = g[impl] - g[PLAIN], p[impl] - p[PLAIN]
        out[impl] = {
            "gan_delta": dg,
            "probe_delta": dp,
            "difference": dg - dp,
            "per_extra_tensor": (dg - dp) / extra if extra else None,
            "gan_ratio": g[impl] / g[PLAIN],
            "predicted_ratio": (g[PLAIN] + dp) / g[PLAIN],
        }
    out["same_bits"] = {"mnist_gan": same_bits(task), "overhead_probe": same_bits(probe_runs)}
    out["failed"] = [f"{r.run_config.label}: {r.status}: {r.message}" for r in task + probe_runs if not r.ok]
    return out


def lines(a: dict[str, Any]) -> list[str]:
    t = a["tensors"]
    out = [f"parameter tensors: the GAN {t['mnist_gan']}, the probe (manual) {t['overhead_probe']}"]
    for impl in (LEAN, DEFAULTS):
        if impl in a:
            v = a[impl]
            out.append(
                f"{impl:<20} GAN {v['gan_delta'] / 1e6:+.3f} M/step, probe {v['probe_delta'] / 1e6:+.3f} M: "
                f"difference {v['difference'] / 1e6:+.3f} M ({v['per_extra_tensor']:+,.0f} per extra tensor); "
                f"counted ratio {v['gan_ratio']:.4f}x, the probe predicts {v['predicted_ratio']:.4f}x"
            )
    for job, same in a["same_bits"].items():
        out.append(f"{job}: " + ", ".join(f"{i} {'bitwise' if ok else 'NOT bitwise'}" for i, ok in same.items()))
    return out + [f"FAILED: {line}" for line in a["failed"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the analysis here")
    args = parser.parse_args(argv)
    if reason := unavailable():
        print(reason, file=sys.stderr)
        return 2
    with ThreadPoolExecutor(max_workers=2) as pool:  # a count does not depend on load: side by side
        task, probe_runs = pool.map(lambda c: count(c, 3600), cells())
    a = analyse(task, probe_runs, tensors())
    print("\n".join(lines(a)))
    if args.json:
        args.json.write_text(json.dumps(a, indent=1) + "\n")
    return 1 if a["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
