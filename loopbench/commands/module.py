"""`loopbench module PKG.MOD:FACTORY`: a user's own LightningModule through the suite, as a task of its own.

Before anything runs, the module is checked here in one short plain run (two steps): a factory that does not
import or returns something else, a module without training data, a training step that returns no loss, hooks
the plain loop cannot mirror, and a step that needs the Trainer (`self.trainer`) are each refused in one line.
Then the suite runs the task `module` (implementations/module) with the factory as its setting.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from loopbench.commands.cells import cmd_suite
from loopbench.core.quiet import quiet_lightning
from loopbench.core.store import PUBLISHED_RESULTS_NAME
from loopbench.core.types import RunConfig, UsageError
from loopbench.launch.cell import run_cell
from loopbench.report import write_report
from loopbench.studies.suite import machine_folder

NEEDS_TRAINER = "is not attached to a `Trainer`"  # LightningModule.trainer's message, where there is none


def check_module(factory: str, overrides: dict, precision: str) -> None:
    """Refuse, in one line, a module the plain loop cannot train as the Trainer would."""
    config = RunConfig(task="module", impl="pytorch", precision=precision, steps=2, warmup_steps=0,
                       overrides=overrides | {"factory": factory}, split=False)  # fmt: skip
    try:
        result = run_cell(config)
    except UsageError:
        raise
    except RuntimeError as e:
        if NEEDS_TRAINER in str(e):
            raise UsageError(f"{factory}: its training step needs the Trainer (self.trainer), which a plain loop "
                             "does not have") from None  # fmt: skip
        raise UsageError(f"{factory}: a plain run of two steps failed: {type(e).__name__}: {_first_line(e)}") from None
    except Exception as e:  # the user's own code: whatever it raises is reported, not shown as a traceback
        raise UsageError(f"{factory}: a plain run of two steps failed: {type(e).__name__}: {_first_line(e)}") from None
    if not result.ok:
        raise UsageError(f"{factory}: a plain run of two steps ended {result.status}: {result.message}")


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [""])[0]


def refuse_meaningless(args: argparse.Namespace) -> None:
    """The suite's options that mean nothing for a user's module, refused in one line rather than run regardless."""
    if args.processes != [1]:
        raise UsageError("--processes: a module runs in one process (the plain loop built from its hooks has no "
                         "data parallel); --processes is for the suite's tasks")  # fmt: skip
    if args.data != "synthetic" or args.data_dir is not None:
        raise UsageError("--data/--data-dir: a module brings its own data (its factory or its train_dataloader)")
    if args.pretrained:
        raise UsageError("--pretrained: EfficientNet's ImageNet weights; a module's factory builds its own weights")


def cmd_module(args: argparse.Namespace) -> int:
    refuse_meaningless(args)
    if os.getcwd() not in sys.path:  # PKG.MOD is found from the current folder, as the run processes find it
        sys.path.insert(0, os.getcwd())
    quiet_lightning()
    settings = dict(args.set)
    if "factory" in settings:
        raise UsageError("name the factory as the verb's argument, not with --set factory=")
    for precision in args.precisions or ["32-true"]:
        check_module(args.factory, settings, precision)
    args.tasks = ["module"]
    args.set = [*args.set, ("factory", args.factory)]
    name = re.sub(r"[^\w.-]", "_", args.factory.replace(":", "-"))

    def publish(results: list, devices: tuple) -> Path:
        return write_report(
            results, machine_folder(Path("reports"), devices) / "own-module" / name, PUBLISHED_RESULTS_NAME
        )

    return cmd_suite(args, publish)
