"""The pytest-benchmark entry: its table tells the report's story, its compare catches a slowdown, each run
reaches disk as it ends, and --lb-resume runs only what is missing."""

import json
import os
import shutil
import statistics
import subprocess
import sys

import pytest

from loopbench.analysis import rounds
from loopbench.analysis.probe import HEADLINE_IMPLS
from loopbench.core.store import load_results, run_key
from loopbench.report.bench import NOT_PREDICTED, SAMPLE
from loopbench.report.tables import overheads

BENCH = [sys.executable, "-m", "pytest", "benchmarks", "--benchmark-only", "-q", "-p", "no:cacheprovider"]
CELL = ["--lb-preset", "smoke", "--lb-tasks", "mnist_gan", "--lb-precisions", "32-true", "--lb-devices", "cpu"]
# counting is off (a real count is the default bench's, and its benchmarks check it); the bench is a pytest session
# of its own, not a worker of this one (pytest-benchmark turns itself off where it sees xdist's variables)
ENV = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")} | {"LOOPBENCH_INSTRUCTIONS": "off"}
ROUNDS = 6  # the fewest with an interval


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*BENCH, *CELL, *args], capture_output=True, text=True, timeout=300, env=ENV)


@pytest.mark.heavy
@pytest.mark.slow
def test_bench_table_is_the_reports_story_its_compare_catches_a_slowdown_and_it_resumes(tmp_path):
    out, storage = tmp_path / "report", f"file://{tmp_path / 'saved'}"
    save = ["--benchmark-storage", storage, "--benchmark-json", str(tmp_path / "b.json")]
    first = _bench("--lb-impls", "pytorch", "lightning", "--lb-counts", "on",
                   "--lb-repeats", str(ROUNDS), "--lb-probe-repeats", "2", "--lb-probe-steps", "20",
                   "--lb-out", str(out), "--benchmark-autosave", *save)  # fmt: skip
    assert first.returncode == 0, first.stdout[-2000:]
    assert "seconds per optimizer step" in first.stdout  # the table's unit, in each group's heading

    # pytest-benchmark's JSON: one sample per round for every implementation, and the report's ratio
    logged = load_results(out / "results.jsonl")
    tasks = [r for r in logged if r.config["task"] == "mnist_gan"]
    saved = json.loads((tmp_path / "b.json").read_text())
    benchmarks = {b["name"]: b for b in saved["benchmarks"]}
    assert {b["options"]["timer"] for b in benchmarks.values()} == {"step_clock"}
    mine = {n.split("-32-true-")[1].rstrip("]"): b for n, b in benchmarks.items() if "mnist_gan" in n}
    assert sorted(mine) == ["lightning", "pytorch"]
    assert {b["stats"]["rounds"] for b in mine.values()} == {ROUNDS}
    assert all(b["extra_info"]["sample"] == SAMPLE for b in mine.values())
    samples = rounds.samples(tasks)
    ov = overheads(tasks).set_index("impl")
    for impl in ("lightning",):
        b = mine[impl]
        # what a reader of pytest-benchmark's table computes: the ratio of two medians
        ratio = statistics.median(samples[impl]) / statistics.median(samples["pytorch"])
        assert b["stats"]["median"] / mine["pytorch"]["stats"]["median"] == pytest.approx(ratio)
        low, high = ov.loc[impl, "95% CI low"], ov.loc[impl, "95% CI high"]
        assert low <= ratio <= high, (impl, low, high)
        info = b["extra_info"]
        assert info["ratio_vs_plain"]["low"] == pytest.approx(low) and info["ratio_vs_plain"]["pairs"] == ROUNDS
        assert info["parity"]["verdict"] == "bitwise" and info["fresh_run"]["peak_rss_bytes"] > 0
        own = info["trainer_own_time"]  # the in-place split, with its interval from the rounds
        assert own["share_low"] <= own["share_of_step"] <= own["share_high"] and "of the step" in own["label"]
        verdicts = ("agrees", "measured above", "measured below", NOT_PREDICTED)  # the last: a reason beside it
        assert info["probe_predicts"]["measured_vs_predicted"] in verdicts
        assert info["probe_predicts"]["ratio"] is not None or info["probe_predicts"]["why"]

    # the same run folder: every run on disk once, the counts recorded as unsupported where they are off
    counts = [r for r in tasks if r.config["clock"] == "instructions"]
    assert len(counts) == 2 and {r.status for r in counts} == {"unsupported"}
    probe = [r for r in logged if r.config["task"] == "overhead_probe" and r.config["clock"] == "time"]
    assert len(probe) == 2 * 2 * (2 * len(HEADLINE_IMPLS) - 1) and all(r.ok for r in probe)
    report = (out / "REPORT.md").read_text()
    assert "What the Trainer costs per step on cpu" in report and "probe predicts" in report
    assert "unsupported**: instruction counts: off (LOOPBENCH_INSTRUCTIONS=off)" in report

    # a second bench run, compared by pytest-benchmark's own compare with the saved first: the same runs resumed with
    # every Lightning segment of the GAN made twice as slow on disk (that --slowdown-us slows a real step is
    # test_split's). Nothing runs again, the report holds the same runs, and the compare fails on that one benchmark
    # alone: every other one replays its saved samples exactly
    slower = tmp_path / "slower"
    shutil.copytree(out, slower)
    runs = [json.loads(line) for line in (slower / "results.jsonl").read_text().splitlines()]
    for r in runs:
        if r["config"]["task"] == "mnist_gan" and r["config"]["impl"] == "lightning" and r["config"]["slot"]:
            r["step_time_median_s"] *= 2
    (slower / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    compare = ["--benchmark-storage", storage, "--benchmark-compare", "--benchmark-compare-fail=median:1e-9"]  # s
    resumed = _bench("--lb-impls", "pytorch", "lightning", "--lb-counts", "on", "--lb-repeats", str(ROUNDS),
                   "--lb-probe-repeats", "2", "--lb-probe-steps", "20", "--lb-out", str(slower), "--lb-resume",
                   *compare)  # fmt: skip
    assert resumed.returncode != 0 and "[  1/" not in resumed.stdout, resumed.stdout[-2000:]
    reported = sorted(run_key(r.config) for r in load_results(slower / "results.json"))
    assert reported == sorted(run_key(r.config) for r in logged)  # the same runs, none twice
    said = (resumed.stdout + resumed.stderr).split("Performance has regressed:", 1)[-1]
    regressed = [line.split(" - ")[0] for line in said.splitlines() if "has failed" in line]
    assert len(regressed) == 1 and "mnist_gan" in regressed[0] and "-lightning]" in regressed[0], said[:2000]
