"""A real suite, interrupted with SIGINT after a few runs, keeps what finished and resumes to the end."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loopbench.core.store import load_results, run_key
from loopbench.studies.suite import Matrix

ARGS = ["--tasks", "cifar_cnn", "--impls", "pytorch", "lightning", "--precisions", "32-true", "--devices", "cpu"]
ARGS += ["--preset", "smoke", "--fresh-runs", "1", "--repeats", "1", "--probe-repeats", "0"]  # 2 fresh + P L P
MATRIX = Matrix(("cifar_cnn",), ("pytorch", "lightning"), ("cpu",), ("32-true",), "smoke", repeats=1, fresh_runs=1)
PLANNED = len(MATRIX.cells())


TAG = "LOOPBENCH_TEST_SUITE_OUT"  # marks this test's processes: their children inherit it


def _suite(out: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "loopbench", "suite", *ARGS, "--out", str(out), *extra]
    env = dict(os.environ, **{TAG: str(out)})
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _isolated_children(out: Path) -> list[str]:
    """This test's cells still running (another test's, running beside this one, are not its business)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline.startswith(f"{sys.executable} -m loopbench.launch.isolate") and f"{TAG}={out}".encode() in environ:
            found.append(cmdline)
    return found


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.heavy
@pytest.mark.slow
def test_sigint_keeps_finished_runs_and_resume_completes_the_matrix(tmp_path):
    out = tmp_path / "suite"
    log = out / "results.jsonl"
    proc = _suite(out)
    deadline = time.monotonic() + 240
    while _lines(log) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert _lines(log) >= 2, proc.communicate()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert not _isolated_children(out)  # the run in flight was terminated, not left running
    finished = _lines(log)
    assert 2 <= finished < PLANNED == 5
    assert f"holds {finished} of the {PLANNED} planned runs" in stderr and "--resume" in stderr
    report = json.loads((out / "results.json").read_text())
    assert len(report) == finished and "Traceback" not in stderr

    proc = _suite(out, "--resume")
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert f"resuming: {finished} already" in stdout
    results = load_results(out / "results.json")
    planned = [run_key(c.to_dict()) for c in MATRIX.cells()]
    assert sorted(run_key(r.config) for r in results) == sorted(planned)  # every planned run, exactly once
    assert [run_key(r.config) for r in results] == planned  # in planned order


def test_resume_with_other_settings_is_refused_in_one_line(tmp_path, capsys):
    from loopbench.cli import main
    from loopbench.core.store import ResultLog
    from loopbench.core.types import RunResult
    from loopbench.studies.suite import Progress

    matrix = Matrix(("cifar_cnn",), ("pytorch",), ("cpu",), ("32-true",), "smoke", 1)
    progress = Progress(matrix, tmp_path, resume=False)
    ResultLog(progress.log.path).append(RunResult(config=matrix.cells()[0].to_dict()))
    argv = ["suite", "--tasks", "cifar_cnn", "--impls", "pytorch", "--precisions", "32-true", "--out", str(tmp_path)]
    argv += ["--devices", "cpu"]
    argv += ["--probe-repeats", "0"]
    assert main([*argv, "--preset", "quick", "--repeats", "1", "--resume"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "preset=smoke" in err and "preset=quick" in err
    assert main([*argv, "--preset", "smoke", "--repeats", "1"]) == 2  # no --resume: never mixed silently
    assert "add --resume" in capsys.readouterr().err
