"""Test helpers: train one cell in this process (fast: no interpreter start-up per run)."""

from __future__ import annotations

import pytest
import torch

from loopbench.analysis.parity import compare_cell
from loopbench.core.precision import resolve_precision
from loopbench.core.quiet import quiet_lightning
from loopbench.core.types import RunConfig, RunResult
from loopbench.launch.cell import run_cell

quiet_lightning()

_TRAINED: dict[tuple[str, str, str], RunResult] = {}  # runs by cell, for the tests that only read them

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def train(task: str, impl: str, **kwargs) -> RunResult:
    """Run one cell in-process and insist that it succeeded."""
    result = run_cell(RunConfig(task=task, impl=impl, **kwargs))
    assert result.ok, f"{result.status}: {result.message}"
    return result


def trained(task: str, impl: str, **kwargs) -> RunResult:
    """`train`, once per cell in this process: for tests that read the result and change nothing it depends on."""
    key = (task, impl, repr(sorted(kwargs.items())))
    if key not in _TRAINED:
        _TRAINED[key] = train(task, impl, **kwargs)
    return _TRAINED[key]


def assert_bitwise_parity(task: str, impl: str, **kwargs) -> tuple[RunResult, RunResult]:
    """Train `pytorch` and `impl` on the same cell; insist on identical per-step losses and weights.
    The plain run is trained once per cell and shared by the Lightning variants compared with it."""
    reference, candidate = trained(task, "pytorch", **kwargs), train(task, impl, **kwargs)
    expected = resolve_precision(kwargs.get("precision", "32-true")).forward_dtype
    assert reference.forward_dtype == candidate.forward_dtype == expected  # what ran is what the label says
    report = compare_cell(reference, candidate)
    assert report.verdict == "bitwise" and report.holds and report.losses_equal and report.weights_equal, report.line()
    return reference, candidate
