"""The comparison itself, on hand-made results: verdicts, tolerance, refusal to compare failures."""

import math

import pytest
import torch

from loopbench.analysis.parity import compare, compare_cell, expected_strength
from loopbench.core.types import RunConfig, RunResult


def result(losses, weights=None, impl="pytorch", device="cpu", precision="32-true", status="ok"):
    weights = weights if weights is not None else {"w": torch.tensor([1.0, 2.0])}
    return RunResult(
        config=RunConfig("cifar_cnn", impl, device, precision).to_dict(),
        status=status,
        losses={"loss": list(losses)},
        weights=weights,
        weights_digest=str(weights["w"].tolist()),
    )


def test_identical_runs_are_bitwise():
    r = compare(result([2.0, 1.5]), result([2.0, 1.5], impl="lightning"))
    assert (r.verdict, r.holds, r.max_abs_loss_diff, r.first_differing_step) == ("bitwise", True, 0.0, None)


def test_one_ulp_in_one_weight_is_a_mismatch_on_cpu():
    w = torch.tensor([1.0, 2.0])
    nudged = {"w": torch.nextafter(w, torch.tensor(math.inf))}
    r = compare_cell(result([2.0, 1.5]), result([2.0, 1.5], weights=nudged, impl="lightning"))
    assert r.verdict == "mismatch" and r.losses_equal and not r.weights_equal and not r.holds
    assert 0 < r.max_abs_weight_diff < 1e-6


def test_tolerance_verdict_on_cuda():
    ref = result([2.0, 1.0], device="cuda", precision="bf16-mixed")
    close = result([2.0, 1.01], device="cuda", precision="bf16-mixed", impl="lightning")
    far = result([2.0, 1.5], device="cuda", precision="bf16-mixed", impl="lightning")
    assert compare_cell(ref, close).verdict == "within_tolerance" and compare_cell(ref, close).holds
    assert compare_cell(ref, far).verdict == "mismatch" and not compare_cell(ref, far).holds
    assert compare_cell(ref, close).first_differing_step == 1


def test_within_tolerance_does_not_hold_where_bitwise_is_expected():
    r = compare(result([2.0, 1.0]), result([2.0, 1.0000001], impl="lightning"), rtol=1e-3)
    assert r.verdict == "within_tolerance" and r.expected == "bitwise" and not r.holds


def test_nan_losses_compare_unequal_to_numbers():
    r = compare(result([2.0, math.nan]), result([2.0, 1.0], impl="lightning"), rtol=10.0)
    assert r.verdict == "mismatch"


def test_failed_runs_are_not_compared():
    with pytest.raises(ValueError, match="status 'oom'"):
        compare(result([1.0]), result([], status="oom"))


def test_a_run_that_trained_longer_is_a_mismatch_from_where_the_shorter_ended():
    r = compare(result([1.0, 2.0]), result([1.0], impl="lightning"), rtol=10.0)
    assert (r.verdict, r.first_differing_step, r.steps, r.holds) == ("mismatch", 1, 2, False)


def test_weights_from_json_compare_by_digest():
    a, b = result([1.0]), result([1.0], impl="lightning")
    a.weights = b.weights = None
    assert compare(a, b).weights_equal
    b.weights_digest = "other"
    assert compare(a, b).verdict == "mismatch"


@pytest.mark.parametrize(("device", "strength"), [("cpu", "bitwise"), ("cuda:0", "within_tolerance")])
def test_expected_strength(device, strength):
    assert expected_strength(device, "32-true")[0] == strength
