"""The pytest-benchmark entry writes each run to disk as it ends, and --lb-resume runs only what is missing."""

import subprocess
import sys

import pytest

from loopbench.overhead import PROBE_IMPLS
from loopbench.store import load_results


@pytest.mark.slow
def test_bench_entry_logs_runs_and_resumes_without_rerunning(tmp_path):
    out = tmp_path / "report"
    cmd = [sys.executable, "-m", "pytest", "benchmarks", "--benchmark-only", "-q", "-p", "no:cacheprovider"]
    cmd += ["--lb-preset", "smoke", "--lb-tasks", "mnist_gan", "--lb-precisions", "32-true", "--lb-repeats", "1"]
    cmd += ["--lb-probe-runs", "2", "--lb-probe-steps", "20", "--lb-out", str(out)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout[-2000:]
    logged = load_results(out / "results.jsonl")
    tasks = [r for r in logged if r.config["task"] == "mnist_gan"]
    assert sorted(r.config["impl"] for r in tasks) == ["lightning", "lightning-defaults", "pytorch"]
    probe = [r for r in logged if r.config["task"] == "overhead_probe"]
    assert len(probe) == 2 * sum(len(impls) for impls in PROBE_IMPLS.values()) and all(r.ok for r in probe)
    report = (out / "REPORT.md").read_text()
    assert "What the Trainer costs per step on cpu" in report and "sum of the rungs" in report
    assert "probe predicts" in report and (out / "ladder_cpu.png").is_file() and (out / "pay_curve_cpu.png").is_file()
    assert (out / "pytest-benchmark.json").is_file()

    again = subprocess.run([*cmd, "--lb-resume"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-2000:]
    assert "[  1/" not in again.stdout  # nothing was run again
    assert [r.weights_digest for r in load_results(out / "results.json")] == [r.weights_digest for r in logged]
