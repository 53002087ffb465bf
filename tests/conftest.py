"""One thread a process; the slow tests first; and the one real instruction count, started as soon as the tests are
collected, beside them: under valgrind, importing torch alone takes a minute or more of one core, and a count does not
depend on load."""

import dataclasses
import os
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

# The tests check bits and behaviour, not speed: one thread a process (torch reads this when first imported, and
# the processes the tests start inherit it), so that tox's two workers share the cores without spinning threads.
os.environ.setdefault("OMP_NUM_THREADS", "1")

COUNTED = "test_a_real_count_of_the_plain_probe_step"  # the test that reads the count
_pool = ThreadPoolExecutor(max_workers=1)


def _count() -> list:
    from loopbench.launch import valgrind as instructions
    from loopbench.studies.overhead import count_plan

    # the probe's plain loop as the probe counts it (64 steps after warm-up), twice in one valgrind process
    planned = count_plan("cpu", "auto", ("pytorch",))[0]
    return instructions.count([dataclasses.replace(planned, repeat=k) for k in range(2)], timeout_s=900)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first, so that the two workers end together on short ones (the sort keeps the order otherwise)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_collection_finish(session: pytest.Session) -> None:
    from loopbench.launch import valgrind as instructions

    if os.environ.get("PYTEST_XDIST_WORKER"):
        return  # every worker collects every test: the one that runs it counts, while the other runs the rest
    if instructions.unavailable() is None and any(COUNTED in item.name for item in session.items):
        session.config._loopbench_count = _pool.submit(_count)


@pytest.fixture(scope="session")
def real_probe_count(request) -> list:
    future: Future | None = getattr(request.config, "_loopbench_count", None)
    return future.result() if future else _count()
