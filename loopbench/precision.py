"""Precision names -> what each implementation does with them, and which cells can be run at all.

Pure on purpose (no torch import): the mapping and the support matrix are the contract both loops
obey, so they are unit-tested without building a model.

The plain loop reproduces Lightning's `MixedPrecision` plugin exactly: `torch.autocast(device,
dtype, cache_enabled=False)` around forward + loss, and for float16 a `GradScaler` with
unscale -> step -> update after every optimizer step. Same computation, two spellings.
"""

from __future__ import annotations

from dataclasses import dataclass

PRECISIONS = ("32-true", "16-mixed", "bf16-mixed")
LIGHTNING_IMPLS = ("lightning", "lightning-defaults")


@dataclass(frozen=True)
class PrecisionPlan:
    name: str
    autocast_dtype: str | None  # torch dtype name, e.g. "bfloat16"; None = no autocast
    grad_scaler: bool  # loss scaling, needed for float16's narrow exponent range only
    lightning: str  # the Trainer's `precision=` argument


_PLANS = {
    "32-true": PrecisionPlan("32-true", None, False, "32-true"),
    "16-mixed": PrecisionPlan("16-mixed", "float16", True, "16-mixed"),
    "bf16-mixed": PrecisionPlan("bf16-mixed", "bfloat16", False, "bf16-mixed"),
}


def resolve_precision(name: str) -> PrecisionPlan:
    """The plan for a precision name; ValueError naming the valid choices otherwise."""
    try:
        return _PLANS[name]
    except KeyError:
        raise ValueError(f"unknown precision {name!r}; choose from {', '.join(PRECISIONS)}") from None


def device_type(device: str) -> str:
    """'cuda:1' -> 'cuda'; ValueError for anything but cpu / cuda / cuda:N."""
    kind, _, index = device.partition(":")
    if kind == "cpu" and not index:
        return "cpu"
    if kind == "cuda" and (not index or index.isdigit()):
        return "cuda"
    raise ValueError(f"unknown device {device!r}; choose from cpu, cuda, cuda:N")


def unsupported_reason(impl: str, device: str, precision: str) -> str | None:
    """Why this (impl, device, precision) cell cannot be run as labelled, or None if it can.

    Lightning does not refuse 16-mixed on CPU: it silently trains in bf16-mixed instead. Running it
    would put a bf16 computation under a 16-mixed label, so the cell is refused here.
    """
    resolve_precision(precision)
    if device_type(device) == "cpu" and precision == "16-mixed" and impl in LIGHTNING_IMPLS:
        return "Lightning runs 16-mixed on CPU as bf16-mixed; use --precision bf16-mixed or --device cuda"
    return None


def default_precisions(device: str) -> tuple[str, ...]:
    """The precisions of the default matrix: float16 autocast is a GPU feature, bf16 runs on both."""
    if device_type(device) == "cuda":
        return PRECISIONS
    return ("32-true", "bf16-mixed")
