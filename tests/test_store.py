"""Results on disk: a log that survives a crash, reports from folders, refusal of what is not ours."""

import json

import pytest

from loopbench.core.store import ResultLog, compact, load_results
from loopbench.core.types import RunConfig, RunResult, UsageError
from loopbench.report import write_report


def _result(impl="pytorch", status="ok", repeat=0):
    return (
        RunResult.failed(RunConfig("cifar_cnn", impl, repeat=repeat), "error", "x")
        if status != "ok"
        else RunResult(config=RunConfig("cifar_cnn", impl, repeat=repeat).to_dict())
    )


def test_log_appends_and_ignores_a_partial_last_line(tmp_path):
    log = ResultLog(tmp_path / "results.jsonl")
    log.append(_result(repeat=0))
    log.append(_result(repeat=1))
    with open(log.path, "a") as f:
        f.write('{"config": {"task": "cifar_cnn", "im')  # the process died while writing
    assert [r.config["repeat"] for r in log.read()] == [0, 1]
    assert [r.config["repeat"] for r in load_results(tmp_path)] == [0, 1]  # a folder reads its log


def test_a_corrupt_line_in_the_middle_is_refused(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"config": 1}\nnot json\n{}\n')
    with pytest.raises(UsageError, match="line 2 is not JSON"):
        load_results(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("hello", "not JSON"),
        ('{"a": 1}', "not loopbench results"),
        ("[1, 2]", "not loopbench results"),
        (
            '[{"config": {"task": "t", "impl": "i", "device": "cpu", "precision": "32-true"}, "status": "fine"}]',
            "status",
        ),
    ],
)
def test_files_that_are_not_loopbench_results_are_refused(tmp_path, content, message):
    path = tmp_path / "r.json"
    path.write_text(content)
    with pytest.raises(UsageError, match=message):
        load_results(path)


def test_an_empty_folder_is_refused(tmp_path):
    with pytest.raises(UsageError, match=r"no results\.jsonl or results\.json"):
        load_results(tmp_path)


def test_report_merges_several_folders(tmp_path):
    for i, impl in enumerate(("pytorch", "lightning")):
        ResultLog(tmp_path / f"part{i}" / "results.jsonl").append(_result(impl, status="error"))
    results = load_results(tmp_path / "part0", tmp_path / "part1")
    assert [r.config["impl"] for r in results] == ["pytorch", "lightning"]


@pytest.mark.parametrize("status", ["timeout", "oom", "error", "unsupported"])
def test_a_report_of_nothing_but_failures_lists_them(tmp_path, status):
    results = [
        RunResult.failed(RunConfig("cifar_cnn", impl), status, f"why {impl}") for impl in ("pytorch", "lightning")
    ]
    text = write_report(results, tmp_path).read_text()
    assert "## Failed or refused cells" in text and f"**{status}**: why pytorch" in text and "why lightning" in text
    assert json.loads((tmp_path / "results.json").read_text())[0]["status"] == status


def test_an_empty_log_is_nothing_to_report(tmp_path):
    (tmp_path / "results.jsonl").write_text("")
    with pytest.raises(UsageError, match="nothing to report"):
        load_results(tmp_path)


def test_a_published_report_keeps_sample_grids_only_where_a_figure_draws_them():
    def run(preset, slot=0):
        config = RunConfig("mnist_gan", "pytorch", preset=preset, slot=slot).to_dict()
        return RunResult(config=config, losses={"loss_g": [1.0]}, artifacts={"samples_png": "png"})

    drawn, quick, segment = compact([run("full"), run("quick"), run("full", slot=1)])
    assert drawn.artifacts and not quick.artifacts and not segment.artifacts
    assert quick.losses and not segment.losses  # a fresh run keeps what parity compares
