"""The overhead probe's plain and Lightning jobs do the same work: bitwise-equal losses and weights."""

import pytest

from implementations.overhead_probe import spec
from loopbench.analysis.parity import compare
from loopbench.core.trainers import TRAINERS
from tests.helpers import assert_bitwise_parity, requires_cuda, train


@pytest.mark.parametrize("impl", list(TRAINERS))  # the ladder's variants too: they differ in overhead only
@pytest.mark.parametrize("shape", spec.SHAPES)
def test_overhead_probe_bitwise_parity_cpu(impl, shape):
    reference, _ = assert_bitwise_parity("overhead_probe", impl, steps=20, overrides={"shape": shape})
    expected = {"auto": {"loss"}, "manual": {"loss_a", "loss_b"}}[shape]
    assert set(reference.losses) == expected and len(reference.losses[min(expected)]) == 20
    assert reference.task_config["threads"] == 1


@pytest.mark.parametrize("shape", spec.SHAPES)
def test_overhead_probe_parity_positive_control_nudged_learning_rate(shape):
    lr = spec.PRESETS["smoke"].lr
    reference = train("overhead_probe", "pytorch", overrides={"shape": shape})
    candidate = train("overhead_probe", "lightning", overrides={"shape": shape, "lr": lr * 1.001})
    report = compare(reference, candidate)
    assert report.verdict == "mismatch" and report.first_differing_step == 1 and not report.weights_equal


def test_overhead_probe_learns():
    assert train("overhead_probe", "pytorch", preset="quick", steps=500).metrics["test_mse"] < 0.05


def test_the_probe_thread_setting_does_not_leak_into_the_next_cell():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the probe sets 1: this must survive it
    try:
        train("overhead_probe", "pytorch", steps=3)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.gpu
@requires_cuda
def test_the_probe_on_cuda_records_host_and_device_time_per_step():
    from loopbench.analysis.probe import answer
    from loopbench.studies.batches import run_cells
    from loopbench.studies.overhead import plan

    results = run_cells(plan("cuda", "auto", 2, 200, ("pytorch", "lightning")))
    assert all(r.ok for r in results), [r.message for r in results]
    lean = answer(results, "cuda")["shapes"]["auto"]["lightning"]
    assert lean["host_us_per_step"] > 0 and lean["us_per_step"] > 0 and lean["host_delta_us"] is not None
