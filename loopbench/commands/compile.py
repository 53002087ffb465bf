"""`loopbench compile`: every implementation of each task compiled, each run a process of its own (forked from a
server that has imported torch and Lightning and compiled nothing) from a stated cache, on each Lightning release
asked for."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import implementations
from implementations.settings import validate
from loopbench import options
from loopbench.commands.results import study_end
from loopbench.core.checks import folder, positive, release
from loopbench.core.store import ResultLog
from loopbench.core.types import RunConfig, UsageError
from loopbench.launch.forked import run_forked_batch
from loopbench.launch.isolate import interrupts_raise
from loopbench.report import compile as compile_report
from loopbench.studies import compile as study
from loopbench.studies.batches import progress_line
from loopbench.studies.suite import machine_folder, run_folder


def cmd_compile(args: argparse.Namespace) -> int:
    if args.fresh_runs < 1:
        raise UsageError("--fresh-runs must be at least 1")
    positive("--timeout", args.timeout)
    out = args.out or run_folder(Path("runs"), (args.device,), False)
    folder("--out", out)
    tasks = args.tasks or (*implementations.PROBES, *implementations.TASKS)
    for task in tasks:
        if reason := implementations.problem(task):
            raise UsageError(reason.replace("--task ", "--tasks "))
    bases = [
        RunConfig(task, "pytorch", args.device, args.precision, args.preset, args.seed, steps=args.steps,
                  warmup_steps=args.warmup_steps, batch_size=args.batch_size,
                  overrides=options.overrides(args.set, args.pretrained))
        for task in tasks
    ]  # fmt: skip
    impls = tuple(dict.fromkeys(args.impls))
    releases = tuple(dict.fromkeys(release(v) for v in (args.lightning or [None])))
    caches = out / "inductor-caches" if args.cache == "warm" else None
    modes = tuple(dict.fromkeys(args.compile))
    cells = study.plan(bases, impls, modes, args.compile_backend, args.fresh_runs, releases, caches)
    for c in {c.label: c for c in cells}.values():
        validate(c)  # every cell checked before anything runs
    print(
        f"loopbench compile: {len(tasks)} tasks x {len(cells) // len(tasks) // args.fresh_runs} variants x "
        f"{args.fresh_runs} fresh runs ({args.compile_backend}, {args.cache} cache): {len(cells)} runs into {out}",
        flush=True,
    )
    log = ResultLog(out / "results.jsonl")
    with interrupts_raise():
        try:
            for i, cell in enumerate(cells, 1):  # each its own process, forked before anything was compiled
                (result,) = run_forked_batch([cell], args.timeout)
                log.append(result)
                print(progress_line(i, len(cells), result), flush=True)
        except KeyboardInterrupt:
            print(f"interrupted: {len(log.read())} runs kept in {log.path}", file=sys.stderr)
            return 130
        finally:
            if caches is not None:
                shutil.rmtree(caches, ignore_errors=True)
    where = Path("compile", "releases") if len(releases) > 1 else Path("compile")  # a sweep beside the main report
    published = machine_folder(Path("reports"), (args.device,)) / where if args.publish else None
    return study_end(log.read(), out, compile_report.write, published)
