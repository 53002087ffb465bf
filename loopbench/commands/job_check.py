"""The check of a user's job before anything runs, on both sides, in one epoch of two training and two validation
batches: the settings its runs need beyond the user's (a recording logger where the job reads self.logger or keeps
a LearningRateMonitor), the reason the plain loop cannot mirror it, or a refusal in Lightning's own words where the
Trainer cannot train it. `loopbench module` starts with it; `loopbench parity --task module` takes the logger."""

from __future__ import annotations

from dataclasses import dataclass

from loopbench.core.types import RunConfig, RunResult, UsageError
from loopbench.launch.cell import run_cell


def check_module(factory: str, overrides: dict, precision: str) -> tuple[dict, RunResult]:
    """The settings the job's runs need beyond the user's (a recording logger; the reason the plain loop cannot
    run it), found by running both sides briefly, and the run that found them; UsageError where the Trainer cannot
    train the job."""
    settings = overrides | {"factory": factory, "check": True}

    def run(impl: str, more: dict) -> RunResult | Failed:
        config = RunConfig(task="module", impl=impl, precision=precision, warmup_steps=0, split=False,
                           overrides=settings | more)  # fmt: skip
        return _run(config)

    plain = run("pytorch", {"logger": True})
    found = {"logger": True} if isinstance(plain, RunResult) and plain.data.get("reads_logger") else {}
    trainer = run("lightning", found)
    if isinstance(trainer, Failed) and not trainer.refused and not found:  # it reads self.logger after all
        again = run("lightning", {"logger": True})
        trainer, found = (again, {"logger": True}) if isinstance(again, RunResult) else (trainer, found)
    if isinstance(trainer, Failed):
        raise UsageError(trainer.why if trainer.refused else f"{factory}: the Trainer cannot train it: {trainer.why}")
    if isinstance(plain, Failed):
        return found | {"unmirrored": plain.why}, trainer
    return found, plain


@dataclass(frozen=True)
class Failed:
    why: str  # one line
    refused: bool  # the job refused as bad input (its factory, its settings, a loss that is not finite), or not


def _run(config: RunConfig) -> RunResult | Failed:
    """The run's result, or why it failed."""
    try:
        result = run_cell(config)
    except UsageError as e:
        return Failed(str(e), refused=True)
    except Exception as e:  # the user's code, or a framework's refusal of it: reported, not shown as a traceback
        return Failed(f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}", refused=False)
    return result if result.ok else Failed(f"{result.status}: {result.message}", refused=False)
