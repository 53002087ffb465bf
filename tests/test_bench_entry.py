"""The pytest-benchmark entry writes each run to disk as it ends, and --lb-resume runs only what is missing."""

import subprocess
import sys

import pytest

from loopbench.store import load_results


@pytest.mark.slow
def test_bench_entry_logs_runs_and_resumes_without_rerunning(tmp_path):
    out = tmp_path / "report"
    cmd = [sys.executable, "-m", "pytest", "benchmarks", "--benchmark-only", "-q", "-p", "no:cacheprovider"]
    cmd += ["--lb-preset", "smoke", "--lb-tasks", "mnist_gan", "--lb-precisions", "32-true", "--lb-repeats", "1"]
    cmd += ["--lb-out", str(out)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout[-2000:]
    logged = load_results(out / "results.jsonl")
    assert sorted(r.config["impl"] for r in logged) == ["lightning", "lightning-defaults", "pytorch"]
    assert (out / "REPORT.md").is_file() and (out / "pytest-benchmark.json").is_file()

    again = subprocess.run([*cmd, "--lb-resume"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-2000:]
    assert "[  1/" not in again.stdout  # nothing was run again
    assert [r.weights_digest for r in load_results(out / "results.json")] == [r.weights_digest for r in logged]
