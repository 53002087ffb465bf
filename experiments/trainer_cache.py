"""Why the Trainer's own time per step grows after real model work while its instructions do not.

    python -m experiments.trainer_cache [--rounds 14] [--json PATH]

The overhead probe (auto shape, one thread) with its model's own work made longer in four ways, each about
4-7 ms a step:
- `busy 4 ms`: the forward spins on the clock (a loop of a few bytecodes): the step is longer and the core
  busy, while the caches and branch predictors keep the Trainer's state;
- `idle 4 ms`: the forward sleeps: the step is as long and the core is left to the VM's other tenants;
- `ballast 64 MiB`: the forward reads 64 MiB: it evicts the data caches;
- `matmuls in L1`: 200 small 64x64 matmuls and their backward: little data, but hundreds of calls through
  the dispatcher, autograd and the GEMM kernels, code enough to evict the Trainer's from the core's caches.
Per round and variant, one forked process runs segments P L P (plain, lean Trainer); the Trainer's own time is
taken in place (rest(L) - rest(plain), loopbench.analysis.inplace) and the paired whole-step delta beside it,
median over rounds with 95% order-statistic intervals. Then plain and lean of each variant are counted under
callgrind with its cache and branch simulation (this VM's L1i and L1d, then once with its L2 and once with its
L3 as the last level): the Trainer's extra instructions per step, which no variant should move, and its extra
simulated misses. The simulation sees this process alone: what it does not show, the VM's neighbours did.

If `busy` leaves the Trainer's time where `none` has it, the step's length and the core's clock are not the
cause; where the Trainer's extra misses grow with its time, the state the model's work leaves in the caches is.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

from experiments import measured
from loopbench.analysis import inplace, rounds
from loopbench.analysis.stats import robust_difference
from loopbench.core.trainers import LEAN, PLAIN
from loopbench.core.types import RunConfig, RunResult
from loopbench.studies import overhead

IMPLS = (PLAIN, LEAN)
VARIANTS: dict[str, dict[str, Any]] = {  # name: probe settings
    "none": {},
    "busy 4 ms": {"busy_ms": 4},
    "idle 4 ms": {"idle_ms": 4},
    "ballast 64 MiB": {"ballast_mib": 64},
    "matmuls in L1": {"spin": 200},
}
SETTINGS = ("ballast_mib", "spin", "busy_ms", "idle_ms")
SEGMENTS = {"none": 296}  # steps per segment; the others (a step of 4-7 ms): 60
COUNT = (24, 8)
EVENTS = {  # callgrind's simulated events (valgrind.SIMULATE): what each counts
    "I1mr": "instruction fetches missing L1i",
    "IL2mr": "instruction fetches missing L2",
    "IL3mr": "instruction fetches missing L3",
    "D1mr": "data reads missing L1d",
    "DL2mr": "data reads missing L2",
    "DL3mr": "data reads missing L3",
    "Bcm": "conditional branches mispredicted",
    "Bim": "indirect branches mispredicted",
}


def _with(c: RunConfig, name: str) -> RunConfig:
    return dataclasses.replace(c, overrides=c.overrides | VARIANTS[name])


def round_cells(k: int) -> list[list[RunConfig]]:
    """Round k: per variant one process of segments P L P; the variants' order reversed every other round."""
    names = list(VARIANTS) if k % 2 == 0 else list(VARIANTS)[::-1]
    return [[_with(c, n) for c in overhead.plan("cpu", "auto", 1, SEGMENTS.get(n, 60), IMPLS, first=k)] for n in names]


def count_cells() -> list[RunConfig]:
    cells = []
    for name in VARIANTS:
        for impl in IMPLS:
            c = RunConfig(overhead.PROBE, impl, "cpu", "32-true", "quick", 0, *COUNT, clock="instructions")
            cells.append(_with(dataclasses.replace(c, overrides={"shape": "auto"}), name))
    return cells


def _variant(r: RunResult) -> str:
    over = r.config["overrides"]
    return next(n for n, v in VARIANTS.items() if all(over.get(k, 0) == v.get(k, 0) for k in SETTINGS))


def analyse(timed: list[RunResult], counted: list[RunResult]) -> dict[str, Any]:
    """{variant: {"plain_step_us", "delta_us", "delta_low_us", "delta_high_us", "own_us", "own_low_us",
    "own_high_us", "pairs", "instructions_delta", "simulated_delta": {event: lean - plain per step}}}."""
    out: dict[str, Any] = {}
    for name in VARIANTS:
        mine = [r for r in timed if _variant(r) == name]
        # a sleeping step leaves the CPU idle by design: its CPU share cannot say the run was kept off the CPU
        found, _ = rounds.pairs(mine, name, one_thread="idle_ms" not in VARIANTS[name])
        pairs = found.get(LEAN, [])
        if not pairs:
            continue
        plain = sorted(rounds.of_plain(p, lambda r: r.step_time_median_s) for p in pairs)
        deltas = [(p.mine.step_time_median_s - rounds.of_plain(p, lambda r: r.step_time_median_s)) * 1e6 for p in pairs]
        d = robust_difference(deltas)
        row = {"plain_step_us": plain[len(plain) // 2] * 1e6, "delta_us": d.delta, "delta_low_us": d.low,
               "delta_high_us": d.high, "pairs": d.pairs}  # fmt: skip
        own = inplace.trainer_time(pairs)
        if own:
            row |= {k.removesuffix("_s") + "_us": v * 1e6 for k, v in own.items() if k.endswith("_s") and v is not None}
        counts: dict[str, dict[str, float]] = {}  # impl: its events per step, over the levels simulated
        for r in counted:
            if _variant(r) == name and r.ok and r.instructions_per_step:
                counts.setdefault(r.config["impl"], {}).update(r.simulated_per_step, Ir=r.instructions_per_step)
        if PLAIN in counts and LEAN in counts:
            lean, plain = counts[LEAN], counts[PLAIN]
            row["instructions_delta"] = lean["Ir"] - plain["Ir"]
            row["simulated_delta"] = {k: lean[k] - plain[k] for k in EVENTS if k in lean and k in plain}
        out[name] = row
    return out


def lines(a: dict[str, Any]) -> list[str]:
    out = []
    for name, v in a.items():
        own = f"{v['own_us']:+.0f} us [{v['own_low_us']:+.0f}, {v['own_high_us']:+.0f}]" if "own_low_us" in v else "–"
        text = (f"{name:<15} plain step {v['plain_step_us']:>8,.0f} us: the Trainer's own time in place {own}; "
                f"whole-step delta {v['delta_us']:+.0f} us [{v['delta_low_us']:+.0f}, {v['delta_high_us']:+.0f}] "
                f"({v['pairs']} rounds)")  # fmt: skip
        if "instructions_delta" in v:
            text += f"; counted {v['instructions_delta'] / 1e6:+.3f} M instructions per step"
        if v.get("simulated_delta"):
            text += "; simulated, per step: " + ", ".join(
                f"{EVENTS[k]} {n:+,.0f}" for k, n in v["simulated_delta"].items()
            )
        out.append(text)
    return out


if __name__ == "__main__":
    sys.exit(
        measured.main(
            None, "trainer_cache", __doc__, 14, round_cells, count_cells(), analyse, lines, simulate=("L2", "L3")
        )
    )
