"""The contract between the harness and a task's two loops: `Run`.

Both loops of a task receive a `Run`. It carries what the cell asked for (device, precision, seed, the
built data) and records what happened (per-step losses and times, memory), so that measurement lives
here and not in the loops. loopbench.launch.cell builds one and calls the loop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from loopbench.core.precision import precision_via, resolve_precision
from loopbench.core.trainers import TRAINERS, TrainerSetup
from loopbench.core.types import RunConfig, RunResult
from loopbench.harness import frameworks
from loopbench.harness.compiling import Compiler
from loopbench.harness.placement import best_digest, counts_device_work, rank_device, splits
from loopbench.measure import clock, memory
from loopbench.measure.collectives import Collectives
from loopbench.measure.device_work import OneStep, peak_flops
from loopbench.measure.env import environment, weights_digest
from loopbench.measure.split import Split


class Run:
    """What a training loop gets from the harness, and hands its measurements to."""

    def __init__(self, config: RunConfig, cfg: Any, data: Any):
        self.config = config
        self.cfg = cfg
        self.data = data
        self.seed = config.seed
        self.world = config.world  # data parallel: this is one of `world` processes, rank `rank`
        self.rank = int(os.environ.get("RANK", 0))  # the launcher's environment, as torchrun sets it
        self.device = rank_device(config)
        self.precision = resolve_precision(config.precision)
        self.trainer_setup = TRAINERS.get(config.impl, TrainerSetup())
        self.log_every_step = self.trainer_setup.log_every_step  # idiomatic `self.log`, as users write it
        self._losses: dict[str, list[torch.Tensor]] = defaultdict(list)
        self._tmpdir: str | None = None
        self._peaks: dict[str, Any] = {}
        self.forward_dtype: str | None = None  # what the first step's forward really produced
        self.val_metrics: list[dict[str, float]] = []  # per validation (epoch), as the implementation computed them
        self.between: dict[str, list[float]] = defaultdict(list)  # seconds spent between steps, per kind and time
        self.best: tuple[int, str] | None = None  # (epoch, file) of the best weights saved so far
        self._job_end = 0.0  # the end of the latest step or between-steps work
        self.rss_at_start = memory.rss_bytes()
        self.peak_rss_scope = "training" if memory.reset_peak_rss() else "process"
        memory.reset_cuda_peak(self.device)
        self.collectives = Collectives(self.device) if config.collectives else None  # over the timed window
        self.clock = clock.StepClock(
            self.device, cfg.warmup_steps, self.collectives.start if self.collectives else None
        )
        self.split = Split() if splits(config) else None  # the model's own work in each step, timed in place
        self.batch_size: int = cfg.batch_size  # samples per batch; a job whose loader decides it says so here
        self.compiler = Compiler(config.compile, config.compile_backend, config.compile_cache)  # off: nothing
        self._one_step = OneStep(self.device) if counts_device_work(config, cfg) else None  # the 2nd warm-up step
        self.device_work: dict[str, Any] = {}
        self.startup_s: float | None = None  # from the job's start to its first batch (batch_starts)
        self.ended = False  # the job ended its training itself (training_ends), after however many steps it had
        self._paused_at = 0.0

    # -- what the loops use ---------------------------------------------------------------------

    def autocast(self) -> contextlib.AbstractContextManager:
        """The forward + loss context of PyTorch's AMP recipe (autocast's default weight-cast cache)."""
        if self.precision.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=getattr(torch, self.precision.autocast_dtype))

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A GradScaler that is a no-op unless the precision is float16."""
        return torch.amp.GradScaler(self.device.type, enabled=self.precision.grad_scaler)

    def trainer_kwargs(
        self, monitor: tuple[str, str] | None = None, find_unused_parameters: bool = False,
        package: str = "pytorch_lightning",
    ) -> dict[str, Any]:  # fmt: skip
        """The Trainer's arguments for this cell (loopbench/harness/frameworks.py)."""
        return frameworks.trainer_kwargs(self, monitor, find_unused_parameters, package)

    def fabric_kwargs(self, **ddp: Any) -> dict[str, Any]:
        """Fabric's arguments for this cell (loopbench/harness/frameworks.py)."""
        return frameworks.fabric_kwargs(self, **ddp)

    @contextlib.contextmanager
    def between_steps(self, kind: str) -> Iterator[None]:
        """Time work done between two training steps (validation, a checkpoint write): recorded under
        `kind`, and kept out of the step times and the training window."""
        self.pause()
        try:
            yield
        finally:
            self.resume(kind)

    def pause(self) -> None:
        """Work that is not a training step begins (`resume(kind)` ends it): as `between_steps`, where a hook
        starts it and another ends it (a Trainer's validation, seen from a callback)."""
        clock.synchronize(self.device)
        self._paused_at = time.perf_counter()
        if self.split:
            self.split.paused = True

    def resume(self, kind: str) -> None:
        if self.split:
            self.split.paused = False
        clock.synchronize(self.device)
        elapsed = time.perf_counter() - self._paused_at
        self.between[kind].append(elapsed)
        self.clock.skip(elapsed)
        self._job_end = time.perf_counter()

    # -- a job whose own settings decide its length (a user's module): where its time goes ----------------

    def batch_starts(self, first_of_epoch: bool) -> None:
        """Call as a training batch starts. The first ends the start-up, kept apart from the first step; the first
        of a later epoch ends the epoch before's end (its hooks, schedulers, checkpoints), kept as `epoch end`."""
        if self.startup_s is None:
            clock.synchronize(self.device)
            self.startup_s = time.perf_counter() - self.clock.start
            self.clock.skip(self.startup_s if self.cfg.warmup_steps == 0 else 0.0)
        elif first_of_epoch:
            self._epoch_end()

    def training_ends(self) -> None:
        """Call after the last step's epoch has ended: what followed the last step is `epoch end`, and the
        training window closes (the job decided how many steps it had)."""
        if self.clock.window_end is None:
            self._epoch_end()
            self._close_window()
        self.ended = True
        self._job_end = time.perf_counter()

    def _epoch_end(self) -> None:
        clock.synchronize(self.device)
        elapsed = self.clock.since_last_step()
        self.between["epoch end"].append(elapsed)
        self.clock.skip(elapsed)

    def record_validation(self, values: dict[str, float]) -> None:
        """One validation's metrics, in the order of the epochs."""
        self.val_metrics.append(dict(values))

    def record_best(self, path: str) -> None:
        """The best weights so far were just saved to `path`, after the latest validation."""
        self.best = (len(self.val_metrics), str(path))

    def step(self, output: torch.Tensor, /, **losses: torch.Tensor) -> None:
        """Call once per batch, after the optimizer step(s), with the model's forward output and the losses.

        The first output's dtype is recorded: the proof of which precision really ran. Losses stay on
        the device until the end (no per-step sync).
        """
        if self.forward_dtype is None:
            self.forward_dtype = str(output.dtype).removeprefix("torch.")
        for name, loss in losses.items():
            self._losses[name].append(loss.detach())
        if self.config.slowdown_us:  # a known slowdown, on the host, inside the step's time
            until = time.perf_counter() + self.config.slowdown_us * 1e-6
            while time.perf_counter() < until:
                pass
        if self.split:
            self.split.tick()
        self.clock.tick()
        if self._one_step and self.clock.steps in (1, 2):  # FLOPs and kernel time of the second (warm-up) step
            self._one_step.start() if self.clock.steps == 1 else self._record_device_work()
        self._job_end = time.perf_counter()
        if self.clock.steps == self.cfg.steps:  # the last step: close the window before evaluation
            self._close_window()

    def _record_device_work(self) -> None:
        self.device_work = self._one_step.stop()
        if self.device.type != "cuda":
            return
        peak = peak_flops(torch.cuda.get_device_name(self.device), self.precision.name,
                          torch.backends.cuda.matmul.allow_tf32)  # fmt: skip
        self.device_work |= {"peak_format": peak[0], "peak_flops": peak[1]} if peak else {}

    def _close_window(self) -> None:
        if self.collectives:
            self.collectives.stop(self.clock.steps - min(self.cfg.warmup_steps, self.clock.steps))
        self.clock.stop()
        self._peaks = {**memory.cuda_peaks(self.device), "peak_rss_bytes": memory.peak_rss_bytes()}

    def compiled(self, model: nn.Module, trainer: bool = False) -> nn.Module:
        """`model` compiled where the cell asks for it, as its framework documents (`trainer`: the LightningModule
        handed to `fit`); the model itself otherwise."""
        return self.compiler.compiled(model, trainer)

    def watch_forward(self, model: nn.Module) -> None:
        """Take the first forward's dtype from `model` itself, for a wrapper that converts what the forward returns
        (Fabric hands a mixed-precision forward's output back in float32). Not needed in full precision, where
        the hook would be dynamo's one graph break under torch.compile."""
        if self.precision.autocast_dtype is None:
            return

        def first(module: nn.Module, args: Any, output: torch.Tensor) -> None:
            self.forward_dtype = str(output.dtype).removeprefix("torch.")
            handle.remove()

        handle = model.register_forward_hook(first)

    @property
    def steps_only(self) -> bool:
        """A run that reports its steps and nothing after them: a segment of a round (timed only), an
        instruction count, or a cell whose steps are limited (one step says nothing about held-out data). It
        skips the held-out evaluation (EfficientNet's: seconds, more than its steps)."""
        return self.config.slot > 0 or self.config.clock == "instructions" or not self.config.evaluate

    def finish(
        self,
        model: nn.Module,
        metrics: Callable[[], dict[str, float]],
        artifacts: dict | None = None,
        logged: dict[str, list[float]] | None = None,
        losses: dict[str, list[float]] | None = None,
    ) -> RunResult:
        """The result of the run; `model` holds every trained weight (a ModuleDict for several nets), `metrics`
        evaluates it on held-out data (called unless the run is steps-only)."""
        stopped_early = getattr(self.cfg, "patience", 0) and self.clock.steps < self.cfg.steps and self.val_metrics
        if self.clock.steps != self.cfg.steps and not stopped_early and not self.ended:
            raise RuntimeError(f"the loop ran {self.clock.steps} steps, {self.cfg.steps} were asked for")
        if stopped_early:
            self._close_window()
        if self.forward_dtype != self.precision.forward_dtype:  # never a different computation under a label
            raise RuntimeError(
                f"labelled {self.precision.name}, but the forward produced {self.forward_dtype}, "
                f"not {self.precision.forward_dtype}"
            )
        weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        return RunResult(
            config=self.config.to_dict(),
            task_config=dataclasses.asdict(self.cfg),
            data=dict(self.data.info),
            losses=losses
            if losses is not None
            else {k: torch.stack(v).float().cpu().tolist() for k, v in self._losses.items()},
            batch_size=self.batch_size,
            **self.clock.summary(self.batch_size),
            **self.split_summary(),
            **self._peaks,
            rss_at_start_bytes=self.rss_at_start,
            peak_rss_scope=self.peak_rss_scope,
            forward_dtype=self.forward_dtype,
            precision_via=precision_via(self.config.impl, self.config.device, self.precision.name),
            metrics={} if self.steps_only else {k: float(v) for k, v in metrics().items()},
            weights_digest=weights_digest(weights),
            steps_run=self.clock.steps,
            val_metrics=self.val_metrics,
            between_steps_s=dict(self.between),
            best_epoch=self.best[0] if self.best else None,
            best_weights_digest=best_digest(self.best[1], list(weights)) if self.best and self.rank == 0 else None,
            job_s=self._job_end - self.clock.start,
            startup_s=self.startup_s,
            logged=logged or {},
            artifacts=artifacts or {},
            compiled=self.compiler.summary(),
            device_work=self.device_work,
            collectives=self.collectives.summary() if self.collectives else {},
            env=environment(self.device),
            weights=weights,
        )

    def split_summary(self) -> dict[str, Any]:
        """The in-place split's per-step work, and the median over the timed steps of what is left of a step."""
        if not self.split:
            return {}
        steps = self.clock.step_times()
        rest = [s - w for s, w in zip(steps, self.split.work_times_s, strict=True)][self.cfg.warmup_steps :]
        return {
            "work_times_s": self.split.work_times_s,
            "rest_time_median_s": statistics.median(rest) if rest else None,
        }

    # -- housekeeping ---------------------------------------------------------------------------

    @property
    def tmpdir(self) -> str:
        if self._tmpdir is None:
            self._tmpdir = tempfile.mkdtemp(prefix="loopbench-")
        return self._tmpdir

    def cleanup(self) -> None:
        self.compiler.close()
        if self.split:
            self.split.close()  # global hooks: the next run in this process installs its own
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
