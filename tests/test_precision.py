import pytest

from loopbench.core.precision import (
    PRECISIONS,
    default_precisions,
    device_type,
    lightning_needs_plugin,
    precision_via,
    resolve_precision,
)


@pytest.mark.parametrize(
    ("name", "dtype", "scaler", "lightning", "forward"),
    [
        ("32-true", None, False, "32-true", "float32"),
        ("16-mixed", "float16", True, "16-mixed", "float16"),
        ("bf16-mixed", "bfloat16", False, "bf16-mixed", "bfloat16"),
    ],
)
def test_precision_plan_matches_lightning_mixed_precision(name, dtype, scaler, lightning, forward):
    plan = resolve_precision(name)
    assert (plan.autocast_dtype, plan.grad_scaler, plan.lightning, plan.forward_dtype) == (
        dtype,
        scaler,
        lightning,
        forward,
    )


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


def test_lightning_fp16_on_cpu_goes_through_the_explicit_plugin_only():
    needs = {(d, p) for d in ("cpu", "cuda", "cuda:0") for p in PRECISIONS if lightning_needs_plugin(d, p)}
    assert needs == {("cpu", "16-mixed")}
    assert precision_via("lightning", "cpu", "16-mixed") == (
        "Trainer(plugins=[MixedPrecision('16-mixed', 'cpu', GradScaler('cpu'))])"
    )
    assert precision_via("lightning-defaults", "cuda", "16-mixed") == "Trainer(precision='16-mixed')"


def test_plain_loop_precision_is_autocast_with_a_scaler_for_float16_only():
    assert precision_via("pytorch", "cpu", "16-mixed") == "torch.autocast('cpu', torch.float16) + GradScaler('cpu')"
    assert precision_via("pytorch", "cuda:1", "bf16-mixed") == "torch.autocast('cuda', torch.bfloat16)"
    assert precision_via("pytorch", "cpu", "32-true") == "no autocast"


def test_default_precisions_are_all_three_on_both_devices():
    assert default_precisions("cpu") == default_precisions("cuda:0") == PRECISIONS


def test_a_cpu_without_native_low_precision_runs_those_cells_short_and_says_why():
    from loopbench.core.limits import NO_NATIVE_BF16, NO_NATIVE_FP16, step_limit

    avx2 = ["avx2", "fma", "f16c"]
    assert step_limit("mnist_gan", "cpu", "bf16-mixed", avx2) is NO_NATIVE_BF16
    assert step_limit("mnist_gan", "cpu", "16-mixed", avx2) is NO_NATIVE_FP16
    assert step_limit("mnist_gan", "cpu", "bf16-mixed", [*avx2, "avx512_bf16"]) is None
    assert step_limit("mnist_gan", "cpu", "32-true", avx2) is None
    assert step_limit("mnist_gan", "cuda", "bf16-mixed", avx2) is None
    assert "bfloat16" in NO_NATIVE_BF16.reason
