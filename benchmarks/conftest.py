"""pytest-benchmark entry: `pytest benchmarks --benchmark-only` runs this machine's default matrix.

Every option of `loopbench suite` is here as `--lb-<name>`, with the same meaning and default
(loopbench.options builds both); `pytest benchmarks --help` lists them. The overhead probe runs
first (rounds of short segments, then one instruction count per variant where valgrind is
installed). Each run's result is appended to the run folder's results.jsonl as it ends: by default
runs/<machine>/<date-time>/ (ignored by git), printed at the end with the report written there.
`--lb-publish` also writes the report to reports/<machine>/, the committed reports: a deliberate step.
On Ctrl-C / SIGTERM the report of every finished run is written; `--lb-resume` continues the newest
run folder (or --lb-out's).
"""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest

from loopbench import options
from loopbench.launch.isolate import raise_interrupt

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser):
    options.add_to_pytest(parser.getgroup("loopbench", "loopbench (the same options as `loopbench suite`)"))


def matrix_from(config: pytest.Config):
    from loopbench.commands.matrix import matrix_from
    from loopbench.core.types import UsageError

    try:
        return matrix_from(lambda name: config.getoption(f"lb_{name}"), lambda name: f"--lb-{name}")
    except UsageError as e:
        raise pytest.UsageError(f"loopbench: {e}") from None


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config.option, "lb_out") or config.getoption("help", False):
        return  # --help: no run folder
    from loopbench.core.types import UsageError
    from loopbench.studies.suite import Progress, run_folder

    matrix = matrix_from(config)
    if config.option.lb_out is None:
        try:
            config.option.lb_out = run_folder(ROOT / "runs", matrix.devices, config.getoption("lb_resume"))
        except UsageError as e:
            raise pytest.UsageError(f"loopbench: {e}") from None
    out: Path = config.option.lb_out
    # pytest-benchmark's own JSON goes beside the report unless the user chose a file
    if getattr(config.option, "benchmark_json", None) is None:
        out.mkdir(parents=True, exist_ok=True)
        config.option.benchmark_json = str(out / "pytest-benchmark.json")
    try:
        config._loopbench = Progress(matrix, out, config.getoption("lb_resume"))
    except UsageError as e:
        raise pytest.UsageError(f"loopbench: {e}") from None
    config._loopbench_matrix = matrix
    # the header's "timer=" names the clock that the samples come from (seconds per optimizer step)
    config.option.benchmark_timer = "loopbench.report.bench.CLOCK"
    # pytest turns KeyboardInterrupt into an orderly stop; SIGINT may arrive ignored from a shell
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, raise_interrupt)


def pytest_report_header(config: pytest.Config) -> list[str]:
    matrix = getattr(config, "_loopbench_matrix", None)
    return [f"loopbench: not run: {line}" for line in matrix.missing()] if matrix else []


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cell" in metafunc.fixturenames:
        from loopbench.analysis.grouping import group_key, group_words

        cells = list(dict.fromkeys((group_key(c), c.impl) for c in matrix_from(metafunc.config).cells()))
        ids = ["-".join([*group_words(group), impl]).replace(" ", "") for group, impl in cells]
        metafunc.parametrize("cell", cells, ids=ids)


@pytest.fixture(scope="session")
def bench_matrix(request):
    return request.config._loopbench_matrix


@pytest.fixture(scope="session")
def bench_runs(request, bench_matrix):
    """group -> {impl: [results]}; a group's runs all happen when it is first asked for."""
    from loopbench.analysis.grouping import by_group, group_key
    from loopbench.core.store import run_key
    from loopbench.studies.batches import progress_line, run_cells

    progress = request.config._loopbench
    done: dict[tuple, dict] = {}
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")

    def show(i, n, result):  # a progress line per run, past pytest's output capture
        with capture.global_and_fixture_disabled():
            reporter.write_line(progress_line(i, n, result))

    def get(group: tuple) -> dict:
        if group not in done:
            todo = [c for c in progress.todo() if group_key(c) == group]
            run_cells(todo, request.config.getoption("--lb-timeout"), show, progress.log)
            planned = {run_key(c.to_dict()) for c in progress.planned if group_key(c) == group}
            ran = [r for r in progress.results() if run_key(r.config) in planned]
            timed = [r for r in ran if r.config.get("clock", "time") == "time"]  # counts: in the report only
            done[group] = next(iter(by_group(timed).values()), {})
        return done[group]

    return get


@pytest.fixture(scope="session")
def bench_results(request):
    """Every finished run so far (the probe's too: its answer predicts the tasks' ratios)."""
    return request.config._loopbench.results


def pytest_sessionfinish(session: pytest.Session, exitstatus) -> None:
    from loopbench.core.store import PUBLISHED_RESULTS_NAME
    from loopbench.report import write_report
    from loopbench.studies.suite import machine_folder

    progress = getattr(session.config, "_loopbench", None)
    results = progress.results() if progress else []
    if results:
        session.config._loopbench_report = write_report(results, session.config.option.lb_out)
        session.config._loopbench_counts = (len(results), len(progress.planned))
        if session.config.getoption("lb_publish"):
            folder = machine_folder(ROOT / "reports", session.config._loopbench_matrix.devices)
            session.config._loopbench_published = write_report(results, folder, PUBLISHED_RESULTS_NAME)
            # pytest-benchmark wrote its JSON just before (its hook wraps this one): it goes beside the report
            written = Path(str(session.config.option.benchmark_json or ""))
            if written.is_file():
                shutil.copy(written, folder / "pytest-benchmark.json")


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    path = getattr(config, "_loopbench_report", None)
    if path:
        terminalreporter.write_line(f"loopbench report: {path}", bold=True)
        if getattr(config, "_loopbench_published", None):
            terminalreporter.write_line(f"published: {config._loopbench_published}", bold=True)
        finished, planned = config._loopbench_counts
        if finished < planned:
            terminalreporter.write_line(
                f"the report holds {finished} of the {planned} planned runs; "
                f"continue with the same options and --lb-resume --lb-out {config.option.lb_out}",
                bold=True,
            )
