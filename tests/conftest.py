"""One thread a process, and the heavy and slow tests first."""

import os

import pytest

# The tests check bits and behaviour, not speed: one thread a process (torch reads this when first imported, and
# the processes the tests start inherit it), so that tox's two workers share the cores without spinning threads.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The heavy tests first, then the slow ones, so that the two workers end together on short ones (the sort keeps
    the order otherwise)."""
    items.sort(key=lambda item: (item.get_closest_marker("heavy") is None, item.get_closest_marker("slow") is None))
