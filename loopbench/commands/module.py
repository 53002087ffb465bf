"""`loopbench module PKG.MOD:FACTORY`: a user's own LightningModule through the suite, as a task of its own.

Before anything runs, the job is checked here, on both sides, in one epoch of two training batches and two
validation batches: the plain loop built from its hooks, then the lean Trainer. A job the Trainer itself cannot
train (a Lightning 1.x hook, a setting it refuses) is refused in one line with Lightning's own reason; so are a
factory that does not import or returns something else, a job without training data, and a loss that is not
finite. A job the plain loop cannot mirror (a callback that changes the weights through the Trainer's loop, a
Trainer attribute it does not keep) still gets an answer: the Trainers run alone, and the report says `parity:
not checked` with the reason. Where the job reads self.logger, every side logs through a recording logger.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from loopbench.commands.cells import cmd_suite
from loopbench.commands.job_check import check_module
from loopbench.core.quiet import quiet_lightning
from loopbench.core.store import PUBLISHED_RESULTS_NAME
from loopbench.core.types import UsageError
from loopbench.report import write_report
from loopbench.studies.suite import machine_folder


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
    for reserved in ("factory", "check", "unmirrored", "plain"):
        if reserved in settings:
            raise UsageError(
                f"--set {reserved}=...: the verb sets it (the factory is the verb's argument, a port --plain's)"
            )
    if args.plain:
        settings["plain"] = args.plain
        args.set = [*args.set, ("plain", args.plain)]
    found, ran = check_module(args.factory, settings, (args.precisions or ["32-true"])[0])
    job = ran.data.get("job", {})
    if args.precisions is None:  # the job's own precision, where its Trainer settings name one
        args.precisions = [job.get("settings", {}).get("precision") or "32-true"]
    for precision in args.precisions:
        found |= check_module(args.factory, settings, precision)[0]
    if "unmirrored" in found:
        args.impls = [i for i in args.impls if i != "pytorch"]
        print(f"parity: not checked ({found['unmirrored']}); the Trainers run alone", flush=True)
    logs = any(not k.startswith("logger.") for k in ran.logged)
    if "lightning-barebones" in args.impls and (
        logs or found.get("logger") or "ModelCheckpoint" in job.get("callbacks", [])
    ):
        args.impls = [i for i in args.impls if i != "lightning-barebones"]
        print(
            "not run: lightning-barebones: Trainer(barebones=True) turns off self.log, loggers and checkpoints, "
            "which this job uses",
            flush=True,
        )
    args.tasks = ["module"]
    args.set = [*args.set, ("factory", args.factory), *found.items()]
    name = re.sub(r"[^\w.-]", "_", args.factory.replace(":", "-"))

    def publish(results: list, devices: tuple) -> Path:
        folder = machine_folder(Path("reports"), devices) / "own-module" / name
        return write_report(results, folder, PUBLISHED_RESULTS_NAME)

    return cmd_suite(args, publish)
