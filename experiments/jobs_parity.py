"""Each job of examples/jobs through the module verb's check, then the plain loop built from its hooks against the
lean and the default Trainer over the job's whole length; one JSON with each side's verdict and where its time went.

    python -m experiments.jobs_parity OUT.json [PKG.MOD:FACTORY ...]

Without factories: every job of examples/jobs (JOBS). Each side runs once, here, from seed 0, in 32-true on CPU,
as `loopbench parity --task module --set factory=...` runs it; the verb's check decides the settings (a recording
logger where the job reads self.logger) or refuses the job in Lightning's own words. The same runs give each
side's seconds per phase (loopbench.report.job.phases: start-up, training steps, validation, epoch ends, the
rest, the whole job) and its median step: one run a side, so a Trainer's extra carries no interval.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from loopbench.analysis.parity import compare_cell
from loopbench.commands.job_check import check_module
from loopbench.core.quiet import quiet_lightning
from loopbench.core.types import RunConfig, UsageError
from loopbench.launch.cell import run_cell
from loopbench.measure.env import environment
from loopbench.report.job import PHASES, phases

JOBS = [
    f"examples.jobs.{name}"
    for name in (
        "ex_autoencoder:make", "ex_backbone:make", "ex_bug_report:make", "ex_finetune:make", "ex_gan:make",
        "ex_imagenet:make", "ex_segmentation:make", "ex_transformer:make", "tut_mnist:make", "tut_gan:make",
        "tut_cifar:baseline", "tut_cifar:swa", "tut_barlow:make", "uva:resnet", "uva:autoencoder", "uva:transformer",
        "uva:vit", "misc:docs", "misc:byol", "misc:old_gan", "misc:placed", "misc:template",
    )
]  # fmt: skip
AGAINST = ("lightning", "lightning-defaults")


def one_job(factory: str) -> dict:
    """The job's verdict against each Trainer, or why it was refused or not checked."""
    started = time.perf_counter()
    try:
        found, _ = check_module(factory, {}, "32-true")
    except UsageError as e:
        return {"factory": factory, "refused": str(e)}
    if "unmirrored" in found:
        return {"factory": factory, "not checked": found["unmirrored"]}
    row = {"factory": factory}
    settings = {"factory": factory} | found
    plain = run_cell(RunConfig("module", "pytorch", warmup_steps=0, split=False, overrides=settings))
    ran = [plain]
    for against in AGAINST:
        trainer = run_cell(RunConfig("module", against, warmup_steps=0, split=False, overrides=settings))
        ran.append(trainer)
        if not (plain.ok and trainer.ok):
            row[against] = {"failed": next(f"{r.status}: {r.message}" for r in (plain, trainer) if not r.ok)}
            continue
        report = compare_cell(plain, trainer)
        row[against] = {
            "verdict": report.verdict, "steps": report.steps, "logged_values": report.logged_values,
            "logged_difference": report.logged_difference, "val_metrics_equal": report.val_metrics_equal,
            "epochs": len(report.val_metrics or []),
        }  # fmt: skip
    return row | {"time": time_per_side(ran), "seconds": round(time.perf_counter() - started, 1)}


def time_per_side(runs: list) -> dict:
    """Each side's median step and seconds per phase, from the runs that were compared."""
    table = phases(runs).set_index("impl") if any(r.ok for r in runs) else None
    out = {}
    for r in runs:
        impl = r.config["impl"]
        if table is None or impl not in table.index:
            continue
        seconds = {"median step": r.step_time_median_s} | {p: table.loc[impl, f"{p} s"] for p in PHASES}
        out[impl] = {k: round(float(v), 6) for k, v in seconds.items()}  # to the microsecond
    return out


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    out, factories = Path(argv[0]).resolve(), argv[1:] or JOBS
    quiet_lightning()
    os.chdir(tempfile.mkdtemp(prefix="loopbench-jobs-"))  # what the jobs write (checkpoints, images) stays out of here
    rows = []
    for factory in factories:
        rows.append(one_job(factory))
        print(json.dumps(rows[-1]), flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"env": environment(torch.device("cpu")), "jobs": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
