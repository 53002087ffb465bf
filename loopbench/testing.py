"""Parity in your own test suite: does your plain-PyTorch port train the same model as your LightningModule?

    from loopbench.testing import assert_same_training

    def test_our_port_trains_what_lightning_trains():
        assert_same_training("ours.jobs:make", "ours.port:train", steps=20)

`make` is what `loopbench module` takes: a LightningModule, (module, data), or a dict with the Trainer settings its
authors use (docs/own-module.md). `train(module, data, steps) -> losses` is your port: it gets the module as the
factory built it (after seeding, so with the weights the Trainer's side starts from) and the factory's data, trains
it in place for `steps` optimizer steps with plain PyTorch, and returns each step's loss. Both run here, in this
process, from one seed: the Trainer's side through Lightning, your port in the plain loop's place. Either may be
given as the function itself rather than its PKG.MOD:NAME.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from implementations.module import spec
from loopbench.analysis.parity import compare_cell
from loopbench.core.quiet import quiet_lightning
from loopbench.core.types import RunConfig, RunResult
from loopbench.launch.cell import run_cell


@dataclass(frozen=True)
class Verdict:
    same: bool
    message: str  # one paragraph: what differs first, by how much, and the verdict's strength
    trainer: RunResult
    port: RunResult

    def __bool__(self) -> bool:
        return self.same


def same_training(factory: str | Callable, train: str | Callable, steps: int = 20, *, seed: int = 0,
                  against: str = "lightning", precision: str = "32-true", device: str = "cpu") -> Verdict:  # fmt: skip
    """Train the job with `against` (a Trainer of loopbench/core/trainers.py) and with the port, `steps` steps each,
    from `seed`, and compare them at the strength the device allows (bitwise on CPU, a tolerance on CUDA)."""
    quiet_lightning()
    names = [_named(f, role) for f, role in ((factory, "factory"), (train, "port"))]
    overrides = {"factory": names[0], "plain": names[1]}
    runs = [run_cell(RunConfig("module", impl, device, precision, seed=seed, steps=steps, warmup_steps=0,
                               overrides=overrides, split=False)) for impl in (against, "pytorch")]  # fmt: skip
    trainer, port = runs
    for r, who in ((trainer, against), (port, "the port")):
        if not r.ok:
            return Verdict(False, f"{who} did not finish: {r.status}: {r.message}", trainer, port)
    if not trainer.losses:  # a manual step that returns nothing: the weights and what was logged decide
        port.losses = {}
    report = compare_cell(port, trainer)
    return Verdict(report.holds, _message(report, trainer, port, against), trainer, port)


def assert_same_training(factory: str | Callable, train: str | Callable, steps: int = 20, **kwargs: Any) -> Verdict:
    """`same_training`, failing the test with its message where the two do not train the same model."""
    verdict = same_training(factory, train, steps, **kwargs)
    assert verdict.same, verdict.message
    return verdict


def _named(f: str | Callable, role: str) -> str:
    if isinstance(f, str):
        return f
    name = f"in-process:{role}:{getattr(f, '__qualname__', repr(f))}"
    spec.IN_PROCESS[name] = f
    return name


def _message(report: Any, trainer: RunResult, port: RunResult, against: str) -> str:
    strength = "bitwise" if report.expected == "bitwise" else f"within a relative {report.rtol:g}"
    if report.holds:
        return f"the port trains what {against} trains: {report.verdict} over {report.steps} steps ({strength})"
    parts = [f"the port and {against} train different models (expected {strength})"]
    if report.first_differing_step is not None:
        k = report.first_differing_step
        a, b = trainer.losses.get("loss", []), port.losses.get("loss", [])
        shown = f": {_at(a, k)} ({against}) vs {_at(b, k)} (the port)" if a and b else ""
        parts.append(f"the losses differ first at step {k}{shown}")
    if not report.weights_equal and report.max_abs_weight_diff is not None:
        parts.append(f"the largest weight difference is {report.max_abs_weight_diff:.3g}, in "
                     f"{report.details.get('largest_weight_difference_in', '?')!r}")  # fmt: skip
    if report.logged_difference:
        parts.append(f"what the module logged differs: {report.logged_difference}")
    return "; ".join(parts)


def _at(values: list[float], k: int) -> str:
    return f"{values[k]:.6g}" if k < len(values) and not math.isnan(values[k]) else "none"
