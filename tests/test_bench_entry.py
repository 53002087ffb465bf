"""The pytest-benchmark entry writes each run to disk as it ends, and --lb-resume runs only what is missing."""

import os
import subprocess
import sys

import pytest

from loopbench.overhead import HEADLINE_IMPLS
from loopbench.store import load_results, run_key


@pytest.mark.slow
def test_bench_entry_logs_runs_and_resumes_without_rerunning(tmp_path):
    out = tmp_path / "report"
    cmd = [sys.executable, "-m", "pytest", "benchmarks", "--benchmark-only", "-q", "-p", "no:cacheprovider"]
    cmd += ["--lb-preset", "smoke", "--lb-tasks", "mnist_gan", "--lb-precisions", "32-true", "--lb-repeats", "1"]
    cmd += ["--lb-impls", "pytorch", "lightning", "--lb-counts", "on"]
    cmd += ["--lb-probe-repeats", "2", "--lb-probe-steps", "20", "--lb-out", str(out)]
    env = dict(os.environ, LOOPBENCH_INSTRUCTIONS="off")  # counting is tested on its own (test_instructions)
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert first.returncode == 0, first.stdout[-2000:]
    logged = load_results(out / "results.jsonl")
    tasks = [r for r in logged if r.config["task"] == "mnist_gan"]
    fresh = sorted(r.config["impl"] for r in tasks if r.config["slot"] == 0 and r.config["clock"] == "time")
    assert fresh == ["lightning", "pytorch"] and len(tasks) == 2 + 3 + 2  # a round P L P, a count per impl
    counts = [r for r in tasks if r.config["clock"] == "instructions"]
    assert {(r.config["impl"], r.config["threads"], r.status) for r in counts} == {
        ("pytorch", 1, "unsupported"),
        ("lightning", 1, "unsupported"),
    }  # off here: each count says so, the timed runs stand alone
    probe = [r for r in logged if r.config["task"] == "overhead_probe"]
    timed = [r for r in probe if r.config["clock"] == "time"]  # per round P V1 P V2 ... P
    assert len(timed) == 2 * 2 * (2 * len(HEADLINE_IMPLS) - 1) and all(r.ok for r in timed)  # the ladder: overhead
    report = (out / "REPORT.md").read_text()
    # which pairs of 2 tiny rounds survive the drift rules depends on the machine: the figures are tested on fixed runs
    assert "What the Trainer costs per step on cpu" in report and "probe predicts" in report
    assert "unsupported**: instruction counts: off (LOOPBENCH_INSTRUCTIONS=off)" in report
    assert (out / "pytest-benchmark.json").is_file()

    again = subprocess.run([*cmd, "--lb-resume"], capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0, again.stdout[-2000:]
    assert "[  1/" not in again.stdout  # nothing was run again
    reported = sorted(run_key(r.config) for r in load_results(out / "results.json"))
    assert reported == sorted(run_key(r.config) for r in logged)  # the same runs, none twice
