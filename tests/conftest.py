"""The one real instruction count of the tests starts as soon as the tests are collected, beside them: under
valgrind, importing torch alone takes a minute or more of one core, and a count does not depend on load."""

import dataclasses
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

COUNTED = "test_a_real_count_of_the_plain_probe_step"  # the test that reads the count
_pool = ThreadPoolExecutor(max_workers=1)


def _count() -> list:
    from loopbench.launch import valgrind as instructions
    from loopbench.studies.overhead import count_plan

    # the probe's plain loop as the probe counts it (64 steps after warm-up), twice in one valgrind process
    planned = count_plan("cpu", "auto", ("pytorch",))[0]
    return instructions.count([dataclasses.replace(planned, repeat=k) for k in range(2)], timeout_s=900)


def pytest_collection_finish(session: pytest.Session) -> None:
    from loopbench.launch import valgrind as instructions

    if instructions.unavailable() is None and any(COUNTED in item.name for item in session.items):
        session.config._loopbench_count = _pool.submit(_count)


@pytest.fixture(scope="session")
def real_probe_count(request) -> list:
    future: Future | None = getattr(request.config, "_loopbench_count", None)
    return future.result() if future else _count()
