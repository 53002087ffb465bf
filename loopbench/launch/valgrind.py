"""Instructions per training step, counted under valgrind's callgrind: a measure that noisy neighbours cannot move.

Runs whose clock is "instructions" go to one process under `valgrind --tool=callgrind --instr-atstart=no`:
imports and set-up run uninstrumented (fast), and the step clock counts only its window (through
loopbench.measure.callgrind). A count moves by well under 1% between runs of the same code, versions and
inputs (PYTHONHASHSEED is fixed for it); docs/method.md has the numbers. Where valgrind is missing, or on
another platform, `unavailable()` says why in one line and the suite measures time only.

    python -m loopbench.launch.valgrind CONFIGS.json RESULTS.json   (under valgrind; the runs one after another)
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from loopbench.core.quiet import quiet_lightning
from loopbench.core.types import RunConfig, RunResult
from loopbench.launch.child import process_env, run_one
from loopbench.measure import callgrind

CPU_ONLY = "instruction counts: CPU only (valgrind cannot follow a GPU's work); time only"


def unavailable(device: str = "cpu") -> str | None:
    """Why instructions cannot be counted here, on `device` (one line), or None."""
    if not device.startswith("cpu"):
        return CPU_ONLY
    if os.environ.get("LOOPBENCH_INSTRUCTIONS") == "off":
        return "instruction counts: off (LOOPBENCH_INSTRUCTIONS=off); time only"
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return f"instruction counts need x86-64 Linux (this is {sys.platform} {platform.machine()}); time only"
    if shutil.which("valgrind") is None:
        return "instruction counts need valgrind (not installed here: apt-get install valgrind); time only"
    return None


# callgrind's cache and branch simulation with one core of this VM's caches (lscpu: 32 KiB L1i and L1d, 512 KiB
# L2 per core, a 32 MiB L3). Callgrind simulates two levels, L1 and a last level (LL): the L2 or the L3 here.
_L1 = ("--cache-sim=yes", "--branch-sim=yes", "--I1=32768,8,64", "--D1=32768,8,64")
SIMULATE = {"L2": (*_L1, "--LL=524288,8,64"), "L3": (*_L1, "--LL=33554432,16,64")}


def count(configs: list[RunConfig], timeout_s: float, simulate: str | None = None) -> list[RunResult]:
    """Run `configs` one after another in one process under callgrind; each result gets instructions_per_step,
    and with `simulate` (a last level of SIMULATE) the simulated cache misses and branch mispredictions per step,
    `simulated_per_step`, under callgrind's names with LL named for the level (ILmr: IL2mr or IL3mr)."""
    reason = unavailable(configs[0].device)
    if reason:
        return [RunResult.failed(c, "unsupported", reason) for c in configs]
    with tempfile.TemporaryDirectory(prefix="loopbench-count-") as tmp:
        cfg_path, out_path, log_path = Path(tmp, "configs.json"), Path(tmp, "results.json"), Path(tmp, "valgrind.log")
        cfg_path.write_text(json.dumps([c.to_dict() for c in configs]))
        env = process_env(configs[0].lightning, configs[0].allocator) | {callgrind.ENV: "1", "PYTHONHASHSEED": "0"}
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={tmp}/cg.out"]
        cmd += SIMULATE[simulate] if simulate else ()
        cmd += [
            f"--log-file={log_path}",
            sys.executable,
            "-m",
            "loopbench.launch.valgrind",
            str(cfg_path),
            str(out_path),
        ]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _running.add(proc)
        try:
            stderr = proc.communicate(timeout=timeout_s)[1]
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return [RunResult.failed(c, "timeout", f"no count after {timeout_s:g} s under valgrind") for c in configs]
        finally:
            _running.discard(proc)
        if not out_path.exists():
            tail = " | ".join((stderr or log_path.read_text(errors="replace")).strip().splitlines()[-2:])
            return [RunResult.failed(c, "error", f"valgrind exit code {proc.returncode}: {tail}") for c in configs]
        counts = dumps(Path(tmp))
        results = [RunResult.from_dict(d) for d in json.loads(out_path.read_text())]
    for i, r in enumerate(results):
        measured = (r.task_config.get("steps") or 0) - r.warmup_steps
        if r.ok and str(i) in counts and measured > 0:
            r.instructions_per_step = counts[str(i)]["Ir"] / measured
            if simulate:
                level = {k: k.replace("L", simulate) for k in counts[str(i)]}
                r.simulated_per_step = {level[k]: n / measured for k, n in counts[str(i)].items() if k != "Ir"}
        elif r.ok:
            r.status, r.message = "error", "no instruction count was dumped for this run"
    return results


_running: set[subprocess.Popen] = set()  # the counting processes in flight (several run side by side)


def stop_all() -> None:
    """Kill every counting process in flight (an interrupted suite leaves none behind)."""
    for proc in list(_running):
        proc.kill()


@contextlib.contextmanager
def beside(workers: int) -> Iterator[ThreadPoolExecutor]:
    """A pool for counts that run beside other work (a count does not depend on load); interrupted, no queued
    count starts and none in flight is left running."""
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        stop_all()
        raise
    pool.shutdown()


def dumps(folder: Path) -> dict[str, dict[str, int]]:
    """{label: {event: total}} of every dump callgrind wrote into `folder` on a client request (Ir: instructions;
    with the simulation also I1mr, ILmr, D1mr, ... and Bcm, Bim, callgrind's names)."""
    out = {}
    for path in folder.glob("cg.out*"):
        text = path.read_text(errors="replace")
        label = re.search(r"^desc: Trigger: Client Request: (.*)$", text, re.M)
        events = re.search(r"^events: (.*)$", text, re.M)
        total = re.search(r"^summary: ([\d ]+)$", text, re.M)
        if label and events and total:
            out[label.group(1)] = dict(zip(events.group(1).split(), map(int, total.group(1).split()), strict=True))
    return out


def _main(cfg_path: str, out_path: str) -> int:
    quiet_lightning()
    results = []
    for i, d in enumerate(json.loads(Path(cfg_path).read_text())):
        config = RunConfig.from_dict(d)
        callgrind.LABEL["run"] = str(i)  # the step clock labels its dump with it
        results.append(run_one(config).to_dict())  # a run that fails is a result; the others go on
    Path(out_path).write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(_main(*sys.argv[1:]))
