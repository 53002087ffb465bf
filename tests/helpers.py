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

_REFERENCES: dict[tuple[str, str], RunResult] = {}  # plain runs by cell, shared by the variants compared with them

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def train(task: str, impl: str, **kwargs) -> RunResult:
    """Run one cell in-process and insist that it succeeded."""
    result = run_cell(RunConfig(task=task, impl=impl, **kwargs))
    assert result.ok, f"{result.status}: {result.message}"
    return result


def assert_bitwise_parity(task: str, impl: str, **kwargs) -> tuple[RunResult, RunResult]:
    """Train `pytorch` and `impl` on the same cell; insist on identical per-step losses and weights.
    The plain run is trained once per cell and shared by the Lightning variants compared with it."""
    key = (task, repr(sorted(kwargs.items())))
    if key not in _REFERENCES:
        _REFERENCES[key] = train(task, "pytorch", **kwargs)
    reference, candidate = _REFERENCES[key], train(task, impl, **kwargs)
    expected = resolve_precision(kwargs.get("precision", "32-true")).forward_dtype
    assert reference.forward_dtype == candidate.forward_dtype == expected  # what ran is what the label says
    report = compare_cell(reference, candidate)
    assert report.verdict == "bitwise" and report.holds and report.losses_equal and report.weights_equal, report.line()
    return reference, candidate
