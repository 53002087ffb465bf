"""Fresh processes without the import bill, for jobs that report time only (the overhead probe).

`run_forked` is `isolate.run_isolated` with one difference: the fresh process is forked from a
server process that has already imported torch and Lightning, so a run of a few seconds does not
also pay five seconds of imports. Nothing else is shared: the server never trains, so each run
starts with no model, no allocator state and no thread pool. A forked run starts with the libraries
resident, so its memory is not the job's alone; its time per step is. Interrupts, timeouts and
failures are handled as in `isolate`: the run is its own session, killed with its group, and always
comes back as a RunResult.

    python -m loopbench.launch.forked     (the server: one JSON request per line on stdin)
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import typing
from pathlib import Path

from loopbench.core.precision import device_type
from loopbench.core.types import RunConfig, RunResult
from loopbench.launch import child
from loopbench.launch.child import process_env
from loopbench.launch.isolate import DEFAULT_TIMEOUT_S, run_isolated_batch

PRELOAD = ("loopbench.launch.cell", "loopbench.core.quiet", "pytorch_lightning")  # what a forked run finds imported
# a server per Lightning release (None: the installed one) and allocator: what a process fixes at its start
Key = tuple[str | None, str]
_servers: dict[Key, subprocess.Popen] = {}
_starting: dict[Key, typing.IO[bytes]] = {}  # the stderr of each server not yet seen ready


def run_forked(config: RunConfig, timeout_s: float = DEFAULT_TIMEOUT_S) -> RunResult:
    """Run `config` in a process forked from the server; never raises for a failed cell."""
    return run_forked_batch([config], timeout_s)[0]


def run_forked_batch(configs: list[RunConfig], timeout_s: float = DEFAULT_TIMEOUT_S) -> list[RunResult]:
    """Run `configs` one after another in one process forked from the server (a round of the overhead probe:
    runs close in time, in one process); never raises for a failed run. `timeout_s` is for them all.
    CUDA runs are never forked: CUDA cannot be used in a child forked from a process that initialised it, and
    the server's imports are not known never to; they start in a fresh process instead (imports paid)."""
    if not forkable(configs):
        return run_isolated_batch(configs, timeout_s)
    results = _run_batch(configs, timeout_s)
    if isinstance(results, RunResult):  # the process failed: every run of it did
        return [dataclasses.replace(results, config=c.to_dict()) for c in configs]
    return results


def forkable(configs: list[RunConfig]) -> bool:
    """May these runs be forked from the server? CPU runs only."""
    return all(device_type(c.device) == "cpu" for c in configs)


def _run_batch(configs: list[RunConfig], timeout_s: float) -> list[RunResult] | RunResult:
    config = configs[0]
    try:
        server = _running_server((config.lightning, config.allocator))
    except ServerFailed as e:
        return RunResult.failed(config, "error", str(e))
    with tempfile.TemporaryDirectory(prefix="loopbench-cell-") as tmp:
        cfg_path, out_path, log_path = Path(tmp, "config.json"), Path(tmp, "result.json"), Path(tmp, "output.log")
        cfg_path.write_text(json.dumps([c.to_dict() for c in configs]))
        try:  # the server answers with the run's pid at once; anything else: a new server next time
            server.stdin.write(json.dumps([str(cfg_path), str(out_path), str(log_path)]).encode() + b"\n")
            server.stdin.flush()
            pid = int(_read_line(server, 60.0) or "no answer")
        except BaseException:
            _stop_server(server)
            raise
        try:
            code = _read_line(server, timeout_s)
        except BaseException:
            _kill_group(pid, server)
            raise
        if code is None:
            _kill_group(pid, server)
            return RunResult.failed(config, "timeout", f"no result after {timeout_s:g} s; the process was killed")
        if out_path.exists():
            return [RunResult.from_dict(d) for d in json.loads(out_path.read_text())]
        if int(code) == -signal.SIGKILL:
            return RunResult.failed(config, "oom", "killed by SIGKILL, most likely out of host memory")
        tail = " | ".join(log_path.read_text(errors="replace").strip().splitlines()[-3:]) if log_path.exists() else ""
        return RunResult.failed(config, "error", f"exit code {code}: {tail}")


def start_servers(versions: list[str | None], allocator: str = "glibc") -> None:
    """Start the fork servers of these releases together, so that their imports overlap where cores are free;
    each is waited for on its first use."""
    for version in versions:
        server = _servers.get((version, allocator))
        if server is None or server.poll() is not None:
            _spawn((version, allocator))


def _spawn(key: Key) -> None:
    stale = _starting.pop(key, None)
    if stale is not None:
        stale.close()
    # the server's own stderr (why its imports failed, if they did), closed once the server is seen ready
    errors = _starting[key] = tempfile.TemporaryFile()  # noqa: SIM115
    _servers[key] = subprocess.Popen(
        [sys.executable, "-m", "loopbench.launch.forked"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=errors,
        env=process_env(*key),
        start_new_session=True,  # Ctrl-C at the terminal reaches the parent only
    )


def _running_server(key: Key = (None, "glibc")) -> subprocess.Popen:
    """The server of a Lightning release and allocator, started on first use and ready; it ends when this
    process closes its stdin (exits)."""
    version, allocator = key
    start_servers([version], allocator)
    server = _servers[key]
    errors = _starting.pop(key, None)
    if errors is None:
        return server
    with errors:
        try:
            if _read_line(server, 600.0) != "ready":
                raise RuntimeError("no answer in 600 s")
        except RuntimeError as e:
            _stop_server(server)
            errors.seek(0)
            tail = [line for line in errors.read().decode(errors="replace").splitlines() if line.strip()]
            which = f"pytorch-lightning {version}" if version else "the installed pytorch-lightning"
            which += f" ({allocator})" if allocator != "glibc" else ""
            raise ServerFailed(f"the fork server of {which} did not start: {tail[-1] if tail else e}") from None
        except BaseException:
            _stop_server(server)
            raise
    return server


class ServerFailed(RuntimeError):
    """A release's fork server could not import what every run needs; its runs fail, saying why."""


def _stop_server(server: subprocess.Popen) -> None:
    """End a server and the run it is serving, if any (its SIGTERM handler kills the run's group)."""
    for key in [k for k, s in _servers.items() if s is server]:
        del _servers[key]
        with contextlib.suppress(KeyError):
            _starting.pop(key).close()
    server.terminate()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def _read_line(server: subprocess.Popen, timeout_s: float | None) -> str | None:
    """One line from the server (unbuffered, so that select sees every byte); None after `timeout_s`."""
    fd, line = server.stdout.fileno(), b""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while not line.endswith(b"\n"):
        left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        if not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 1)
        if not chunk:
            raise RuntimeError(f"the fork server ended (exit code {server.wait()})")
        line += chunk
    return line.decode().strip()


def _kill_group(pid: int, server: subprocess.Popen, grace_s: float = 5.0) -> None:
    """SIGTERM to the run's process group, SIGKILL after `grace_s`; then collect the server's exit line."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:  # not (yet) a group leader: the process alone, if it is still there
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        if _read_line(server, grace_s) is not None:
            return
    _stop_server(server)


def serve() -> None:
    """Import once, then per request fork a run, answer its pid, wait for it, answer its exit code."""
    running: list[int] = []

    def stop(signum, frame):  # the client gives up: the run goes too
        for pid in running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # in case it has no group of its own yet
                os.killpg(pid, signal.SIGKILL)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    for name in PRELOAD:
        importlib.import_module(name)
    import torch

    if torch.cuda.is_initialized():  # a forked child could not use CUDA; CUDA runs are never sent here
        sys.exit("the fork server's imports initialised CUDA: its children cannot use it")
    out = sys.stdout.buffer
    out.write(b"ready\n")
    out.flush()
    for request in sys.stdin.buffer:
        cfg_path, out_path, log_path = json.loads(request)
        pid = os.fork()
        if pid == 0:  # the run
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.setsid()
                log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
                os.dup2(log, 1)
                os.dup2(log, 2)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                code = child.main(cfg_path, out_path)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        running[:] = [pid]
        out.write(f"{pid}\n".encode())
        out.flush()
        _, status = os.waitpid(pid, 0)
        running.clear()
        out.write(f"{os.waitstatus_to_exitcode(status)}\n".encode())
        out.flush()


if __name__ == "__main__":
    serve()
