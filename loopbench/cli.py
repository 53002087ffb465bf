"""loopbench run | parity | suite | overhead | report.

Bad input (unknown names, a device that is not there, a missing data folder, a cell an
implementation cannot run as labelled) ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import shlex
import sys
from pathlib import Path

import implementations
from loopbench.overhead import PROBE_RUNS, PROBE_STEPS
from loopbench.precision import PRECISIONS
from loopbench.trainers import TRAINERS
from loopbench.types import UsageError

PRESETS = ("smoke", "quick", "full")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not usage + message
        self.exit(2, f"{self.prog}: error: {message}\n")


def _usage_error(message: str) -> int:
    print(f"loopbench: error: {message}", file=sys.stderr)
    return 2


def _override(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def _cell_options(p: argparse.ArgumentParser, impl: bool) -> None:
    p.add_argument("--task", required=True, choices=implementations.RUNNABLE)
    if impl:
        p.add_argument("--impl", required=True, choices=tuple(implementations.ALL_IMPLS))
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--precision", default="32-true", choices=PRECISIONS)
    p.add_argument("--preset", default="smoke", choices=PRESETS, help="smoke (tests), quick (CPU), full (GPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, help="optimizer steps (batches); default: the preset's")
    p.add_argument("--warmup-steps", type=int, help="steps left out of the timing; default: the preset's")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--data", default="synthetic", choices=("synthetic", "real"))
    p.add_argument("--data-dir", help="folder of the real data set (--data real)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        type=_override,
        default=[],
        metavar="KEY=VALUE",
        help="override a task hyperparameter, e.g. --set lr=0.05 (repeatable)",
    )
    p.add_argument(
        "--pretrained",
        action="store_true",
        help="efficientnet_binary: start from torchvision's ImageNet weights (from the local cache)",
    )
    p.add_argument(
        "--processes",
        type=int,
        default=1,
        help="data parallel: N processes (DDP; gloo on CPU, one core each; nccl on CUDA, one GPU each). Default 1",
    )
    p.add_argument("--json", type=Path, help="write the result as JSON here")


def _config(args: argparse.Namespace, impl: str):
    from loopbench.types import RunConfig

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
        overrides=dict(args.overrides) | ({"pretrained": True} if args.pretrained else {}),
        processes=args.processes,
    )


def _checked(config):
    """Validate a cell before any training: UsageError for bad input, including unsupported cells."""
    from loopbench.checks import unsupported_reason, validate

    validate(config)
    reason = unsupported_reason(config)
    if reason:
        raise UsageError(f"unsupported: {reason}")
    return config


def cmd_run(args: argparse.Namespace) -> int:
    from loopbench.harness import run_cell
    from loopbench.launch.isolate import run_isolated
    from loopbench.quiet import quiet_lightning
    from loopbench.suite import progress_line
    from loopbench.trainers import is_lightning

    _json_target(args.json)
    _positive("--timeout", args.timeout)
    config = _checked(_config(args, args.impl))
    if is_lightning(config.impl):
        quiet_lightning()
    isolate = args.isolate or config.processes > 1  # several processes are always started afresh
    result = run_isolated(config, args.timeout) if isolate else run_cell(config)
    print(progress_line(1, 1, result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    return 0 if result.ok else 1


def cmd_parity(args: argparse.Namespace) -> int:
    """Per seed: same losses and weights? Over several seeds also: same final quality (TOST)?"""
    from dataclasses import replace

    from loopbench.harness import run_cell
    from loopbench.launch.isolate import run_isolated
    from loopbench.parity import combine, compare_cell
    from loopbench.quiet import quiet_lightning
    from loopbench.stats import tost

    seeds = args.seeds or [args.seed]
    _json_target(args.json)
    _positive("--margin", args.margin)
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds: each seed once, got {' '.join(map(str, seeds))}")
    if len(seeds) == 1 and args.metric:
        raise UsageError("--metric needs several --seeds: equivalence is a statement about a distribution")
    known = implementations.spec(args.task).METRICS
    if args.metric and args.metric not in known:
        raise UsageError(f"unknown metric {args.metric!r}; {args.task} reports {', '.join(known)}")
    pairs = [
        (_checked(replace(_config(args, "pytorch"), seed=s)), _checked(replace(_config(args, args.against), seed=s)))
        for s in seeds
    ]
    quiet_lightning()
    reports, references, candidates = [], [], []
    run = run_isolated if args.processes > 1 else run_cell  # several processes are always started afresh
    for seed, (ref_cfg, cand_cfg) in zip(seeds, pairs, strict=True):
        reference, candidate = run(ref_cfg), run(cand_cfg)
        for r in (reference, candidate):
            if not r.ok:
                print(f"{r.run_config.label}: {r.status}: {r.message}", file=sys.stderr)
                return 1
        reports.append(compare_cell(reference, candidate))
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


def cmd_suite(args: argparse.Namespace) -> int:
    from loopbench.checks import validate
    from loopbench.launch.isolate import interrupts_raise
    from loopbench.precision import device_type
    from loopbench.report import write_report
    from loopbench.suite import Matrix, Progress, default_devices, default_preset, progress_line, run_cells

    if args.repeats < 1:
        raise UsageError("--repeats must be at least 1")
    if args.probe_runs < 0 or args.probe_runs == 1:
        raise UsageError("--probe-runs must be 0 (no probe) or at least 2: an interval needs two pairs")
    _positive("--timeout", args.timeout)
    _folder("--out", args.out)
    devices = tuple(dict.fromkeys(args.devices or default_devices()))
    for device in devices:
        try:
            device_type(device)
        except ValueError as e:
            raise UsageError(str(e)) from None
    matrix = Matrix(
        tasks=tuple(dict.fromkeys(args.tasks or implementations.TASKS)),
        impls=tuple(dict.fromkeys(args.impls)),
        devices=devices,
        precisions=tuple(dict.fromkeys(args.precisions)) if args.precisions else None,
        preset=args.preset or default_preset(devices),
        repeats=args.repeats,
        seed=args.seed,
        data=args.data,
        data_dir=args.data_dir,
        probe_runs=args.probe_runs,
        probe_steps=args.probe_steps,
        processes=tuple(dict.fromkeys(args.processes)),
    )
    for cell in {c.label: c for c in matrix.cells()}.values():  # refuse bad input before hours of work
        if args.precisions:  # asked for by name: a cell this machine cannot run is bad input
            _checked(cell)
        else:  # the default precisions: such a cell is recorded as unsupported, and the rest runs
            validate(cell)
    progress = Progress(matrix, args.out, args.resume)
    todo = progress.todo()
    planned = len(progress.planned)
    probe = sum(c.task in implementations.PROBES for c in progress.planned)
    print(
        f"loopbench suite: {planned} runs ({len(matrix.groups())} groups x {len(matrix.impls)} "
        f"implementations x {args.repeats} repeats, preset {matrix.preset}"
        + (f"; first the overhead probe, {probe} short runs)" if probe else ")")
        + (f"; resuming: {planned - len(todo)} already in {args.out}" if args.resume else ""),
        flush=True,
    )
    interrupted = False
    with interrupts_raise():
        try:
            run_cells(todo, args.timeout, lambda i, n, r: print(progress_line(i, n, r), flush=True), progress.log)
        except KeyboardInterrupt:
            interrupted = True
    results = progress.results()
    if results:
        print(f"report: {write_report(results, args.out)}")
    if interrupted:
        again = " ".join(shlex.quote(a) for a in args.argv if a != "--resume")
        print(
            f"interrupted: the report holds {len(results)} of the {planned} planned runs; "
            f"continue with: loopbench {again} --resume",
            file=sys.stderr,
        )
        return 130
    return 0 if all(r.ok or r.status == "unsupported" for r in results) else 1


def cmd_overhead(args: argparse.Namespace) -> int:
    """The Trainer's fixed cost per optimizer step, from the near-zero-compute probe in fresh processes."""
    from loopbench.checks import validate
    from loopbench.launch.isolate import interrupts_raise
    from loopbench.overhead import PROBE, lines, measure, plan
    from loopbench.suite import progress_line
    from loopbench.trainers import LADDER_IMPLS

    _json_target(args.json)
    if args.runs < 2:
        raise UsageError("--runs must be at least 2: an interval needs two pairs of runs")
    shapes = ("auto", "manual") if args.shape == "both" else (args.shape,)
    for shape in shapes:
        validate(plan(args.device, shape, 1, args.steps)[0])
    print(
        f"loopbench overhead: {PROBE}, one torch thread, {args.runs} fresh processes per implementation "
        f"(the plain loop, {len(LADDER_IMPLS) - 1} Trainers: the ladder and the default Trainer)",
        flush=True,
    )
    with interrupts_raise():
        answer = measure(
            args.device, shapes, args.runs, args.steps, lambda i, n, r: print(progress_line(i, n, r), flush=True)
        )
    print("\n".join(lines(answer)))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(answer, indent=1) + "\n")
    return 1 if answer["failed"] else 0


def cmd_report(args: argparse.Namespace) -> int:
    from loopbench.report import write_report
    from loopbench.store import load_results

    _folder("--out", args.out)
    print(f"report: {write_report(load_results(*args.results), args.out)}")
    return 0


def _positive(flag: str, value: float | None) -> None:

    if value is not None and not (value > 0 and math.isfinite(value)):
        raise UsageError(f"{flag} must be a positive number, got {value:g}")


def _folder(flag: str, path: Path) -> None:

    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path}: exists and is not a folder; name a folder")


def _json_target(path: Path | None) -> None:

    if path is not None and path.is_dir():
        raise UsageError(f"--json {path}: is a folder; name a file, e.g. {path / 'result.json'}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="loopbench", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("run", help="train one cell and print its measurements")
    _cell_options(p, impl=True)
    p.add_argument("--isolate", action="store_true", help="run in a fresh process, as the suite does")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds, with --isolate")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("parity", help="train pytorch and a Lightning variant; exit 0 if parity holds")
    _cell_options(p, impl=False)
    p.add_argument("--against", default="lightning", choices=tuple(TRAINERS), help="any Lightning Trainer variant")
    p.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        help="several seeds: a verdict per seed, and an equivalence test (TOST) of the final --metric over them",
    )
    p.add_argument("--metric", help="final metric for the equivalence test; default: the task's first")
    p.add_argument("--margin", type=float, default=0.02, help="equivalence margin, in the metric's units")
    p.set_defaults(func=cmd_parity)

    p = sub.add_parser("suite", help="run a matrix of cells, one fresh process each, and write the report")
    p.add_argument("--tasks", nargs="+", choices=implementations.RUNNABLE)
    p.add_argument("--impls", nargs="+", choices=tuple(implementations.ALL_IMPLS), default=list(implementations.IMPLS))
    p.add_argument("--devices", nargs="+", help="default: cuda if visible, else cpu")
    p.add_argument("--precisions", nargs="+", choices=PRECISIONS, help="default: each device's usual set")
    p.add_argument("--preset", choices=PRESETS, help="default: full on GPU, quick on CPU")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default="synthetic", choices=("synthetic", "real"))
    p.add_argument("--data-dir")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    p.add_argument("--out", type=Path, default=Path("runs/suite"), help="results (appended as each run ends) + report")
    p.add_argument("--resume", action="store_true", help="run only the planned runs not yet in --out")
    p.add_argument(
        "--probe-runs",
        type=int,
        default=PROBE_RUNS,
        help=f"overhead-probe runs per variant, before the tasks (default {PROBE_RUNS}; 0: no probe)",
    )
    p.add_argument("--probe-steps", type=int, default=PROBE_STEPS, help=f"steps per probe run (default {PROBE_STEPS})")
    p.add_argument(
        "--processes",
        type=int,
        nargs="+",
        default=[1],
        help="data parallel: each task at each of these process counts, e.g. 1 2 (a scaling table). Default 1",
    )
    p.set_defaults(func=cmd_suite)

    p = sub.add_parser("overhead", help="what a Trainer costs per optimizer step: the near-zero-compute probe")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--shape", default="both", choices=("auto", "manual", "both"))
    p.add_argument(
        "--runs",
        "--processes",  # the probe's first name for it; here never data parallel (the probe runs in one process)
        dest="runs",
        type=int,
        default=4,
        help="fresh-process runs per implementation, one after another (default 4; --processes is the same)",
    )
    p.add_argument("--steps", type=int, help="optimizer steps per run (default: the probe's 3,000)")
    p.add_argument("--json", type=Path, help="write the answer as JSON here")
    p.set_defaults(func=cmd_overhead)

    p = sub.add_parser("report", help="turn saved results (files or folders, merged) into REPORT.md and figures")
    p.add_argument("results", nargs="+", type=Path, help="results.json / results.jsonl files, or folders holding one")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv

    try:
        return args.func(args)
    except UsageError as e:
        return _usage_error(str(e))


if __name__ == "__main__":
    sys.exit(main())
