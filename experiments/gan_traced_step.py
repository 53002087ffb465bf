"""Why the GAN's Trainer, compiled as Lightning documents, does not train the plain loop's bits even without code
generation: does dynamo trace the optimizers' update?

    python -m experiments.gan_traced_step

Manual optimization calls `opt.step()` inside `training_step`, which Lightning compiles; dynamo then traces
Adam's update too (it recompiles on the optimizers' identities). Three runs of the GAN (smoke, 30 steps), in
this process, with dynamo's eager backend (capture without code generation): the plain loop; the plain loop
with only its optimizers' `step` compiled; the lean Trainer with its LightningModule compiled. If the second
gives the third's losses bit for bit and the first does not, the traced update is the whole cause.
"""

from __future__ import annotations

import sys

import torch

from implementations.mnist_gan import spec
from loopbench.core.types import RunConfig
from loopbench.launch.cell import run_cell

STEPS = 30


def _traced_steps(build):
    def build_optimizers(nets, cfg):
        optimizers = build(nets, cfg)
        for opt in optimizers:
            opt.step = torch.compile(opt.step, backend="eager")
        return optimizers

    return build_optimizers


def main() -> int:
    plain = run_cell(RunConfig("mnist_gan", "pytorch", steps=STEPS))
    trainer = run_cell(RunConfig("mnist_gan", "lightning", steps=STEPS, compile="on", compile_backend="eager"))
    build, spec.build_optimizers = spec.build_optimizers, _traced_steps(spec.build_optimizers)
    try:
        traced = run_cell(RunConfig("mnist_gan", "pytorch", steps=STEPS))
    finally:
        spec.build_optimizers = build
    for name, r in (("the plain loop", plain), ("the plain loop, its optimizers' step compiled", traced)):
        diff = max(abs(a - b) for k in r.losses for a, b in zip(r.losses[k], trainer.losses[k], strict=True))
        same = r.losses == trainer.losses and r.weights_digest == trainer.weights_digest
        print(f"{name}: the compiled Trainer's losses and weights bit for bit: {same} (max |loss diff| {diff:.2g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
