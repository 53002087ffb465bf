"""The verbs of task cells: run one, check parity, run a matrix."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import implementations
from implementations.settings import refuse_unsupported
from loopbench import options
from loopbench.analysis.parity import CONTROL_LR, ParityReport, combine, compare_cell, with_control
from loopbench.analysis.stats import tost
from loopbench.commands.job_check import check_module
from loopbench.commands.matrix import matrix_from
from loopbench.core.checks import json_target, positive, release
from loopbench.core.quiet import quiet_lightning
from loopbench.core.store import PUBLISHED_RESULTS_NAME as PUBLISHED
from loopbench.core.trainers import is_lightning
from loopbench.core.types import RunConfig, RunResult, UsageError
from loopbench.launch.cell import run_here
from loopbench.launch.isolate import interrupts_raise, run_isolated
from loopbench.launch.nodes import Job, started_by_torchrun
from loopbench.report import write_report
from loopbench.studies.batches import progress_line, run_cells
from loopbench.studies.suite import Progress, machine_folder, run_folder


def _config(args: argparse.Namespace, impl: str):
    return RunConfig(
        task=args.task,
        impl=impl,
        device=args.device,
        precision=args.precision,
        preset=args.preset,
        seed=args.seed,
        steps=args.steps,
        warmup_steps=args.warmup_steps,
        batch_size=args.batch_size,
        data=args.data,
        data_dir=args.data_dir,
        overrides=options.overrides(args.set, args.pretrained),
        processes=1 if args.processes is None else args.processes,
        lightning=release(args.lightning),
        slowdown_us=args.slowdown_us,
        compile=args.compile,
        compile_backend=args.compile_backend,
    )


def runner(args: argparse.Namespace, isolate: bool) -> Callable[[RunConfig], RunResult]:
    """How this command runs a cell: here, in fresh processes (`isolate`), or as one rank of a torchrun or srun
    job (rank 0 prints and writes the merged results; the others run their part quietly)."""
    if args.launcher == "local":
        if started_by_torchrun():
            raise UsageError(f"started by torchrun (rank {os.environ.get('RANK')} of {os.environ.get('WORLD_SIZE')}): "
                             "add --launcher torchrun, or run loopbench without torchrun")  # fmt: skip
        return (lambda c: run_isolated(c, args.timeout)) if isolate else run_here
    if args.processes is not None:
        raise UsageError(f"--processes {args.processes} with --launcher {args.launcher}: the processes are the "
                         "launcher's (torchrun's --nproc-per-node, srun's --ntasks-per-node); "
                         "drop --processes")  # fmt: skip
    if args.lightning or getattr(args, "isolate", False):
        flag = "--lightning" if args.lightning else "--isolate"
        raise UsageError(f"{flag} with --launcher {args.launcher}: each rank runs in the process its launcher "
                         "started, on the Lightning installed there")  # fmt: skip
    positive("--join-timeout", args.join_timeout)
    job = Job(args.launcher, args.join_timeout, args.timeout)
    if job.place.rank != 0:
        sys.stdout, args.json = open(os.devnull, "w"), None  # noqa: SIM115 (for the process's life)
    return lambda config: job.run(replace(config, launcher=args.launcher))


def cmd_run(args: argparse.Namespace) -> int:
    json_target(args.json)
    positive("--timeout", args.timeout)
    config = refuse_unsupported(_config(args, args.impl))
    if is_lightning(config.impl):
        quiet_lightning()
    isolate = args.isolate or config.processes > 1 or config.lightning  # another process; another release
    result = runner(args, isolate)(config)
    print(progress_line(1, 1, result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    return 0 if result.ok else 1


def cmd_parity(args: argparse.Namespace) -> int:
    """Per seed: same losses and weights? Over several seeds also: same final quality (TOST)?"""
    seeds = args.seeds or [args.seed]
    json_target(args.json)
    positive("--margin", args.margin)
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds: each seed once, got {' '.join(map(str, seeds))}")
    if len(seeds) == 1 and args.metric:
        raise UsageError("--metric needs several --seeds: equivalence is a statement about a distribution")
    known = implementations.spec(args.task).METRICS
    if args.metric and args.metric not in known:
        raise UsageError(f"unknown metric {args.metric!r}; {args.task} reports {', '.join(known)}")
    settings = dict(args.set)
    if args.task == "module" and "factory" in settings:  # a logger where the job needs one, found as `module` does
        found, _ = check_module(settings["factory"], settings, args.precision)
        args.set = [*args.set, *((k, v) for k, v in found.items() if k == "logger")]
    pairs = [
        (
            refuse_unsupported(replace(_config(args, "pytorch"), seed=s)),
            refuse_unsupported(replace(_config(args, args.against), seed=s)),
        )
        for s in seeds
    ]
    quiet_lightning()
    reports, references, candidates = [], [], []
    positive("--timeout", args.timeout)
    run = runner(args, pairs[0][0].processes > 1 or pairs[0][1].lightning)  # several processes, another release
    for seed, (ref_cfg, cand_cfg) in zip(seeds, pairs, strict=True):
        reference, candidate = run(ref_cfg), run(cand_cfg)
        for r in (reference, candidate):
            if not r.ok:
                print(f"{r.run_config.label}: {r.status}: {r.message}", file=sys.stderr)
                return 1
        report = compare_cell(reference, candidate)
        if report.expected == "within_tolerance":  # a tolerance proves nothing until a nudged job fails it
            report = controlled(report, run, reference, candidate)
            if report is None:
                return 1
        reports.append(report)
        references.append(reference)
        candidates.append(candidate)
        print(f"seed {seed}: {reports[-1].line()}" if len(seeds) > 1 else reports[-1].line(), flush=True)
    out = reports[0].to_dict() if len(seeds) == 1 else combine(reports, seeds)
    holds = out["holds"]
    if len(seeds) > 1:
        metric = args.metric or known[0]
        ref_values = [r.metrics[metric] for r in references]
        cand_values = [c.metrics[metric] for c in candidates]
        eq = tost(ref_values, cand_values, args.margin, paired=True)  # seed i with seed i
        print(
            f"{metric} over {len(seeds)} seeds: pytorch {sum(ref_values) / len(seeds):.4g}, {args.against} "
            f"{sum(cand_values) / len(seeds):.4g}; difference {eq.difference:+.3g}, margin {args.margin:g}: "
            f"{'equivalent' if eq.equivalent else 'NOT shown equivalent'} (TOST p = {eq.p_value:.3g})"
        )
        out["equivalence"] = {
            "metric": metric,
            "reference_values": ref_values,
            "candidate_values": cand_values,
            **eq.to_dict(),
        }
        holds = holds and eq.equivalent
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0 if holds else 1


def controlled(report: ParityReport, run: Callable[[RunConfig], RunResult], reference: RunResult,
               candidate: RunResult) -> ParityReport | None:  # fmt: skip
    """The report with its positive control (analysis.parity.with_control): the candidate's job again with its
    learning rate nudged, and the reference's again; None (the reason printed) where either run failed."""
    cand_cfg, ref_cfg = candidate.run_config, reference.run_config
    nudge = cand_cfg.overrides | {"lr": candidate.task_config["lr"] * CONTROL_LR}
    nudged, again = run(replace(cand_cfg, overrides=nudge)), run(ref_cfg)
    for r in (nudged, again):
        if not r.ok:
            print(f"{r.run_config.label} (the positive control): {r.status}: {r.message}", file=sys.stderr)
            return None
    return with_control(report, compare_cell(reference, nudged), compare_cell(reference, again))


def cmd_suite(args: argparse.Namespace, publish: Callable[[list, tuple], Path] | None = None) -> int:
    """The matrix the options ask for, its report in the run folder, and with --publish in reports/<machine>/
    (or where `publish(results, devices)` writes it)."""
    matrix = matrix_from(lambda name: getattr(args, name), lambda name: f"--{name}")
    out = args.out or run_folder(Path("runs"), matrix.devices, args.resume)
    progress = Progress(matrix, out, args.resume)
    todo = progress.todo()
    planned = len(progress.planned)
    probe = sum(c.task in implementations.PROBES for c in progress.planned)
    rounds = args.repeats or "each task's"
    print(
        f"loopbench suite: {planned} runs into {out} ({len(matrix.groups())} groups x {len(matrix.impls)} "
        f"implementations x {rounds} repeats, preset {matrix.preset}"
        + (f"; first the overhead probe, {probe} short runs in rounds)" if probe else ")")
        + (f"; resuming: {planned - len(todo)} already there" if args.resume else ""),
        flush=True,
    )
    for line in matrix.missing():
        print(f"not run: {line}", flush=True)
    interrupted = False
    with interrupts_raise():
        try:
            run_cells(todo, args.timeout, lambda i, n, r: print(progress_line(i, n, r), flush=True), progress.log)
        except KeyboardInterrupt:
            interrupted = True
    results = progress.results()
    if results:
        print(f"report: {write_report(results, out)}")
        if args.publish:
            folder = machine_folder(Path("reports"), matrix.devices)
            published = publish(results, matrix.devices) if publish else write_report(results, folder, PUBLISHED)
            print(f"published: {published}")
    if interrupted:
        again = " ".join(shlex.quote(a) for a in args.argv if a != "--resume")
        again += "" if args.out else f" --out {shlex.quote(str(out))}"
        print(
            f"interrupted: the report holds {len(results)} of the {planned} planned runs; "
            f"continue with: loopbench {again} --resume",
            file=sys.stderr,
        )
        return 130
    return 0 if all(r.ok or r.status == "unsupported" for r in results) else 1
