"""A user's LightningModule trained by a plain PyTorch loop built from its own hooks. Read it beside
lightning_loop.py: the Trainer's part is written out here, once, as a PyTorch user would write it.

The calls come in the Trainer's order, since that order decides what the random generators draw. Set-up: the
data module's and the module's prepare_data and setup (the callbacks' setup between), configure_model,
configure_optimizers, on_fit_start, the training loader and its first iterator, the validation loader,
on_train_start. Per epoch: on_train_epoch_start, then per batch the transfer hooks, on_train_batch_start, the
training step (automatic optimization: inside the optimizer's step, through the closure that also zeroes the
gradients, runs backward, unscales and clips), the schedulers due, on_train_batch_end, and validation where the
job's interval says; then on_train_epoch_end and the plateau schedulers. Callbacks' hooks run before the module's,
each given `trainer`, the plain stand-in of plain.py. The job ends at its max_steps or max_epochs, or where a
callback set should_stop.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch

from implementations.module import callbacks as cbs
from implementations.module import plain, port, spec
from implementations.module.optimizers import configure
from loopbench.core.types import RunResult, UsageError
from loopbench.harness.run import Run


def train(cfg: spec.Config, run: Run) -> RunResult:
    if cfg.plain:  # a team's own port stands here instead (port.py)
        return port.train(cfg, run)
    torch.manual_seed(run.seed)  # the module's initial weights come from the global RNG
    job = spec.load(cfg)
    reason = spec.unmirrored(job, cfg, run.precision.name)
    if reason:
        raise UsageError(reason)
    first = spec.FirstOutput()
    loop = Loop(job, cfg, run)
    loop.callbacks = cbs.plain_callbacks(
        spec.with_module_callbacks(job), job.lightning, cbs.recorder(object, run, first, loop.logged, job.stop_after)
    )
    with settings_applied(job.settings):
        loop.fit()
    first.close()

    if cfg.check:  # the verb gives every side a logger where the job reads one
        run.data.info["reads_logger"] = loop.trainer.logger_read
    run.data.info["job"] = spec.described(job)
    module, logged = job.module, loop.logged.floats() | plain.calls(loop.trainer.__dict__["_logger"])
    result = run.finish(module, metrics=lambda: spec.evaluate(module, run.data, run.device), logged=logged)
    spec.finite(cfg.factory, result.losses)
    return result


class Loop:
    """The Trainer's fit, written out: its state is what a PyTorch user keeps in local variables."""

    def __init__(self, job: spec.Job, cfg: spec.Config, run: Run):
        self.job, self.cfg, self.run, self.s = job, cfg, run, job.settings
        self.module = job.module
        self.logged = plain.Logged(run.device)
        self.trainer = plain.Trainer(self.module, run.device, self.s, plain.Logger(run.tmpdir) if cfg.logger else None)
        self.trainer.callback_metrics = self.logged.callback_metrics  # what callbacks and schedulers monitor
        self.trainer.estimate = self._setup_data  # estimated_stepping_batches, read before the loader: as the Trainer
        self.callbacks: list[Any] = []
        self.scaler = run.grad_scaler()  # float16 only; a no-op otherwise
        self.total_batches = 0  # across epochs: validation's count where check_val_every_n_epoch is None
        self.val_loader: Any = None
        self.datamodule: Any = None
        self.first_iterator: Iterator | None = None

    def hook(self, name: str, *args: Any, module: bool = True, which: str = "all", **kwargs: Any) -> Any:
        """The callbacks' `name` (`which`: all, monitoring or others), then the module's, as the Trainer calls them."""
        with self.running(name):
            for cb in self.callbacks:
                if which != "all" and cbs.monitoring(cb, self.job.lightning) != (which == "monitoring"):
                    continue
                if callable(getattr(cb, name, None)):
                    getattr(cb, name)(self.trainer, self.module, *args, **kwargs)
            return getattr(self.module, name)(*args, **kwargs) if module else None

    def call(self, owner: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        """One of the module's (or the data module's) own methods."""
        with self.running(name):
            return getattr(owner, name)(*args, **kwargs)

    @contextlib.contextmanager
    def running(self, name: str) -> Iterator[None]:
        """The hook being run, for self.log (which names its values by it) and for a refusal; the one before it
        again after it, as the Trainer keeps its module's _current_fx_name."""
        before = self.trainer.hook, self.logged.fx
        self.trainer.hook = self.logged.fx = name
        try:
            yield
        finally:
            self.trainer.hook, self.logged.fx = before

    # -- set-up, in the Trainer's order ----------------------------------------------------------------------------

    def fit(self) -> None:
        module, trainer, job, run = self.module, self.trainer, self.job, self.run
        datamodule = job.data if isinstance(job.data, job.lightning.LightningDataModule) else None
        trainer.datamodule = self.datamodule = datamodule
        serve(module, self)
        module.trainer = trainer
        for owner in filter(None, (datamodule, module)):
            self.call(owner, "prepare_data")
        if datamodule is not None:
            self.call(datamodule, "setup", stage="fit")
        self.hook("setup", stage="fit")
        self.call(module, "configure_model")
        module.to(run.device)
        self.opt = configure(self.call(module, "configure_optimizers"), self.cfg.factory)
        trainer.optimizers, trainer.lr_scheduler_configs = self.opt.optimizers, self.opt.schedulers
        self._count_manual_steps()
        self.hook("on_fit_start")
        loader, n = self._setup_data()
        self.val_check_batch = spec.val_check_batch(self.s["val_check_interval"], n)
        if self._validation_epoch(0):
            self._val_setup(datamodule)
        trainer.training = True
        self.hook("on_train_start")
        while not self._fit_done():
            self._epoch(loader, self.first_iterator if trainer.current_epoch == 0 else None, n)
        self.hook("on_train_end")
        self.hook("on_fit_end")
        self.hook("teardown", stage="fit")
        if datamodule is not None:
            self.call(datamodule, "teardown", stage="fit")

    def _setup_data(self) -> tuple[Any, int]:
        """The training loader and the first epoch's iterator, made where the Trainer makes them (after on_fit_start,
        or where estimated_stepping_batches is first read, which makes the Trainer make them then); once."""
        if self.trainer.train_dataloader is None:
            given = self.job.data if isinstance(self.job.data, torch.utils.data.DataLoader) else None
            loader = given if given is not None else self.call(self.datamodule or self.module, "train_dataloader")
            self.trainer.train_dataloader = loader
            try:
                length = len(loader)
            except TypeError:  # an IterableDataset without __len__: epochs that end where the data does
                raise plain.Unmirrored("its training loader has no length (an IterableDataset): the plain loop "
                                       "counts each epoch's batches") from None  # fmt: skip
            n = self.trainer.num_training_batches = spec.num_batches(length, self.s["limit_train_batches"])
            self.trainer.estimated_stepping_batches = self._stepping_batches(n)
            self.first_iterator = iter(loader)  # before the validation loader, as the Trainer makes it
        return self.trainer.train_dataloader, self.trainer.num_training_batches

    def _stepping_batches(self, n: int) -> int | float:
        """Trainer.estimated_stepping_batches: the optimizer steps the job takes at most."""
        epochs, max_steps = self.s["max_epochs"], self.s["max_steps"]
        total = math.ceil(n / self.s["accumulate_grad_batches"]) * epochs if epochs != -1 else math.inf
        return min(total, max_steps) if max_steps != -1 else total

    def _count_manual_steps(self) -> None:
        """Under manual optimization each optimizer's step counts in global_step, as the Trainer counts, and is
        preceded by on_before_optimizer_step, where the Trainer calls it."""
        if self.module.automatic_optimization:
            return
        for optimizer in self.opt.optimizers:
            optimizer.register_step_pre_hook(lambda o, args, kwargs: self.hook("on_before_optimizer_step", o))
            optimizer.register_step_post_hook(lambda o, args, kwargs: self._stepped())

    def _stepped(self) -> None:
        self.trainer.global_step += 1

    # -- the epochs ------------------------------------------------------------------------------------------------

    def _fit_done(self) -> bool:
        t, max_steps, max_epochs = self.trainer, self.s["max_steps"], self.s["max_epochs"]
        steps_done = max_steps != -1 and t.global_step >= max_steps
        epochs_done = max_epochs != -1 and t.current_epoch >= max_epochs
        return steps_done or epochs_done or t.should_stop or not t.num_training_batches

    def _epoch(self, loader: Any, iterator: Iterator | None, n: int) -> None:
        t, epoch, automatic = self.trainer, self.trainer.current_epoch, self.module.automatic_optimization
        sampler = getattr(loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        self.hook("on_train_epoch_start")
        iterator = iter(loader) if iterator is None else iterator  # not `or`: a loader iterator has a length
        batch_idx, completed = -1, False
        while batch_idx + 1 < n and not t.should_stop:
            if self.s["max_steps"] != -1 and t.global_step >= self.s["max_steps"]:
                break
            batch_idx += 1
            last = batch_idx + 1 == n
            completed = t.is_last_batch = last
            if self._batch(next(iterator), batch_idx, last):  # on_train_batch_start returned -1: the epoch ends
                completed = True
                break
            if self._validates(batch_idx):
                self._validate(batch_idx, last)
            if automatic and not self._accumulating(batch_idx, last):
                self._schedulers("step", batch_idx + 1, plateau=True)
            self.total_batches += 1
        self.logged.stage_ends("train")
        self.hook("on_train_epoch_end", which="others")
        self.logged.stage_ends("train")  # what on_train_epoch_end logged, for the callbacks that monitor it
        self.hook("on_train_epoch_end", module=False, which="monitoring")
        if completed and automatic:
            self._schedulers("epoch", epoch + 1, plateau=True)
        t.current_epoch += 1

    def _schedulers(self, interval: str, index: int, plateau: bool = False) -> None:
        def step(scheduler: Any, metric: Any) -> None:
            self.call(self.module, "lr_scheduler_step", scheduler, metric)

        self.opt.step_schedulers(interval, index, step, plateau, self.logged.callback_metrics)

    def _accumulating(self, batch_idx: int, last: bool) -> bool:
        return (batch_idx + 1) % self.s["accumulate_grad_batches"] != 0 and not last

    def _transferred(self, batch: Any) -> Any:
        batch = self.call(self.module, "on_before_batch_transfer", batch, 0)
        batch = self.call(self.module, "transfer_batch_to_device", batch, self.run.device, 0)
        return self.call(self.module, "on_after_batch_transfer", batch, 0)

    def _batch(self, batch: Any, batch_idx: int, last: bool) -> bool:
        """One batch; True where on_train_batch_start returned -1 (the Trainer then ends the epoch)."""
        module, automatic = self.module, self.module.automatic_optimization
        batch = self.logged.batch = self._transferred(batch)
        skip = self.hook("on_train_batch_start", batch, batch_idx) == -1
        if not skip:
            args = (batch, batch_idx) if spec.takes_batch_idx(module.training_step) else (batch,)
            if automatic:
                outputs = self._automatic(args, batch_idx, last)
            else:
                with self.running("training_step"), self.run.autocast():
                    outputs = spec.manual_outputs(module.training_step(*args), self.cfg.factory)
        if automatic and (skip or not self._accumulating(batch_idx, last)):
            self._schedulers("step", batch_idx + 1)
        if automatic and (skip or last):
            self._schedulers("epoch", self.trainer.current_epoch + 1)
        if not skip:
            self.hook("on_train_batch_end", outputs, batch, batch_idx)
        return skip

    def _automatic(self, args: tuple, batch_idx: int, last: bool) -> dict[str, Any]:
        """The Trainer's automatic optimization: the training step, zero_grad at an accumulation's first batch, and
        backward; at its last batch inside the optimizer's step (through the module's optimizer_step), with the
        gradients then unscaled and clipped; before it, the closure alone."""
        module, optimizer, epoch, accumulate = self.module, self.opt.optimizers[0], self.trainer.current_epoch, \
            self.s["accumulate_grad_batches"]  # fmt: skip
        outputs: dict[str, Any] = {}

        def closure() -> torch.Tensor | None:
            with self.running("training_step"), self.run.autocast():
                loss, extra = spec.automatic_outputs(module.training_step(*args), self.cfg.factory)
            loss = None if loss is None else loss / accumulate
            outputs.update({} if loss is None else {"loss": loss.detach().clone(), **extra})
            if batch_idx % accumulate == 0:  # the first batch of an accumulation
                self.hook("on_before_zero_grad", optimizer)
                self.call(module, "optimizer_zero_grad", epoch, batch_idx, optimizer)
            if loss is not None:
                scaled = self.scaler.scale(loss)
                self.hook("on_before_backward", scaled)
                self.call(module, "backward", scaled)
                self.hook("on_after_backward")
            return loss

        def closure_then_clip() -> torch.Tensor | None:
            loss = closure()
            self.scaler.unscale_(optimizer)  # where Lightning unscales: before the hooks and the clipping
            self.hook("on_before_optimizer_step", optimizer)
            clip = (self.s["gradient_clip_val"], self.s["gradient_clip_algorithm"])
            self.call(module, "configure_gradient_clipping", optimizer, *clip)
            return loss

        if self._accumulating(batch_idx, last):
            closure()
            return outputs
        if self.scaler.is_enabled():  # float16: the closure, then the scaler's step (optimizer_step overrides: refused)
            if closure_then_clip() is not None:
                self.scaler.step(optimizer)
                self.scaler.update()
        else:
            self.call(module, "optimizer_step", epoch, batch_idx, optimizer, closure_then_clip)
        self.trainer.global_step += 1
        return outputs

    # -- validation ------------------------------------------------------------------------------------------------

    def _validation_epoch(self, epoch: int) -> bool:
        every = self.s["check_val_every_n_epoch"]
        validates = self.s["limit_val_batches"] != 0
        return (
            validates
            and spec.overrides(self.module, "validation_step", self.job.lightning)
            and (every is None or (epoch + 1) % every == 0)
        )

    def _val_setup(self, datamodule: Any) -> None:
        """The validation loader, from where the Trainer takes it: the job's, the data module's or the module's."""
        lightning, loader = self.job.lightning, self.job.val_data
        if loader is None and datamodule is not None:
            if spec.overrides(datamodule, "val_dataloader", lightning, lightning.LightningDataModule):
                loader = self.call(datamodule, "val_dataloader")
        elif loader is None and spec.overrides(self.module, "val_dataloader", lightning):
            loader = self.call(self.module, "val_dataloader")
        if isinstance(loader, (list, tuple)):
            raise UsageError(f"{self.cfg.factory}: several validation loaders; the plain loop validates on one")
        self.trainer.val_dataloaders = loader
        self.val_batches = spec.num_batches(len(loader), self.s["limit_val_batches"]) if loader is not None else 0
        self.trainer.num_val_batches = [self.val_batches]
        self.val_loader = loader if self.val_batches else False  # False: looked for, none

    def _validates(self, batch_idx: int) -> bool:
        """Whether validation runs after this batch, by the Trainer's rule for a loader with a length."""
        if not self._validation_epoch(self.trainer.current_epoch):
            return False
        if self.val_loader is None:
            self._val_setup(self.datamodule)
        if not self.val_loader:
            return False
        if self.trainer.should_stop:
            return True
        every = self.s["check_val_every_n_epoch"]
        index = batch_idx if every is not None else self.total_batches
        return (index + 1) % self.val_check_batch == 0

    def _validate(self, batch_idx: int, last: bool) -> None:
        module, t = self.module, self.trainer
        if not self._accumulating(batch_idx, last):
            self.call(module, "on_validation_model_zero_grad")
        with torch.inference_mode() if self.s["inference_mode"] else torch.no_grad():
            sampler = getattr(self.val_loader, "sampler", None)
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(t.current_epoch)
            iterator = iter(self.val_loader)
            modes = {m: m.training for m in module.modules()}
            self.call(module, "on_validation_model_eval")
            t.training, t.validating, self.logged.stage = False, True, "validate"
            self.hook("on_validation_start")
            self.hook("on_validation_epoch_start")
            with_idx = spec.takes_batch_idx(module.validation_step)
            for i in range(self.val_batches):
                batch = self.logged.batch = self._transferred(next(iterator))
                self.hook("on_validation_batch_start", batch, i)
                with self.running("validation_step"), self.run.autocast():
                    output = module.validation_step(*((batch, i) if with_idx else (batch,)))
                self.hook("on_validation_batch_end", output, batch, i)
            self.hook("on_validation_epoch_end")
            self.logged.stage_ends("validate")
            self.hook("on_validation_end")
            if spec.overrides(module, "on_validation_model_train", self.job.lightning):
                self.call(module, "on_validation_model_train")
            else:  # the Trainer puts every submodule back in the mode it had
                for m, training in modes.items():
                    m.training = training
            t.training, t.validating, self.logged.stage = True, False, "train"


def serve(module: Any, loop: Loop) -> None:
    """What the module asks of the Trainer, served by plain objects on the module itself: self.log, the optimizers,
    the schedulers, manual_backward (the backward hooks around the module's backward), clip_gradients."""
    trainer, s = loop.trainer, loop.s
    module.log, module.log_dict = loop.logged.log, loop.logged.log_dict

    def optimizers(use_pl_optimizer: bool = True) -> Any:
        return trainer.optimizers[0] if len(trainer.optimizers) == 1 else trainer.optimizers

    def lr_schedulers() -> Any:
        found = [c.scheduler for c in trainer.lr_scheduler_configs]
        return None if not found else found[0] if len(found) == 1 else found

    def manual_backward(loss: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        loop.hook("on_before_backward", loss)
        loop.call(module, "backward", loss, *args, **kwargs)
        loop.hook("on_after_backward")

    def clip_gradients(optimizer: Any, gradient_clip_val: float | None = None,
                       gradient_clip_algorithm: str | None = None) -> None:  # fmt: skip
        value = gradient_clip_val if gradient_clip_val is not None else s["gradient_clip_val"]
        if not value:
            return
        params = [p for group in optimizer.param_groups for p in group["params"]]  # the optimizer's, as Lightning's
        if (gradient_clip_algorithm or s["gradient_clip_algorithm"]) == "value":
            torch.nn.utils.clip_grad_value_(params, value)
        else:
            torch.nn.utils.clip_grad_norm_(params, value)

    module.optimizers, module.lr_schedulers = optimizers, lr_schedulers
    module.manual_backward, module.clip_gradients = manual_backward, clip_gradients


@contextlib.contextmanager
def settings_applied(s: dict[str, Any]) -> Iterator[None]:
    """Trainer(deterministic=..., benchmark=...) as the job names them, for this run only."""
    before = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    if s["deterministic"] is not None:
        torch.use_deterministic_algorithms(bool(s["deterministic"]))
    if s["benchmark"] is not None:
        torch.backends.cudnn.benchmark = bool(s["benchmark"])
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.benchmark = before[1]
