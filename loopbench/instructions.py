"""Instructions per training step, counted under valgrind's callgrind: a measure that noisy neighbours cannot move.

Time on a shared VM drifts within seconds; the number of instructions a step executes does not. Runs
whose clock is "instructions" go to one process under `valgrind --tool=callgrind --instr-atstart=no`:
imports and set-up run uninstrumented (fast), and the step clock (loopbench.measure) switches counting
on exactly where its timing window opens and dumps the count where it closes, through callgrind's client
requests. So each run's count covers its measured steps and nothing else, and moves by under 3%
between runs of the same code, versions and inputs (PYTHONHASHSEED is fixed for it).

A client request is a no-op instruction sequence that valgrind recognises (valgrind.h documents it);
Python cannot emit it, so a 29-byte function holding it is put in an executable page and called
through ctypes: x86-64 Linux only. Where valgrind is missing, or on another platform, `unavailable()`
says why in one line and the suite measures time only.

    python -m loopbench.instructions CONFIGS.json RESULTS.json   (under valgrind; the runs one after another)
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import mmap
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

from loopbench.types import RunConfig, RunResult

ENV = "LOOPBENCH_COUNTING"  # set in the process under valgrind: the step clock then sends the requests
# uint64 request(uint64 *args, uint64 default): valgrind.h's amd64 client request, args in rax, result in rdx
_CODE = bytes.fromhex(
    "4889f8"  # mov rax, rdi      (the request's argument block)
    "4889f2"  # mov rdx, rsi      (the default answer, when not under valgrind)
    "48c1c703" "48c1c70d" "48c1c73d" "48c1c733"  # rol rdi, 3, 13, 61, 51: the preamble (128 bits: rdi unchanged)
    "4887db"  # xchg rbx, rbx     (the request itself)
    "4889d0"  # mov rax, rdx
    "c3"  # ret
)  # fmt: skip
_BASE = (ord("C") << 24) | (ord("T") << 16)  # VG_USERREQ_TOOL_BASE('C', 'T'): callgrind's requests
DUMP_STATS_AT, ZERO_STATS, START, STOP = _BASE + 3, _BASE + 1, _BASE + 4, _BASE + 5
_request = None
_page = None


def _send(code: int, *args: int) -> int:
    global _request, _page
    if _request is None:
        _page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        _page.write(_CODE)
        address = ctypes.addressof(ctypes.c_char.from_buffer(_page))
        _request = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.POINTER(ctypes.c_uint64), ctypes.c_uint64)(address)
    block = (ctypes.c_uint64 * 6)(code, *args, *([0] * (5 - len(args))))
    return _request(block, 0)


def counting() -> bool:
    return os.environ.get(ENV) == "1"


def window_opens() -> None:
    """Count from here (the step clock's window opens): zero the counters, instrument."""
    _send(START)
    _send(ZERO_STATS)


def window_closes(label: str) -> None:
    """Stop counting (the window closes) and dump the count under `label`."""
    name = ctypes.create_string_buffer(label.encode())
    _send(DUMP_STATS_AT, ctypes.addressof(name))
    _send(STOP)


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


def count(configs: list[RunConfig], timeout_s: float) -> list[RunResult]:
    """Run `configs` one after another in one process under callgrind; each result gets instructions_per_step."""
    from loopbench import releases
    from loopbench.launch.isolate import child_env

    reason = unavailable(configs[0].device)
    if reason:
        return [RunResult.failed(c, "unsupported", reason) for c in configs]
    with tempfile.TemporaryDirectory(prefix="loopbench-count-") as tmp:
        cfg_path, out_path, log_path = Path(tmp, "configs.json"), Path(tmp, "results.json"), Path(tmp, "valgrind.log")
        cfg_path.write_text(json.dumps([c.to_dict() for c in configs]))
        env = releases.path_env(configs[0].lightning, child_env()) | {ENV: "1", "PYTHONHASHSEED": "0"}
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={tmp}/cg.out"]
        cmd += [f"--log-file={log_path}", sys.executable, "-m", "loopbench.instructions", str(cfg_path), str(out_path)]
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
            r.instructions_per_step = counts[str(i)] / measured
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


def dumps(folder: Path) -> dict[str, int]:
    """{label: instructions} of every dump callgrind wrote into `folder` on a client request."""
    out = {}
    for path in folder.glob("cg.out*"):
        text = path.read_text(errors="replace")
        label = re.search(r"^desc: Trigger: Client Request: (.*)$", text, re.M)
        total = re.search(r"^summary: (\d+)$", text, re.M)
        if label and total:
            out[label.group(1)] = int(total.group(1))
    return out


LABEL = {"run": "0"}  # the label of the run in flight: its index in the request


def _main(cfg_path: str, out_path: str) -> int:
    from loopbench import instructions  # this file runs as __main__: the step clock reads the module's LABEL
    from loopbench.launch.isolate import _run_one
    from loopbench.quiet import quiet_lightning

    quiet_lightning()
    results = []
    for i, d in enumerate(json.loads(Path(cfg_path).read_text())):
        config = RunConfig.from_dict(d)
        instructions.LABEL["run"] = str(i)
        results.append(_run_one(config).to_dict())  # a run that fails is a result; the others go on
    Path(out_path).write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(_main(*sys.argv[1:]))
