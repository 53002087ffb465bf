"""Where the GAN's data-parallel cost in Lightning comes from: the plain GAN step under Lightning's DDP shapes.

    python -m experiments.gan_ddp_wrapping [--processes 2] [--steps 120] [--repeats 3] [--json PATH]

The plain loop (implementations/mnist_gan/pytorch_loop.py) wraps each net in its own DDP and runs the
generator's update through the bare discriminator: no parameter is ever unused. Lightning wraps the whole
LightningModule in one DDP and, with manual optimization, needs `find_unused_parameters=True`: before each
backward the reducer walks the autograd graph from the loss, and the parameters it does not reach (the
other net's) are marked ready and reduced with the rest. This runs the plain GAN step (quick preset,
float32, gloo, one thread per process) wrapped these ways:

  two-ddp              the plain loop's wrapping
  two-ddp-find-unused  the same, each DDP with find_unused_parameters=True: the graph walk alone
  one-ddp-find-unused  one DDP around both nets with find_unused_parameters=True, each loss's forward
                       through it (so the reducer prepares from that loss before its backward)
  one-ddp-whole-step   Lightning's shape exactly: one DDP (find_unused_parameters=True) whose forward is
                       the whole step, both backward passes inside it, the reducer prepared from each
                       loss before its backward as Lightning's `prepare_for_backward` does in
                       `manual_backward` (bucket rebuild check included), DDP's own post-forward after
  two-ddp+flag         the plain loop's wrapping, plus what Lightning 2.6's training loop does before every
                       batch with several processes: rank 0 broadcasts a one-element "SIGTERM received"
                       tensor to all ranks, which each reads with `.item()` (`_broadcast_sigterm_tensor`)
  one-ddp-whole-step+flag  Lightning's shape with that broadcast: everything above together

Each repeat runs them all, each in a fresh process group, in A B C ... / ... C B A order. Per run: the median
over steps (warm-up left out) of the slowest process's step time; per variant: the median over repeats,
and its ratio to `two-ddp` from runs paired by repeat (95% t interval, as the report's). Every run must end
with the same weights (exit 1 otherwise): the wrappings differ in cost only. Pure PyTorch: nothing here
imports Lightning.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.nn.parallel.distributed import _find_tensors

from implementations.mnist_gan import spec
from loopbench.analysis.stats import paired_ratio
from loopbench.launch.distributed import free_port, rank_env
from loopbench.measure.env import weights_digest

VARIANTS = (
    "two-ddp",
    "two-ddp-find-unused",
    "one-ddp-find-unused",
    "one-ddp-whole-step",
    "two-ddp+flag",
    "one-ddp-whole-step+flag",
)


class _BothNets(nn.Module):
    """Both nets behind one forward, as a LightningModule puts them behind one DDP."""

    def __init__(self, nets: nn.ModuleDict):
        super().__init__()
        self.nets = nets

    def forward(self, kind: str, *args: torch.Tensor) -> torch.Tensor:
        if kind == "generate":
            return self.nets["generator"](*args)
        loss = spec.discriminator_loss if kind == "d_loss" else spec.generator_loss
        return loss(self.nets["discriminator"], *args)


def _one_step(generate, d_loss, g_loss, nets, opt_d, opt_g, before_backward=lambda loss: None):
    """One batch: D's update, then G's, with toggles as `toggle_optimizer` does them (the plain loop's step)."""

    def step(real: torch.Tensor, z: torch.Tensor) -> None:
        fake = generate(z)
        nets["generator"].requires_grad_(False)
        opt_d.zero_grad(set_to_none=True)
        loss = d_loss(real, fake.detach())
        before_backward(loss)
        loss.backward()
        opt_d.step()
        nets["generator"].requires_grad_(True)
        nets["discriminator"].requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        loss = g_loss(fake)
        before_backward(loss)
        loss.backward()
        opt_g.step()
        nets["discriminator"].requires_grad_(True)

    return step


class _WholeStep(nn.Module):
    """The whole step as one module's forward, as a LightningModule's training_step runs inside its DDP."""

    def __init__(self, nets: nn.ModuleDict, step):
        super().__init__()
        self.nets, self.step = nets, step

    def forward(self, real: torch.Tensor, z: torch.Tensor) -> None:
        self.step(real, z)


def _step(variant: str, nets: nn.ModuleDict, opt_d, opt_g):
    """The step function of one wrapping."""
    if variant.endswith("+flag"):
        step = _step(variant.removesuffix("+flag"), nets, opt_d, opt_g)

        def flagged(real: torch.Tensor, z: torch.Tensor) -> None:
            flag = torch.tensor([0])  # "rank 0 received SIGTERM": never, here
            dist.broadcast(flag, src=0)
            if flag.item():
                raise SystemExit(1)
            step(real, z)

        return flagged
    d, g = nets["discriminator"], nets["generator"]
    if variant == "one-ddp-whole-step":
        ddp: list[DDP] = []

        def prepare(loss: torch.Tensor) -> None:  # Lightning's prepare_for_backward, find_unused_parameters=True
            ddp[0].require_forward_param_sync = True
            ddp[0].reducer._rebuild_buckets()
            ddp[0].reducer.prepare_for_backward(list(_find_tensors(loss)))

        step = _one_step(
            g,
            lambda r, f: spec.discriminator_loss(d, r, f),
            lambda f: spec.generator_loss(d, f),
            nets,
            opt_d,
            opt_g,
            prepare,
        )
        ddp.append(DDP(_WholeStep(nets, step), broadcast_buffers=False, find_unused_parameters=True))
        return ddp[0]
    if variant == "one-ddp-find-unused":
        both = DDP(_BothNets(nets), broadcast_buffers=False, find_unused_parameters=True)
        calls = (lambda z: both("generate", z)), (lambda r, f: both("d_loss", r, f)), (lambda f: both("g_loss", f))
        return _one_step(*calls, nets, opt_d, opt_g)
    unused = variant == "two-ddp-find-unused"
    g_ddp, d_ddp = (DDP(m, broadcast_buffers=False, find_unused_parameters=unused) for m in (g, d))
    calls = g_ddp, (lambda r, f: spec.discriminator_loss(d_ddp, r, f)), (lambda f: spec.generator_loss(d, f))
    return _one_step(*calls, nets, opt_d, opt_g)


def _worker(rank: int, world: int, port: int, variant: str, steps: int, out: str) -> None:
    os.environ.update(rank_env(rank, world, port))
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    cfg = spec.PRESETS["quick"]
    images = spec.synthetic_digits(cfg.train_size, cfg.data_seed).tensors[0][rank::world]
    torch.manual_seed(0)
    nets = spec.build_nets(cfg)
    opt_g, opt_d = spec.build_optimizers(nets, cfg)
    step = _step(variant, nets, opt_d, opt_g)
    noise = spec.noise_generator(rank, torch.device("cpu"))
    times = []
    for i in range(steps):
        start = (i * cfg.batch_size) % (len(images) - cfg.batch_size)
        real = images[start : start + cfg.batch_size]
        t0 = time.perf_counter()
        step(real, spec.sample_noise(len(real), cfg, noise))
        times.append(time.perf_counter() - t0)
    every = [None] * world
    dist.all_gather_object(every, times)
    if rank == 0:
        slowest = [max(t) for t in zip(*every, strict=True)]
        digest = weights_digest(nets.state_dict())  # every wrapping must train the same weights
        Path(out).write_text(json.dumps({"median_s": statistics.median(slowest[cfg.warmup_steps :]), "digest": digest}))
    dist.destroy_process_group()


def measure(processes: int, steps: int, repeats: int) -> dict:
    """{variant: {"step_ms": median over repeats, "runs_ms": [...], "vs_two_ddp": ratio, "low", "high"}, ...}
    and "same_weights": whether every run of every wrapping ended with the same weights on rank 0."""
    runs: dict[str, list[float]] = {v: [] for v in VARIANTS}
    digests = set()
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(repeats):
            for variant in VARIANTS if repeat % 2 == 0 else VARIANTS[::-1]:
                out = Path(tmp) / f"{variant}-{repeat}.json"
                mp.spawn(_worker, args=(processes, free_port(), variant, steps, str(out)), nprocs=processes)
                result = json.loads(out.read_text())
                runs[variant].append(1e3 * result["median_s"])
                digests.add(result["digest"])
                print(f"repeat {repeat + 1}/{repeats} {variant:24s} {runs[variant][-1]:7.2f} ms/step", flush=True)
    answer: dict = {"same_weights": len(digests) == 1}
    for variant, ms in runs.items():
        r = paired_ratio(list(zip(runs["two-ddp"], ms, strict=True)))
        answer[variant] = {"step_ms": statistics.median(ms), "runs_ms": ms, "vs_two_ddp": r.ratio}
        answer[variant] |= {"low": r.low, "high": r.high}
    return answer


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.gan_ddp_wrapping", description=__doc__.splitlines()[0])
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--steps", type=int, default=spec.PRESETS["quick"].steps)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.processes < 2 or args.steps <= spec.PRESETS["quick"].warmup_steps or args.repeats < 1:
        p.error(f"--processes >= 2, --steps > {spec.PRESETS['quick'].warmup_steps} (the warm-up), --repeats >= 1")
    answer = measure(args.processes, args.steps, args.repeats)
    for v in VARIANTS:
        a = answer[v]
        interval = f"[{a['low']:.2f}, {a['high']:.2f}]" if a["low"] is not None else "(not resolved: < 3 repeats)"
        print(f"{v:24s} {a['step_ms']:7.2f} ms/step  {a['vs_two_ddp']:.2f}x {interval} the plain loop's wrapping")
    print("every wrapping trained the same weights" if answer["same_weights"] else "the wrappings' weights DIFFER")
    if args.json:
        args.json.write_text(json.dumps({"processes": args.processes, "steps": args.steps} | answer))
    return 0 if answer["same_weights"] else 1


if __name__ == "__main__":
    sys.exit(main())
