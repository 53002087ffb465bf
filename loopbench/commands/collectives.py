"""`loopbench collectives`: per step, the collectives each implementation's data-parallel step makes and the time
inside them, per Lightning release; then the installed release's cells across two torchrun agents on this machine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import implementations
from implementations.settings import validate
from loopbench.commands.results import study_end
from loopbench.core.checks import folder, positive, release
from loopbench.core.store import ResultLog
from loopbench.core.types import RunConfig, UsageError
from loopbench.launch.agents import run_local_agents, torchrun
from loopbench.launch.distributed import run_ranks_batch
from loopbench.launch.isolate import interrupts_raise
from loopbench.report import collectives as collectives_report
from loopbench.studies import collectives as study
from loopbench.studies.batches import progress_line
from loopbench.studies.suite import machine_folder, run_folder


def cmd_collectives(args: argparse.Namespace) -> int:
    if args.fresh_runs < 1:
        raise UsageError("--fresh-runs must be at least 1")
    positive("--timeout", args.timeout)
    if args.processes < 2:
        raise UsageError(f"--processes {args.processes}: collectives need at least 2 processes")
    if args.nodes == "on" and torchrun() is None:
        raise UsageError("--nodes on needs torchrun (torch's launcher), not found here; or give --nodes off")
    out = args.out or run_folder(Path("runs"), ("cpu",), False)
    folder("--out", out)
    tasks = args.tasks or ("mnist_gan", "cifar_cnn")
    for task in tasks:
        if reason := implementations.problem(task):
            raise UsageError(reason.replace("--task ", "--tasks "))
    releases = tuple(dict.fromkeys(release(v) for v in (args.lightning or [None])))
    bases = [RunConfig(task, "pytorch", "cpu", args.precision, args.preset, args.seed, steps=args.steps,
                       warmup_steps=args.warmup_steps, processes=args.processes, evaluate=False)
             for task in tasks]  # fmt: skip
    impls = tuple(dict.fromkeys(args.impls))
    batches = study.plan(bases, impls, releases, args.fresh_runs)
    nodes = study.two_nodes(bases, impls) if args.nodes == "on" else []
    for c in [*batches[0], *nodes]:
        validate(c)  # every cell checked before anything runs
    total = sum(map(len, batches)) + len(nodes)
    print(f"loopbench collectives: {len(tasks)} tasks x {len(impls)} implementations x {len(releases)} releases x "
          f"{args.fresh_runs} fresh runs, {args.processes} processes{', then 2 torchrun agents' if nodes else ''}: "
          f"{total} runs into {out}", flush=True)  # fmt: skip
    log, done = ResultLog(out / "results.jsonl"), 0
    with interrupts_raise():
        try:
            for cells, run in [
                *((b, run_ranks_batch) for b in batches),
                *([(nodes, run_local_agents)] if nodes else []),
            ]:
                for result in run(cells, args.timeout * len(cells)):
                    done += 1
                    log.append(result)
                    print(progress_line(done, total, result), flush=True)
        except KeyboardInterrupt:
            print(f"interrupted: {len(log.read())} runs kept in {log.path}", file=sys.stderr)
            return 130
    published = machine_folder(Path("reports"), ("cpu",)) / "multi-node" if args.publish else None
    return study_end(log.read(), out, collectives_report.write, published)
