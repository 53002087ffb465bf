"""Precision names -> what each implementation does with them.

Pure on purpose (no torch import): the mapping is the contract both loops obey, so it is unit-tested
without building a model.

The plain loop follows PyTorch's AMP recipe: `torch.autocast(device, dtype)` (with its default
weight-cast cache) around forward + loss, backward and optimizer step outside, and for float16 a
`GradScaler`. Lightning opens the same autocast without the cache (`cache_enabled=False`); the two
give the same bits where every weight is cast once per region, and the benchmark shows what the
re-casting costs where it is not.

Lightning's string flag `precision="16-mixed"` on CPU silently trains in bf16-mixed (its accelerator
connector swaps it). An explicit `MixedPrecision("16-mixed", "cpu", GradScaler("cpu"))` plugin runs
float16 as labelled, so that is what the Lightning cells use there; every result records how its
precision was applied and which dtype its forward really produced.
"""

from __future__ import annotations

from dataclasses import dataclass

from loopbench.core.trainers import FABRIC, is_lightning

PRECISIONS = ("32-true", "16-mixed", "bf16-mixed")


@dataclass(frozen=True)
class PrecisionPlan:
    name: str
    autocast_dtype: str | None  # torch dtype name, e.g. "bfloat16"; None = no autocast
    grad_scaler: bool  # loss scaling, needed for float16's narrow exponent range only
    lightning: str  # the Trainer's `precision=` value, or the MixedPrecision plugin's

    @property
    def forward_dtype(self) -> str:
        """The dtype a model's forward (a Linear or conv output) must produce under this precision."""
        return self.autocast_dtype or "float32"


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


def lightning_needs_plugin(device: str, precision: str) -> bool:
    """True where the Trainer's string flag would not run `precision` as labelled: 16-mixed on CPU."""
    return device_type(device) == "cpu" and resolve_precision(precision).name == "16-mixed"


PLUGIN_NOTE = (
    "Lightning's 16-mixed cells on CPU use an explicit `MixedPrecision('16-mixed', 'cpu', GradScaler('cpu'))` "
    "plugin: the string flag `Trainer(precision='16-mixed')` would silently train them in bf16-mixed."
)


def precision_via(impl: str, device: str, precision: str) -> str:
    """How an implementation applies `precision` on `device`, in the words of its own API (recorded)."""
    plan, kind = resolve_precision(precision), device_type(device)
    if is_lightning(impl) or impl == FABRIC:
        api = "Trainer" if is_lightning(impl) else "Fabric"
        if lightning_needs_plugin(device, precision):
            return f"{api}(plugins=[MixedPrecision('16-mixed', '{kind}', GradScaler('{kind}'))])"
        return f"{api}(precision='{plan.lightning}')"
    if plan.autocast_dtype is None:
        return "no autocast"
    scaler = f" + GradScaler('{kind}')" if plan.grad_scaler else ""
    return f"torch.autocast('{kind}', torch.{plan.autocast_dtype}){scaler}"


def default_precisions(device: str) -> tuple[str, ...]:
    """The precisions of the default matrix: all three, on either device."""
    device_type(device)
    return PRECISIONS
