"""The in-place split: what it counts as the model's own work, that it leaves nothing behind, and its analysis."""

from __future__ import annotations

import statistics

import pytest
import torch
from torch.nn.modules import module as nn_module
from torch.optim import optimizer as optim_module

from loopbench.analysis import inplace, rounds
from loopbench.core.types import RunConfig, RunResult
from loopbench.launch.cell import run_cell
from loopbench.measure import split as split_module
from loopbench.measure.split import Split


class Clock:
    """The split's clock, moved by the test alone: what is counted, not how long the machine took for it."""

    now = 0.0

    def perf_counter(self) -> float:
        return self.now


CLOCK = Clock()


def _busy(seconds: float) -> None:
    CLOCK.now += seconds


class Slow(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = torch.nn.Linear(2, 1)

    def forward(self, x):
        _busy(0.004)
        return self.inner(x)


def test_work_is_forward_backward_and_update_without_the_closure(monkeypatch):
    monkeypatch.setattr(split_module, "time", CLOCK)
    model = Slow()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    split = Split()
    try:
        x = torch.ones(4, 2)
        _busy(0.004)  # outside any timed region: the rest

        def closure():  # as Lightning runs the training step inside step(): its forward counts once
            optimizer.zero_grad()
            loss = model(x).sum()
            loss.backward()
            _busy(0.004)  # the closure's own bookkeeping: the rest
            return loss

        optimizer.step(closure)
        split.tick()
    finally:
        split.close()
    (work,) = split.work_times_s
    assert work == pytest.approx(0.004)  # the forward's 4 ms, not the 8 ms outside it


def test_close_leaves_no_hook_and_restores_backward():
    before = (len(nn_module._global_forward_pre_hooks), len(nn_module._global_forward_hooks),
              len(optim_module._global_optimizer_pre_hooks), torch.Tensor.backward)  # fmt: skip
    Split().close()
    after = (len(nn_module._global_forward_pre_hooks), len(nn_module._global_forward_hooks),
             len(optim_module._global_optimizer_pre_hooks), torch.Tensor.backward)  # fmt: skip
    assert after == before


def test_a_known_slowdown_lands_in_the_rest_not_the_work():
    """--slowdown-us busy-waits inside the step, outside the model: the rest holds it, the work does not."""
    base = RunConfig(task="overhead_probe", impl="pytorch", steps=24, warmup_steps=4)
    slow = run_cell(RunConfig(**{**base.to_dict(), "slowdown_us": 3000.0}))
    assert slow.rest_time_median_s >= 3e-3
    work = statistics.median(slow.work_times_s[slow.warmup_steps :])
    assert 0 < work < 3e-3
    assert len(slow.work_times_s) == len(slow.step_times_s) == 24


@pytest.mark.parametrize("config", [{"clock": "instructions"}, {"split": False}, {"device": "cuda"}])
def test_the_split_is_taken_only_where_it_means_something(config):
    from loopbench.harness.placement import splits

    assert not splits(RunConfig(task="overhead_probe", impl="pytorch", **config))
    assert splits(RunConfig(task="overhead_probe", impl="pytorch"))


def test_a_count_takes_the_split_only_when_asked_so_its_timers_can_be_counted():
    from loopbench.harness.placement import splits

    asked = RunConfig(task="overhead_probe", impl="pytorch", clock="instructions", split=True)
    assert splits(asked) and "/cpu/split/32-true/" in asked.label
    assert not splits(RunConfig(task="overhead_probe", impl="pytorch", clock="instructions"))


def _segment(impl: str, k: int, slot: int, step: float, rest: float) -> RunResult:
    config = RunConfig(task="t", impl=impl, repeat=k, slot=slot).to_dict()
    return RunResult(config=config, step_times_s=[step] * 40, step_time_median_s=step, rest_time_median_s=rest)


def test_trainer_time_is_the_rest_difference_over_the_plain_step():
    runs = []
    for k in range(8):
        runs += [_segment("pytorch", k, 1, 0.100, 0.002), _segment("lightning", k, 2, 0.105, 0.003 + k * 1e-5),
                 _segment("pytorch", k, 3, 0.100, 0.002)]  # fmt: skip
    found, _ = rounds.pairs(runs, "t")
    t = inplace.trainer_time(found["lightning"])
    assert t["pairs"] == 8
    assert t["own_low_s"] <= t["own_s"] <= t["own_high_s"]
    assert t["own_s"] == pytest.approx(0.001035, abs=2e-5)
    assert t["share"] == pytest.approx(0.01035, abs=2e-4)
    assert t["work_s"] + t["own_s"] == pytest.approx(0.005, abs=2e-5)  # own + work: the whole step's growth
    assert t["pinned"]
    assert inplace.label(t).endswith("of the step")


def test_too_few_rounds_give_no_interval():
    runs = [_segment(i, 0, s, 0.1, 0.002) for s, i in enumerate(("pytorch", "lightning", "pytorch"), 1)]
    found, _ = rounds.pairs(runs, "t")
    t = inplace.trainer_time(found["lightning"])
    assert t["own_low_s"] is None and not t["pinned"]
    assert "not resolved" in inplace.label(t)
