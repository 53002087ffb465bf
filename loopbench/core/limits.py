"""The cells of the default matrix that run less than their preset on this machine, and why: data that the
planner applies and the report explains, read from a run's device, precision and CPU flags.
"""

from __future__ import annotations

from dataclasses import dataclass

from loopbench.core.precision import device_type


@dataclass(frozen=True)
class Limit:
    """A cell of the default matrix that runs less than its preset, and why."""

    steps: int
    warmup_steps: int
    repeats: int  # fresh-process runs per implementation, at most
    reason: str


# float16 convolutions on CPU have no fast kernels in torch (measured on an Intel Xeon with AVX-512 FP16:
# CIFAR's quick net about 4 s per step in 16-mixed, 0.07 s in 32-true); the MLP GAN's GEMMs are fine.
# One step in one run per implementation shows that and checks parity, without the held-out evaluation (after one
# step it says nothing, and in a slow number format it takes longer than the step): the bench stays in budget.
STEP_LIMITS: dict[tuple[str, str, str], Limit] = {
    ("cpu", "16-mixed", "cifar_cnn"): Limit(1, 0, 1, "float16 convolutions on CPU are tens of times slower"),
    ("cpu", "16-mixed", "efficientnet_binary"): Limit(1, 0, 1, "float16 convolutions on CPU are tens of times slower"),
}


# A CPU without native float16 arithmetic runs every float16 matrix product through slow kernels (measured on
# an AMD EPYC with AVX-512 BF16 only: the GAN's quick step 260 ms in 16-mixed, 20 ms in 32-true): all its
# 16-mixed cells run like the convolutions above.
NATIVE_FP16 = ("avx512_fp16", "amx_fp16")


NO_NATIVE_FP16 = Limit(1, 0, 1, "this CPU has no native float16 arithmetic (no AVX-512 FP16 or AMX-FP16): "
                       "float16 runs tens of times slower")  # fmt: skip


# The same for bfloat16 on a CPU without its instructions (measured on an AMD EPYC with AVX2 only: EfficientNet's
# quick step 6.8 s in bf16-mixed, 0.53 s in 32-true; the GAN's 346 ms and 34 ms).
NATIVE_BF16 = ("avx512_bf16", "amx_bf16")


NO_NATIVE_BF16 = Limit(1, 0, 1, "this CPU has no native bfloat16 arithmetic (no AVX-512 BF16 or AMX-BF16): "
                       "bfloat16 runs about ten times slower")  # fmt: skip


NATIVE = {"16-mixed": (NATIVE_FP16, NO_NATIVE_FP16), "bf16-mixed": (NATIVE_BF16, NO_NATIVE_BF16)}


def step_limit(task: str, device: str, precision: str, cpu_flags: list[str]) -> Limit | None:
    """The Limit of a cell on a CPU with these number-format flags (pure: the report reads it from results)."""
    limit = STEP_LIMITS.get((device_type(device), precision, task))
    if limit is None and device_type(device) == "cpu" and precision in NATIVE:
        native, slow = NATIVE[precision]
        return None if any(f in cpu_flags for f in native) else slow
    return limit
