"""The report is a pure function of saved results: checked on a fixture from a real smoke suite.

tests/fixtures/cifar_cnn_smoke_results.json is the results.json of
    loopbench suite --tasks cifar_cnn --preset smoke --repeats 2 --devices cpu --precisions 32-true 16-mixed
(12 runs: 8 ok, 4 refused: when it was recorded, Lightning's 16-mixed on CPU was refused rather than
run through the explicit plugin).
"""

import statistics
from pathlib import Path

import pytest

from loopbench.core.store import load_results
from loopbench.report import frame, overheads, parities, summary, write_report

FIXTURE = Path(__file__).parent / "fixtures" / "cifar_cnn_smoke_results.json"


@pytest.fixture(scope="module")
def results():
    return load_results(FIXTURE)


def test_fixture_is_what_the_docstring_says(results):
    assert len(results) == 12
    assert sorted(r.status for r in results).count("unsupported") == 4


def test_summary_is_the_median_over_repeats(results, tmp_path):
    table = summary(results).set_index(["precision", "impl"])
    runs = [r for r in results if r.config["impl"] == "lightning" and r.config["precision"] == "32-true"]
    assert table.loc[("32-true", "lightning"), "samples/s"] == statistics.median(r.samples_per_s for r in runs)
    assert table.loc[("16-mixed", "lightning"), "runs"] == "0/2 ok (unsupported)"


def test_parity_table_compares_every_lightning_variant_with_pytorch(results):
    par = parities(results)
    assert set(par.impl) == {"lightning", "lightning-defaults"}
    assert (par.verdict == "bitwise").all() and par.holds.all()


def test_overhead_ratio_has_an_interval_around_it(results):
    ov = overheads(results)
    assert len(ov) == 2  # 32-true only: the 16-mixed Lightning cells were refused
    # 2 repeats = 2 pairs: too few for an interval, and the report says so instead of a verdict
    assert (ov.pairs == 2).all() and ov["95% CI low"].isna().all() and (ov.verdict == "not resolved").all()
    assert ov["label"].str.contains("not resolved").all()


def test_write_report_produces_markdown_and_figures(results, tmp_path):
    path = write_report(results, tmp_path)
    text = path.read_text()
    for heading in (
        "## Data",
        "## Parity",
        "## Speed and memory",
        "## Lightning overhead",
        "## Failed or refused cells",
    ):
        assert heading in text
    assert "torch 2." in text and "pytorch-lightning" in text and "Commit:" in text and "synthetic" in text
    assert "nan" not in text
    for png in ("throughput_memory.png", "overhead.png", "losses_cifar_cnn_cpu.png"):
        assert f"]({png})" in text
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert load_results(tmp_path / "results.json")[0].losses == results[0].losses
    compacted = write_report(results, tmp_path / "published", "results.json.gz")  # a published report's runs
    assert compacted.read_text() == text and len(load_results(tmp_path / "published")) == len(results)


def test_report_of_only_failures_still_renders(results, tmp_path):
    failed = [r for r in results if not r.ok]
    text = write_report(failed, tmp_path).read_text()
    assert "unsupported" in text and "## Parity" in text
    assert len(frame(failed)) == 4


def test_headline_answers_per_cell(results):
    from loopbench.report import headline

    h = headline(results).set_index("precision")
    assert (
        "not resolved (2 pairs" in h.loc["32-true", "Lightning step time"] and h.loc["32-true", "parity"] == "bitwise"
    )
    assert h.loc["16-mixed", "Lightning step time"] == "0/2 ok (unsupported)"


def test_the_scaling_table_sets_each_process_count_side_by_side(results, tmp_path):
    """The fixture's 32-true runs, once as they are and once relabelled as two-process runs at 1.5x the
    throughput: efficiency 0.75, and each Lightning variant's ratio to the plain loop at both counts."""
    from dataclasses import replace

    from loopbench.launch.distributed import rank_record
    from loopbench.report.scaling import scaling

    ok = [r for r in results if r.ok and r.config["precision"] == "32-true"]
    doubled = [
        replace(
            r,
            config=r.config | {"processes": 2},
            samples_per_s=1.5 * r.samples_per_s,
            ranks=[rank_record(0, r), rank_record(1, r)],
        )
        for r in ok
    ]
    table = scaling(summary(ok + doubled), overheads(ok + doubled)).set_index("impl")
    assert set(table.index) == {"pytorch", "lightning", "lightning-defaults"}
    assert table.loc["pytorch", "efficiency x2"] == pytest.approx(0.75)
    assert table.loc["lightning", "samples/s x2"] == pytest.approx(1.5 * table.loc["lightning", "samples/s x1"])
    assert table.loc["lightning", "vs plain x1"] == table.loc["lightning", "vs plain x2"] != "–"
    assert "## Data parallel: scaling" in write_report(ok + doubled, tmp_path).read_text()
    assert scaling(summary(ok), overheads(ok)).empty  # one process count: no table


def test_the_committed_report_answers_on_its_first_screen():
    """Verdict and machine lines, then within 25 lines one table of at most 8 columns holding only the timed cells;
    the cells run one step for parity alone in one line; how to read it after the table."""
    from loopbench.report import render

    committed = load_results(Path(__file__).parents[1] / "reports" / "amd-epyc-2c-avx2")
    lines = render(committed, {}).splitlines()
    assert lines[2].startswith("**Same model:** 9 of 9 cells (bitwise).") and "AVX2" in lines[4]
    table = next(i for i, line in enumerate(lines) if line.startswith("| cell"))
    assert table < 25 and lines[table].count("|") - 1 <= 8
    rows = [line for line in lines[table + 2 :] if line.startswith("|")][:3]
    assert all("32-true" in row for row in rows) and not lines[table + 5].startswith("|")
    assert "parity alone" in lines[table + 6] and "bf16-mixed" in lines[table + 6]
    assert lines.index("## How to read this") > table


def test_every_committed_report_has_one_skeleton():
    """The bench's and each study's REPORT.md: a title, the answer before any method, How to read this, and the
    machine and versions last."""
    for path in sorted((Path(__file__).parents[1] / "reports").rglob("REPORT.md")):
        headings = [line for line in path.read_text().splitlines() if line.startswith("## ")]
        assert headings[-1] == "## Machine and versions" and "## How to read this" in headings, path
        assert path.read_text().startswith("# "), path


@pytest.mark.slow
@pytest.mark.parametrize("folder", ["amd-epyc-2c-avx2/own-module/examples.demos.factories-transformer",
                                    "amd-epyc-2c-avx512bf16/lightning-history"])  # fmt: skip
def test_a_committed_report_re_renders_byte_for_byte_from_its_runs(tmp_path, folder):
    import shutil

    from experiments.rerender import rerender

    committed = Path(__file__).parents[1] / "reports" / folder
    copy = shutil.copytree(committed, tmp_path / "report")
    rerender(copy)
    changed = [p.name for p in sorted(committed.iterdir()) if p.read_bytes() != (copy / p.name).read_bytes()]
    assert not changed, f"re-rendered {folder} differs in {changed}: run python -m experiments.rerender reports"


@pytest.mark.filterwarnings("error:No artists with labels")
def test_a_cell_whose_lightning_runs_all_failed_draws_without_a_warning(results, tmp_path):
    refused = [r for r in results if r.config["precision"] == "16-mixed"]  # the plain loop ran, Lightning refused
    assert "## Failed or refused cells" in write_report(refused, tmp_path).read_text()
