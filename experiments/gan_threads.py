"""Why the GAN's Lightning ratio came out above the probe's prediction: the thread count.

    python -m experiments.gan_threads [--threads 1 2] [--rounds 12] [--json PATH]

The overhead probe measures the Trainer's cost per step on one torch thread; the tasks run on torch's
default, one thread per core. If the Trainer's own per-step work costs more when torch has more threads
(its small tensor operations each enter the intra-op thread pool; an idle pool's threads spin and
sleep), the probe's one-thread delta under-predicts a task on two threads. This measures both at each
thread count, in the same rounds: per round and thread count, one forked process runs the GAN (quick
preset, 32-true, manual optimization) as segments P L P D P (plain, lean Trainer, default Trainer),
and another runs the probe in its manual shape (two optimizers, as the GAN) the same way; the thread
counts alternate A B / B A over rounds. Per thread count it prints the GAN's measured ratios (median
over rounds, 95% order-statistic interval), the probe's deltas, and the ratio the probe predicts:
(plain GAN step + probe delta) / plain GAN step. The thread count changes what a step costs, never what
it trains: at each thread count the lean Trainer's GAN is bitwise the plain loop's (tested).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from implementations.mnist_gan import spec as gan
from loopbench.analysis import rounds
from loopbench.analysis.probe import PROBE, predicted_ratio
from loopbench.analysis.stats import agreement, robust_difference, robust_ratio
from loopbench.core.trainers import DEFAULTS, LEAN, PLAIN
from loopbench.core.types import RunConfig, RunResult
from loopbench.studies import overhead

IMPLS = (PLAIN, LEAN, DEFAULTS)


def round_cells(threads: int, k: int) -> list[list[RunConfig]]:
    """Round k at `threads`: the GAN's segments in one process, the probe's in another."""
    steps, warmup = gan.HARNESS.segment
    task = [
        RunConfig(
            "mnist_gan", impl, preset="quick", steps=steps, warmup_steps=warmup, repeat=k, slot=slot, threads=threads
        )
        for slot, impl in enumerate(rounds.sequence(IMPLS, k), 1)
    ]
    probe = [
        replace(c, overrides=c.overrides | {"threads": threads}, repeat=k)
        for c in overhead.plan("cpu", "manual", 1, impls=IMPLS, first=k)
    ]
    return [task, probe]


def _threads(r: RunResult) -> int:
    return r.config.get("threads") or r.config["overrides"].get("threads", 1)


def analyse(results: list[RunResult]) -> dict[int, dict[str, Any]]:
    """{threads: {"plain_ms", "probe_plain_us", impl: {"measured", "low", "high", "probe_delta_us", "predicted",
    "agrees"}}}."""
    out = {}
    for t in sorted({_threads(r) for r in results}):
        task = [r for r in results if r.config["task"] == "mnist_gan" and _threads(r) == t]
        probe = [r for r in results if r.config["task"] == PROBE and _threads(r) == t]
        task_pairs, _ = rounds.pairs(task, f"gan t{t}")
        probe_pairs, _ = rounds.pairs(probe, f"probe t{t}", one_thread=t == 1)
        plain = sorted(r.step_time_median_s for r in task if r.ok and r.config["impl"] == PLAIN)
        plain_s = plain[len(plain) // 2]
        row: dict[str, Any] = {"plain_ms": plain_s * 1e3}
        for impl in (LEAN, DEFAULTS):
            ratio = robust_ratio(
                [
                    (rounds.of_plain(p, lambda r: r.step_time_median_s), p.mine.step_time_median_s)
                    for p in task_pairs.get(impl, [])
                ]
            )
            delta = robust_difference(
                [
                    (p.mine.step_time_median_s - rounds.of_plain(p, lambda r: r.step_time_median_s)) * 1e6
                    for p in probe_pairs.get(impl, [])
                ]
            )
            predicted = predicted_ratio(plain_s, None, delta.delta)
            ends = [predicted_ratio(plain_s, None, d) for d in (delta.low, delta.high)]
            agrees = agreement(ratio.low, ratio.high, *ends) == "agrees"  # the intervals overlap
            row[impl] = {
                "measured": ratio.ratio,
                "low": ratio.low,
                "high": ratio.high,
                "pairs": ratio.pairs,
                "probe_delta_us": delta.delta,
                "probe_low_us": delta.low,
                "probe_high_us": delta.high,
                "predicted": predicted,
                "agrees": agrees,
            }
        out[t] = row
    return out


def lines(a: dict[int, dict[str, Any]]) -> list[str]:
    out = []
    for t, row in a.items():
        out.append(f"{t} thread(s): plain GAN step {row['plain_ms']:.2f} ms")
        for impl in (LEAN, DEFAULTS):
            v = row[impl]
            measured = f"{v['measured']:.3f}x" + (f" [{v['low']:.3f}, {v['high']:.3f}]" if v["low"] else "")
            out.append(
                f"  {impl:<20} measured {measured} ({v['pairs']} rounds); probe delta {v['probe_delta_us']:+.0f} us "
                f"[{v['probe_low_us']:+.0f}, {v['probe_high_us']:+.0f}] -> predicted {v['predicted']:.3f}x: "
                + ("agrees" if v["agrees"] else "DISAGREES")
            )
    return out


def main(argv: list[str] | None = None) -> int:
    from loopbench.launch.forked import run_forked_batch

    parser = argparse.ArgumentParser(prog="python -m experiments.gan_threads", description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.rounds < 6 or min(args.threads) < 1:
        parser.error("--rounds must be at least 6 (for an order-statistic interval) and --threads at least 1")
    results: list[RunResult] = []
    for k in range(args.rounds):
        for t in args.threads if k % 2 == 0 else args.threads[::-1]:
            for batch in round_cells(t, k):
                results += run_forked_batch(batch)
        print(f"round {k + 1} of {args.rounds} done", flush=True)
    failed = [f"{r.run_config.label}: {r.status}: {r.message}" for r in results if not r.ok]
    if failed:
        print("\n".join(failed), file=sys.stderr)
        return 1
    a = analyse(results)
    print("\n".join(lines(a)))
    if args.json:
        args.json.write_text(json.dumps({str(t): v for t, v in a.items()}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
