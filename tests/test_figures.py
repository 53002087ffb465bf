"""Every figure of a report renders with a title in words, labelled axes and a legend for its marks."""

import pytest

from loopbench.core.store import load_results
from loopbench.report import figures, write_report
from tests.test_probe_report import probe_runs
from tests.test_report import FIXTURE


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """{file name: the matplotlib figure} of every figure a report of the fixture and the probe draws (drawn once:
    the tests only read them)."""
    captured = {}
    save = figures.save

    def capture(fig, path):
        captured[path.name] = fig
        return save(fig, path)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(figures, "save", capture)
        mp.setattr("loopbench.report.probe_figures.save", capture)
        write_report(probe_runs() + load_results(FIXTURE), tmp_path_factory.mktemp("report"))
    return captured


def test_every_figure_has_a_title_axis_labels_and_a_legend(drawn):
    assert {"throughput_memory.png", "overhead.png", "ladder_cpu.png", "pay_curve_cpu.png"} <= set(drawn)
    assert any(name.startswith("losses_") for name in drawn)
    for name, fig in drawn.items():
        titled = fig._suptitle is not None or any(ax.get_title() for ax in fig.axes)
        assert titled, name
        for ax in fig.axes:
            if ax.axison:
                assert ax.get_xlabel() and (ax.get_ylabel() or ax.get_yticklabels()), name
                assert ax.get_legend() is not None, name


def test_the_pay_curve_shows_both_trainers_in_percent_with_guides(drawn):
    ax = drawn["pay_curve_cpu.png"].axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("lean Trainer" in t for t in labels) and any("default Trainer" in t for t in labels)
    assert "%" in ax.get_ylabel() and ax.get_yscale() == "log"
    assert {"+1%", "+10%"} <= {t.get_text() for t in ax.texts}


def test_memory_is_drawn_as_lightning_minus_plain(drawn):
    memory = drawn["throughput_memory.png"].axes[1]
    assert "minus plain" in memory.get_ylabel()
    assert all("minus pytorch" in t.get_text() for t in memory.get_legend().get_texts())


def test_the_gan_grid_is_drawn_only_for_a_full_run(drawn):
    assert not any(name.startswith("samples_") for name in drawn)  # the fixture and the probe: no full run


def test_a_figure_of_single_runs_says_so_on_its_face(drawn):
    titles = [ax.get_title() for ax in drawn["throughput_memory.png"].axes]
    assert titles and all("one fresh run per bar, no spread" in t or "fresh runs, bars: range" in t for t in titles)
