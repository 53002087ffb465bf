"""pytest-benchmark entry: `pytest benchmarks --benchmark-only` runs this machine's default matrix.

Options (all optional): --lb-preset, --lb-repeats, --lb-devices, --lb-tasks, --lb-precisions,
--lb-timeout, --lb-out, --lb-resume, --lb-probe-runs, --lb-probe-steps, --lb-processes. The overhead probe
(loopbench.overhead: the plain loop, the ladder of Trainers, the default Trainer) runs first.
Each run's result is appended to <lb-out>/results.jsonl as it ends; at the end, or on Ctrl-C /
SIGTERM, the report (REPORT.md, figures, results.json, pytest-benchmark.json) of every finished run
is written to --lb-out, by default reports/<machine>/, and its path is printed.
--lb-resume runs only what that folder's results.jsonl does not hold yet.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

import implementations
from loopbench.launch.isolate import DEFAULT_TIMEOUT_S, raise_interrupt
from loopbench.overhead import PROBE_RUNS, PROBE_STEPS
from loopbench.precision import PRECISIONS, device_type
from loopbench.suite import Matrix, default_devices, default_preset

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser):
    g = parser.getgroup("loopbench")
    g.addoption("--lb-preset", choices=("smoke", "quick", "full"), help="default: full on GPU, quick on CPU")
    g.addoption("--lb-repeats", type=int, default=2, help="fresh-process runs per cell (default 2)")
    g.addoption("--lb-devices", nargs="+", help="default: cuda if visible, else cpu")
    g.addoption("--lb-tasks", nargs="+", choices=implementations.TASKS, help="default: every task")
    g.addoption("--lb-precisions", nargs="+", choices=PRECISIONS, help="default: all three")
    g.addoption("--lb-timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per run")
    g.addoption("--lb-out", type=Path, help="report folder; default reports/<machine>/")
    g.addoption("--lb-resume", action="store_true", help="run only the runs not yet in --lb-out's results.jsonl")
    g.addoption("--lb-probe-runs", type=int, default=PROBE_RUNS, help="overhead-probe runs per variant (0: none)")
    g.addoption("--lb-probe-steps", type=int, default=PROBE_STEPS, help=f"steps per probe run (default {PROBE_STEPS})")
    g.addoption("--lb-processes", type=int, nargs="+", default=[1], help="data parallel: process counts, e.g. 1 2")


def matrix_from(config: pytest.Config) -> Matrix:
    if config.getoption("--lb-repeats") < 1:
        raise pytest.UsageError("--lb-repeats must be at least 1")
    probes, probe_steps = config.getoption("--lb-probe-runs"), config.getoption("--lb-probe-steps")
    if probes < 0 or probes == 1 or probe_steps < 2:
        raise pytest.UsageError("--lb-probe-runs must be 0 (no probe) or at least 2; --lb-probe-steps at least 2")
    if not config.getoption("--lb-timeout") > 0:
        raise pytest.UsageError("--lb-timeout must be a positive number of seconds")
    out = config.getoption("--lb-out")
    if out is not None and out.exists() and not out.is_dir():
        raise pytest.UsageError(f"--lb-out {out}: exists and is not a folder; name a folder")
    devices = tuple(config.getoption("--lb-devices") or default_devices())
    for device in devices:
        try:
            device_type(device)
        except ValueError as e:
            raise pytest.UsageError(str(e)) from None
    tasks = tuple(config.getoption("--lb-tasks") or implementations.TASKS)
    processes = tuple(dict.fromkeys(config.getoption("--lb-processes")))
    _check_processes(tasks, devices, processes)
    return Matrix(
        tasks=tasks,
        precisions=tuple(config.getoption("--lb-precisions") or ()) or None,
        devices=devices,
        preset=config.getoption("--lb-preset") or default_preset(devices),
        repeats=config.getoption("--lb-repeats"),
        probe_runs=config.getoption("--lb-probe-runs"),
        probe_steps=config.getoption("--lb-probe-steps"),
        processes=processes,
    )


def _check_processes(tasks: tuple[str, ...], devices: tuple[str, ...], processes: tuple[int, ...]) -> None:
    """--lb-processes this machine cannot run (more than its cores or GPUs, or 0) are refused up front."""
    from loopbench.checks import validate
    from loopbench.types import RunConfig, UsageError

    for n in processes:
        for device in devices:
            try:
                validate(RunConfig(tasks[0], "pytorch", device, processes=n))
            except UsageError as e:
                raise pytest.UsageError(str(e).replace("--processes", "--lb-processes")) from None


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
    if hasattr(config.option, "lb_out"):
        from loopbench.store import LOG_NAME
        from loopbench.suite import Progress
        from loopbench.types import UsageError

        if not config.getoption("--lb-resume"):  # this folder is the machine's report: a new run replaces it
            (config.option.lb_out / LOG_NAME).unlink(missing_ok=True)
        try:
            config._loopbench = Progress(matrix_from(config), config.option.lb_out, config.getoption("--lb-resume"))
        except UsageError as e:
            raise pytest.UsageError(str(e)) from None
        # pytest turns KeyboardInterrupt into an orderly stop; SIGINT may arrive ignored from a shell
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, raise_interrupt)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cell" in metafunc.fixturenames:
        from loopbench.suite import group_key, group_words

        cells = list(dict.fromkeys((group_key(c), c.impl) for c in matrix_from(metafunc.config).cells()))
        ids = ["-".join([*group_words(group), impl]).replace(" ", "") for group, impl in cells]
        metafunc.parametrize("cell", cells, ids=ids)


@pytest.fixture(scope="session")
def bench_matrix(request) -> Matrix:
    return matrix_from(request.config)


@pytest.fixture(scope="session")
def bench_runs(request, bench_matrix):
    """group -> {impl: [results]}; a group's runs all happen when it is first asked for."""
    from loopbench.store import run_key
    from loopbench.suite import by_group, group_key, progress_line, run_cells

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
            results = [r for r in progress.results() if run_key(r.config) in planned]
            done[group] = next(iter(by_group(results).values()), {})
        return done[group]

    return get


def pytest_sessionfinish(session: pytest.Session, exitstatus) -> None:
    from loopbench.report import write_report

    progress = getattr(session.config, "_loopbench", None)
    results = progress.results() if progress else []
    if results:
        session.config._loopbench_report = write_report(results, session.config.option.lb_out)
        session.config._loopbench_counts = (len(results), len(progress.planned))


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    path = getattr(config, "_loopbench_report", None)
    if path:
        terminalreporter.write_line(f"loopbench report: {path}", bold=True)
        finished, planned = config._loopbench_counts
        if finished < planned:
            terminalreporter.write_line(
                f"the report holds {finished} of the {planned} planned runs; "
                "continue with the same options and --lb-resume",
                bold=True,
            )
