import pytest

from loopbench.precision import (
    PRECISIONS,
    default_precisions,
    device_type,
    resolve_precision,
    unsupported_reason,
)


@pytest.mark.parametrize(
    ("name", "dtype", "scaler", "lightning"),
    [
        ("32-true", None, False, "32-true"),
        ("16-mixed", "float16", True, "16-mixed"),
        ("bf16-mixed", "bfloat16", False, "bf16-mixed"),
    ],
)
def test_precision_plan_matches_lightning_mixed_precision(name, dtype, scaler, lightning):
    plan = resolve_precision(name)
    assert (plan.autocast_dtype, plan.grad_scaler, plan.lightning) == (dtype, scaler, lightning)


def test_unknown_precision_names_the_choices():
    with pytest.raises(ValueError, match="32-true, 16-mixed, bf16-mixed"):
        resolve_precision("fp8")


@pytest.mark.parametrize(("device", "kind"), [("cpu", "cpu"), ("cuda", "cuda"), ("cuda:1", "cuda")])
def test_device_type(device, kind):
    assert device_type(device) == kind


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "cpu:0", ""])
def test_unknown_device_is_refused(device):
    with pytest.raises(ValueError, match="cpu, cuda, cuda:N"):
        device_type(device)


@pytest.mark.parametrize("impl", ["lightning", "lightning-defaults"])
def test_lightning_fp16_on_cpu_is_refused_not_silently_bf16(impl):
    assert "bf16-mixed" in unsupported_reason(impl, "cpu", "16-mixed")


def test_support_matrix_allows_everything_else():
    refused = {
        (impl, device, p)
        for impl in ("pytorch", "lightning", "lightning-defaults")
        for device in ("cpu", "cuda", "cuda:0")
        for p in PRECISIONS
        if unsupported_reason(impl, device, p)
    }
    assert refused == {("lightning", "cpu", "16-mixed"), ("lightning-defaults", "cpu", "16-mixed")}


def test_default_precisions_add_fp16_on_gpu_only():
    assert default_precisions("cpu") == ("32-true", "bf16-mixed")
    assert default_precisions("cuda:0") == PRECISIONS
