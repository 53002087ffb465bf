"""pytest-benchmark entry: `pytest benchmarks --benchmark-only` runs this machine's default matrix.

Options (all optional): --lb-preset, --lb-repeats, --lb-devices, --lb-tasks, --lb-timeout, --lb-out.
At the end the report (REPORT.md, figures, results.json, pytest-benchmark.json) is written to
--lb-out, by default reports/<machine>/, and its path is printed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import implementations
from loopbench.isolate import DEFAULT_TIMEOUT_S
from loopbench.suite import Matrix, default_devices, default_preset

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser):
    g = parser.getgroup("loopbench")
    g.addoption("--lb-preset", choices=("smoke", "quick", "full"), help="default: full on GPU, quick on CPU")
    g.addoption("--lb-repeats", type=int, default=2, help="fresh-process runs per cell (default 2)")
    g.addoption("--lb-devices", nargs="+", help="default: cuda if visible, else cpu")
    g.addoption("--lb-tasks", nargs="+", choices=implementations.TASKS, help="default: every task")
    g.addoption("--lb-timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per run")
    g.addoption("--lb-out", type=Path, help="report folder; default reports/<machine>/")


def matrix_from(config: pytest.Config) -> Matrix:
    devices = tuple(config.getoption("--lb-devices") or default_devices())
    return Matrix(
        tasks=tuple(config.getoption("--lb-tasks") or implementations.TASKS),
        devices=devices,
        preset=config.getoption("--lb-preset") or default_preset(devices),
        repeats=config.getoption("--lb-repeats"),
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--lb-out", None) is None and hasattr(config.option, "lb_out"):
        import torch

        from loopbench.measure import environment, machine_name

        device = torch.device(matrix_from(config).devices[0])
        config.option.lb_out = ROOT / "reports" / machine_name(environment(device))
    # pytest-benchmark's own JSON goes beside the report unless the user chose a file
    if getattr(config.option, "benchmark_json", None) is None and hasattr(config.option, "lb_out"):
        out: Path = config.option.lb_out
        out.mkdir(parents=True, exist_ok=True)
        config.option.benchmark_json = str(out / "pytest-benchmark.json")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cell" in metafunc.fixturenames:
        m = matrix_from(metafunc.config)
        cells = [(task, device, precision, impl) for task, device, precision in m.groups() for impl in m.impls]
        metafunc.parametrize("cell", cells, ids=["-".join(c) for c in cells])


@pytest.fixture(scope="session")
def bench_matrix(request) -> Matrix:
    return matrix_from(request.config)


@pytest.fixture(scope="session")
def bench_runs(request, bench_matrix):
    """group -> {impl: [results]}; a group's runs all happen when it is first asked for."""
    from loopbench.suite import by_group, progress_line, run_cells

    done: dict[tuple, dict] = {}
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")

    def show(i, n, result):  # a progress line per run, past pytest's output capture
        with capture.global_and_fixture_disabled():
            reporter.write_line(progress_line(i, n, result))

    def get(task: str, device: str, precision: str) -> dict:
        key = (task, device, precision)
        if key not in done:
            cells = [c for c in bench_matrix.cells() if (c.task, c.device, c.precision) == key]
            results = run_cells(cells, request.config.getoption("--lb-timeout"), show)
            RESULTS.extend(results)
            done[key] = next(iter(by_group(results).values()))
        return done[key]

    return get


RESULTS: list = []


def pytest_sessionfinish(session: pytest.Session) -> None:
    if RESULTS:
        from loopbench.report import write_report

        session.config._loopbench_report = write_report(RESULTS, session.config.option.lb_out)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    path = getattr(config, "_loopbench_report", None)
    if path:
        terminalreporter.write_line(f"loopbench report: {path}", bold=True)
