"""Test helpers: train one cell in this process (fast: no interpreter start-up per run)."""

from __future__ import annotations

import pytest
import torch

from loopbench.harness import run_cell
from loopbench.quiet import quiet_lightning
from loopbench.types import RunConfig, RunResult

quiet_lightning()

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def train(task: str, impl: str, **kwargs) -> RunResult:
    """Run one cell in-process and insist that it succeeded."""
    result = run_cell(RunConfig(task=task, impl=impl, **kwargs))
    assert result.ok, f"{result.status}: {result.message}"
    return result
