"""The one-call GPU check: every CUDA path of the suite once, in at most 8 minutes, into at most 8 files.

    tools/gpu-check.sh OUTDIR            (on a GPU machine: python3 -m loopbench.gpucheck OUTDIR)
    python3 -m loopbench.gpucheck OUTDIR --plan   (anywhere: what it would run, and its budget)

Its steps are data (STEPS): the step clock on CUDA (event times add up to the window, the host is ahead of a
GPU-bound step, the memory peaks are set); every task's parity in `bf16-mixed` and `16-mixed`, each with its
positive control (a nudged learning rate must fail the tolerance); the probe on CUDA with host and device times;
a smoke bench of one task with its REPORT.md, achieved FLOP/s and how busy the GPU was. Each step runs in a
process group of its own: at its limit the group gets SIGTERM (the bench then writes its report), after a grace
period SIGKILL, and where the bench was cut short its report is rendered here from the runs it logged. A failed
step never stops the next; `summary.json` says what each did, with the GPU, driver and settings that place
every number. Exit 0 when every step passed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import implementations
from loopbench import cli
from loopbench.core.store import LOG_NAME, load_results
from loopbench.measure import memory
from loopbench.measure.clock import StepClock
from loopbench.measure.env import environment
from loopbench.report import write_report

BUDGET_S = 480  # the whole check, every step's limit and grace included: a rerun fits in what a lease leaves
GRACE_S = 15  # after SIGTERM, for a step to write what it has (the bench's report), before SIGKILL
MAX_FILES = 8  # what a GPU machine's caller takes back
NO_CUDA = "no CUDA device is visible to torch; run it on a GPU machine"
PARITY = tuple((task, p) for task in implementations.TASKS for p in ("bf16-mixed", "16-mixed"))


@dataclass(frozen=True)
class Step:
    name: str
    what: str
    limit_s: int
    keeps: tuple[str, ...]  # the files it leaves in OUTDIR
    argv: Callable[[Path, Path], list[list[str]]]  # (OUTDIR, work folder) -> its processes, one after another


def _loopbench(*args: str) -> list[str]:
    return [sys.executable, "-m", "loopbench", *args]


def _bench(out: Path, work: Path) -> list[list[str]]:
    return [[sys.executable, "-m", "pytest", "benchmarks", "--benchmark-only", "-q", "-p", "no:cacheprovider",
             "--lb-devices", "cuda", "--lb-tasks", "mnist_gan", "--lb-precisions", "bf16-mixed",
             "--lb-preset", "smoke", "--lb-repeats", "3", "--lb-probe-repeats", "2", "--lb-out", str(work / "bench"),
             "--benchmark-json", str(out / "pytest-benchmark.json")]]  # fmt: skip


STEPS = (
    Step("clock", "the step clock on CUDA: events add up to the window, host below device, memory peaks", 30,
         ("clock.json",), lambda out, work: [[sys.executable, "-m", "loopbench.gpucheck", "--clock", str(out)]]),
    Step("parity", "every task's parity in bf16-mixed and 16-mixed on CUDA, each with its positive control "
         "(learning rate x1.001 must fail the tolerance), in one process", 150, ("parity.json",),
         lambda out, work: [[sys.executable, "-m", "loopbench.gpucheck", "--parity", str(out)]]),
    Step("probe", "the overhead probe on CUDA, host and device time per step", 90, ("probe.json",),
         lambda out, work: [_loopbench("overhead", "--device", "cuda", "--repeats", "2", "--budget", "10",
                                       "--counts", "off", "--json", str(out / "probe.json"))]),
    Step("bench", "a smoke bench of the GAN on CUDA: its REPORT.md, FLOP/s, MFU, how busy the GPU was", 150,
         ("REPORT.md", "results.json", "pytest-benchmark.json"), _bench),
)  # fmt: skip
ALWAYS = ("summary.json", "log.txt")


def check_plan(steps: tuple[Step, ...] = STEPS) -> None:
    """The plan fits: its limits and graces within BUDGET_S, its files within MAX_FILES."""
    total = sum(s.limit_s + GRACE_S for s in steps)
    files = [*ALWAYS, *(f for s in steps for f in s.keeps)]
    if total > BUDGET_S or len(files) > MAX_FILES or len(set(files)) != len(files):
        raise AssertionError(f"the check's plan does not fit: {total} s, files {files}")


def run_step(cmd: list[str], limit_s: float, log: Any, grace_s: float = GRACE_S) -> int | str:
    """One process in a group of its own; at `limit_s` SIGTERM to the group, SIGKILL after `grace_s`."""
    proc = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parents[1], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    try:
        return proc.wait(timeout=max(limit_s, 1))
    except subprocess.TimeoutExpired:
        pass
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            break
    return "timeout"


def finish(step: Step, out: Path, work: Path) -> None:
    """Gather what a step left in the work folder into OUTDIR's few files; a bench cut short before its report
    gets one rendered from the runs it logged."""
    if step.name != "bench":
        return
    folder = work / "bench"
    if not (folder / "REPORT.md").is_file() and (folder / LOG_NAME).is_file():
        write_report(load_results(folder / LOG_NAME), folder)
    for name in ("REPORT.md", "results.json"):
        if (folder / name).is_file():
            shutil.copy(folder / name, out / name)


def run(out: Path, steps: tuple[Step, ...] = STEPS, grace_s: float = GRACE_S) -> int:
    """Every step, each within its limit; what it printed goes to log.txt, how it ended to summary.json."""
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"env": environment(torch.device("cuda")) if torch.cuda.is_available() else {}}
    summary["steps"] = []
    with tempfile.TemporaryDirectory(prefix="loopbench-gpucheck-") as tmp, (out / "log.txt").open("w") as log:
        for step in steps:
            start, codes = time.monotonic(), []
            for cmd in step.argv(out, Path(tmp)):
                log.write(f"\n== {step.name}: {' '.join(cmd)}\n")
                log.flush()
                codes.append(run_step(cmd, step.limit_s - (time.monotonic() - start), log, grace_s))
                if codes[-1] == "timeout":
                    break
            finish(step, out, Path(tmp))
            done = {"step": step.name, "what": step.what, "codes": codes, "passed": all(c == 0 for c in codes),
                    "seconds": round(time.monotonic() - start, 1)}  # fmt: skip
            summary["steps"].append(done)
            (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
            print(f"{step.name:<7} {'passed' if done['passed'] else 'FAILED'} ({done['seconds']} s)", flush=True)
    return 0 if all(s["passed"] for s in summary["steps"]) else 1


def parity_check(out: Path) -> int:
    """Every PARITY cell through `loopbench parity` in this one process (CUDA and Lightning start once), into
    parity.json; exit 0 when every cell holds with its positive control."""
    found: dict[str, Any] = {}
    codes = []
    with tempfile.TemporaryDirectory() as tmp:
        for task, precision in PARITY:
            path = Path(tmp) / f"{task}-{precision}.json"
            argv = ["parity", "--task", task, "--device", "cuda", "--precision", precision, "--json", str(path)]
            codes.append(cli.main(argv))
            if codes[-1] == 2:  # a refusal (no CUDA device): every other cell would say the same
                return 2
            found[f"{task}-{precision}"] = json.loads(path.read_text()) if path.is_file() else {"exit": codes[-1]}
            (out / "parity.json").write_text(json.dumps(found, indent=1) + "\n")
    return 0 if all(c == 0 for c in codes) else 1


def clock_check(out: Path) -> int:
    """The step clock on a GPU-bound step: its event times add up to the window, the host's time per step is
    below the device's (the host runs ahead), and the CUDA memory peaks are set."""
    device = torch.device("cuda", 0)
    memory.reset_cuda_peak(device)
    a = torch.randn(4096, 4096, device=device)
    clock = StepClock(device, warmup_steps=3)
    for _ in range(23):
        for _ in range(8):  # ~10 ms of matrix products per step on a large GPU, queued without a sync
            a = torch.tanh(a @ a)
        clock.tick()
    clock.stop()
    s = clock.summary(batch_size=1)
    timed = sum(s["step_times_s"][s["warmup_steps"] :])
    peaks = memory.cuda_peaks(device)
    checks = {
        "events add up to the window (within 5%)": abs(timed - s["window_s"]) <= 0.05 * s["window_s"],
        "host time per step below the device's": s["host_step_time_median_s"] < s["step_time_median_s"],
        "memory peaks set": all(peaks.get(k) for k in ("peak_cuda_allocated_bytes", "peak_cuda_reserved_bytes")),
    }
    (out / "clock.json").write_text(json.dumps({"checks": checks, "summary": s, "peaks": peaks, "timed_s": timed},
                                               indent=1) + "\n")  # fmt: skip
    return 0 if all(checks.values()) else 1


def print_plan(steps: tuple[Step, ...] = STEPS) -> None:
    for step in steps:
        print(f"{step.name:<7} {step.limit_s:>4} s  {step.what}; keeps {', '.join(step.keeps) or 'its log'}")
    total = sum(s.limit_s + GRACE_S for s in steps)
    print(f"in all   {total:>4} s of {BUDGET_S}, {GRACE_S} s of grace after each step's limit included, from a cold "
          f"start (the machine's own start comes first); files: {', '.join(ALWAYS)} and the above")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loopbench.gpucheck", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?", help="folder for the check's files (created)")
    parser.add_argument("--plan", action="store_true", help="print the steps and their limits; run nothing")
    parser.add_argument("--clock", type=Path, help=argparse.SUPPRESS)  # the clock step's own process
    parser.add_argument("--parity", type=Path, help=argparse.SUPPRESS)  # the parity step's own process
    args = parser.parse_args(argv)
    check_plan()
    if args.plan:
        print_plan()
        return 0
    target = args.clock or args.parity or args.out
    if target is None or (target.exists() and not target.is_dir()):
        print("loopbench gpucheck: error: name an output folder (OUTDIR), not a file", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print(f"loopbench gpucheck: error: {NO_CUDA}", file=sys.stderr)
        return 2
    if args.clock or args.parity:
        return clock_check(args.clock) if args.clock else parity_check(args.parity)
    return run(args.out)


if __name__ == "__main__":
    sys.exit(main())
