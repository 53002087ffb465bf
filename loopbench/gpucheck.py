"""The one-call GPU check: every CUDA path of the suite once, in at most 8 minutes, into at most 8 files.

    tools/gpu-check.sh OUTDIR            (on a GPU machine: python3 -m loopbench.gpucheck OUTDIR)
    python3 -m loopbench.gpucheck OUTDIR --plan   (anywhere: what it would run, and its budget)

Its steps are data (STEPS): the `gpu`-marked tests; the step clock on CUDA (event times add up to the
window, the host is ahead of a GPU-bound step, the memory peaks are set); one parity cell per task in
`bf16-mixed` and `16-mixed`; the probe on CUDA with host and device times; a smoke bench of one task with
its REPORT.md. Each step has its own time limit, a failed step never stops the next, and `summary.json`
says what each did. Exit 0 when every step passed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import implementations
from loopbench.measure import memory
from loopbench.measure.clock import StepClock

BUDGET_S = 480  # the whole check; each step's limit below, added up, must fit
MAX_FILES = 8  # what a GPU machine's caller takes back
PARITY = tuple((task, p) for task in implementations.TASKS for p in ("bf16-mixed", "16-mixed"))


@dataclass(frozen=True)
class Step:
    name: str
    what: str
    limit_s: int
    keeps: tuple[str, ...]  # the files it leaves in OUTDIR


STEPS = (
    Step("tests", "the gpu-marked tests", 110, ()),
    Step("clock", "the step clock on CUDA: events add up to the window, host below device, memory peaks", 30,
         ("clock.json",)),
    Step("parity", "one parity cell per task in bf16-mixed and 16-mixed, on CUDA", 120, ("parity.json",)),
    Step("probe", "the overhead probe on CUDA, host and device time per step", 90, ("probe.json",)),
    Step("bench", "a smoke bench of one task on CUDA, with its REPORT.md", 130,
         ("REPORT.md", "results.json", "pytest-benchmark.json")),
)  # fmt: skip
ALWAYS = ("summary.json", "log.txt")


def check_plan(steps: tuple[Step, ...] = STEPS) -> None:
    """The plan fits: its limits within BUDGET_S, its files within MAX_FILES."""
    total = sum(s.limit_s for s in steps)
    files = [*ALWAYS, *(f for s in steps for f in s.keeps)]
    if total > BUDGET_S or len(files) > MAX_FILES or len(set(files)) != len(files):
        raise AssertionError(f"the check's plan does not fit: {total} s, files {files}")


def commands(step: Step, out: Path, work: Path) -> list[list[str]]:
    """The processes of a step, run one after another in the repository's root."""
    py = sys.executable
    if step.name == "tests":
        return [[py, "-m", "pytest", "tests", "-m", "gpu", "-q", "-p", "no:cacheprovider"]]
    if step.name == "clock":
        return [[py, "-m", "loopbench.gpucheck", "--clock", str(out / "clock.json")]]
    if step.name == "parity":
        return [
            [py, "-m", "loopbench", "parity", "--task", task, "--device", "cuda", "--precision", p, "--preset", "smoke",
             "--json", str(work / f"parity-{task}-{p}.json")]
            for task, p in PARITY
        ]  # fmt: skip
    if step.name == "probe":
        return [[py, "-m", "loopbench", "overhead", "--device", "cuda", "--repeats", "2", "--budget", "10",
                 "--instructions", "off", "--json", str(out / "probe.json")]]  # fmt: skip
    if step.name == "bench":
        return [[py, "-m", "pytest", "benchmarks", "--benchmark-only", "-q", "-p", "no:cacheprovider",
                 "--lb-devices", "cuda", "--lb-tasks", "mnist_gan", "--lb-precisions", "bf16-mixed",
                 "--lb-preset", "smoke", "--lb-repeats", "6", "--lb-probe-repeats", "2",
                 "--lb-out", str(work / "bench"), "--benchmark-json", str(out / "pytest-benchmark.json")]]  # fmt: skip
    raise ValueError(step.name)


def finish(step: Step, out: Path, work: Path) -> None:
    """Gather what a step left in the work folder into OUTDIR's few files."""
    if step.name == "parity":
        found = {p.stem.removeprefix("parity-"): json.loads(p.read_text()) for p in sorted(work.glob("parity-*.json"))}
        (out / "parity.json").write_text(json.dumps(found, indent=1) + "\n")
    if step.name == "bench":
        for name in ("REPORT.md", "results.json"):
            if (work / "bench" / name).is_file():
                shutil.copy(work / "bench" / name, out / name)


def run(out: Path, steps: tuple[Step, ...] = STEPS) -> int:
    """Every step, each within its limit; what it printed goes to log.txt, how it ended to summary.json."""
    out.mkdir(parents=True, exist_ok=True)
    summary: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="loopbench-gpucheck-") as tmp, (out / "log.txt").open("w") as log:
        root = Path(__file__).resolve().parents[1]
        for step in steps:
            start, codes = time.monotonic(), []
            for cmd in commands(step, out, Path(tmp)):
                left = step.limit_s - (time.monotonic() - start)
                log.write(f"\n== {step.name}: {' '.join(cmd)}\n")
                log.flush()
                try:
                    codes.append(subprocess.run(cmd, cwd=root, stdout=log, stderr=subprocess.STDOUT,
                                                timeout=max(left, 1)).returncode)  # fmt: skip
                except subprocess.TimeoutExpired:
                    codes.append("timeout")
                    break
            finish(step, out, Path(tmp))
            seconds = round(time.monotonic() - start, 1)
            passed = all(c == 0 for c in codes)
            summary.append({"step": step.name, "what": step.what, "codes": codes, "passed": passed, "seconds": seconds})
            (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
            print(f"{step.name:<7} {'passed' if summary[-1]['passed'] else 'FAILED'} ({summary[-1]['seconds']} s)",
                  flush=True)  # fmt: skip
    return 0 if all(s["passed"] for s in summary) else 1


def clock_check(path: Path) -> int:
    """The step clock on a GPU-bound step: its event times add up to the window, the host's time per step is
    below the device's (the host runs ahead), and the CUDA memory peaks are set."""
    device = torch.device("cuda")
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
    path.write_text(json.dumps({"checks": checks, "summary": s, "peaks": peaks, "timed_s": timed}, indent=1) + "\n")
    return 0 if all(checks.values()) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loopbench.gpucheck", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?", help="folder for the check's files (created)")
    parser.add_argument("--plan", action="store_true", help="print the steps and their limits; run nothing")
    parser.add_argument("--clock", type=Path, help=argparse.SUPPRESS)  # the clock step's own process
    args = parser.parse_args(argv)
    if args.clock:
        return clock_check(args.clock)
    check_plan()
    if args.out is None or (args.out.exists() and not args.out.is_dir()):
        print("loopbench gpucheck: error: name an output folder (OUTDIR), not a file", file=sys.stderr)
        return 2
    if args.plan:
        for step in STEPS:
            print(f"{step.name:<7} {step.limit_s:>4} s  {step.what}; keeps {', '.join(step.keeps) or 'its log'}")
        print(f"in all   {sum(s.limit_s for s in STEPS):>4} s of {BUDGET_S}; files: {', '.join(ALWAYS)} and the above")
        return 0

    if not torch.cuda.is_available():
        print("loopbench gpucheck: error: no CUDA device is visible to torch; run it on a GPU machine", file=sys.stderr)
        return 2
    return run(args.out)


if __name__ == "__main__":
    sys.exit(main())
