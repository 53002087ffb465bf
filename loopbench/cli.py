"""loopbench run | parity | suite | overhead | history | report | compare.

Bad input (unknown names, a device that is not there, a missing data folder, a cell an
implementation cannot run as labelled) ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from pathlib import Path

import implementations
from loopbench import options
from loopbench.types import UsageError

PREFIX = "loopbench: error:"  # every refusal, argparse's own included


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not usage + message
        self.exit(2, f"{PREFIX} {message}\n")


class _Help(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' line breaks; each option's help already ends with its default."""


def _usage_error(message: str) -> int:
    print(f"{PREFIX} {message}", file=sys.stderr)
    return 2


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    def v(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return f"loopbench {v('loopbench')}, torch {v('torch')}, pytorch-lightning {v('pytorch-lightning')}"


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
        overrides=options.overrides(args.set, args.pretrained),
        processes=args.processes,
        lightning=_release(args.lightning),
    )


def _release(version: str | None) -> str | None:
    """None for the installed release (the default), else the version, refused in one line if not allowed."""
    from loopbench import releases

    if version is None or version == releases.installed():
        return None
    releases.check(version)
    return version


def cmd_run(args: argparse.Namespace) -> int:
    from loopbench.checks import refuse_unsupported
    from loopbench.harness import run_cell
    from loopbench.launch.isolate import run_isolated
    from loopbench.quiet import quiet_lightning
    from loopbench.suite import progress_line
    from loopbench.trainers import is_lightning

    _json_target(args.json)
    _positive("--timeout", args.timeout)
    config = refuse_unsupported(_config(args, args.impl))
    if is_lightning(config.impl):
        quiet_lightning()
    isolate = args.isolate or config.processes > 1 or config.lightning  # another process; another release
    result = run_isolated(config, args.timeout) if isolate else run_cell(config)
    print(progress_line(1, 1, result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    return 0 if result.ok else 1


def cmd_parity(args: argparse.Namespace) -> int:
    """Per seed: same losses and weights? Over several seeds also: same final quality (TOST)?"""
    from dataclasses import replace

    from loopbench.checks import refuse_unsupported
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
        (
            refuse_unsupported(replace(_config(args, "pytorch"), seed=s)),
            refuse_unsupported(replace(_config(args, args.against), seed=s)),
        )
        for s in seeds
    ]
    quiet_lightning()
    reports, references, candidates = [], [], []
    isolate = args.processes > 1 or pairs[0][1].lightning  # several processes, or another release: afresh
    run = run_isolated if isolate else run_cell
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
    from loopbench.launch.isolate import interrupts_raise
    from loopbench.report import write_report
    from loopbench.suite import Progress, machine_folder, matrix_from, progress_line, run_cells, run_folder

    matrix = matrix_from(lambda name: getattr(args, name), lambda name: f"--{name}")
    out = args.out or run_folder(Path("runs"), matrix.devices, args.resume)
    progress = Progress(matrix, out, args.resume)
    todo = progress.todo()
    planned = len(progress.planned)
    probe = sum(c.task in implementations.PROBES for c in progress.planned)
    print(
        f"loopbench suite: {planned} runs into {out} ({len(matrix.groups())} groups x {len(matrix.impls)} "
        f"implementations x {args.repeats} repeats, preset {matrix.preset}"
        + (f"; first the overhead probe, {probe} short runs in rounds)" if probe else ")")
        + (f"; resuming: {planned - len(todo)} already there" if args.resume else ""),
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
        print(f"report: {write_report(results, out)}")
        if args.publish:
            print(f"published: {write_report(results, machine_folder(Path('reports'), matrix.devices))}")
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


def cmd_overhead(args: argparse.Namespace) -> int:
    """The Trainer's fixed cost per optimizer step, from the near-zero-compute probe in rounds of short segments."""
    from loopbench.checks import validate
    from loopbench.instructions import unavailable
    from loopbench.launch.isolate import interrupts_raise
    from loopbench.overhead import PROBE, PROBE_IMPLS, failed, lines, measure, plan

    _json_target(args.json)
    if args.processes is not None:
        raise UsageError(
            "--processes is data parallelism, which the overhead probe does not measure (it runs one process "
            "on one thread); for more rounds use --repeats"
        )
    if args.repeats < 2:
        raise UsageError("--repeats must be at least 2: an interval needs two rounds")
    _positive("--budget", args.budget)
    _positive("--target", args.target)
    shapes = ("auto", "manual") if args.shape == "both" else (args.shape,)
    for shape in shapes:
        validate(plan(args.device, shape, 1, args.steps)[0])
    versions = tuple(dict.fromkeys(_release(v) for v in args.lightning or [None]))
    if any(versions):
        from loopbench import releases

        for v in versions:
            releases.site(v)  # installed now, or refused in one line, before any round
    if args.steps is not None and args.steps < 8:
        raise UsageError("--steps must be at least 8 (a quarter of them warm up)")
    missing = unavailable() if args.instructions == "auto" else "instruction counts: off (--instructions off)"
    print(
        f"loopbench overhead: {PROBE}, one torch thread; rounds of short segments P V1 P V2 ... P in one process "
        f"each, at least {args.repeats} rounds, more until every headline delta is within {args.target:.0%} "
        f"or {args.budget:g} s have passed; variants: "
        + "; ".join(f"{s}: {', '.join(PROBE_IMPLS[s])}" for s in shapes)
        + (f"\n{missing}" if missing else "; then one instruction count per variant under valgrind"),
        flush=True,
    )

    def progress(k: int, a: dict) -> None:
        heads = [
            f"{release}{s} {i} {v[i]['delta_us']:+.0f} us (half-width {v[i]['half_width']:.0%})"
            for release, one in (a["releases"].items() if "releases" in a else [("", a)])
            for s, v in one["shapes"].items()
            for i in ("lightning", "lightning-defaults")
            if v.get(i, {}).get("half_width") is not None
        ]
        print(f"round {k:>3}: " + ("; ".join(heads) or "no interval yet"), flush=True)

    with interrupts_raise():
        answer, _ = measure(
            args.device, shapes, args.repeats, args.budget, args.target, args.steps, not missing, progress,
            versions=versions,
        )  # fmt: skip
    print("\n".join(lines(answer)))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(answer, indent=1) + "\n")
    return 1 if failed(answer) else 0


def cmd_history(args: argparse.Namespace) -> int:
    """The overhead probe across Lightning releases (rounds alternate over them), then parity on each."""
    from loopbench import history, releases
    from loopbench.instructions import unavailable
    from loopbench.launch.isolate import interrupts_raise
    from loopbench.report.history import write
    from loopbench.store import ResultLog
    from loopbench.suite import machine_folder, run_folder

    if args.repeats < 2:
        raise UsageError("--repeats must be at least 2: an interval needs two rounds")
    _positive("--budget", args.budget)
    _positive("--target", args.target)
    versions = tuple(dict.fromkeys(args.versions or history.default_versions()))
    for v in versions:
        releases.check(v)
    versions = tuple(sorted(versions, key=history.Version))  # adjacent releases are compared
    if len(versions) < 2:
        raise UsageError("--versions: name two releases or more (for one, use: loopbench overhead --lightning V)")
    out = args.out or run_folder(Path("runs"), ("cpu",), False)
    _folder("--out", out)
    for v in versions:
        releases.site(v)  # installed now (hash-checked), or refused in one line, before any round
    missing = unavailable() if args.instructions == "auto" else "instruction counts: off (--instructions off)"
    then = f"; {missing}" if missing else "; then instruction counts under valgrind"
    then += "; then parity on every release" if args.parity == "on" else ""
    print(
        f"loopbench history: the overhead probe on {len(versions)} releases ({', '.join(versions)}), at least "
        f"{args.repeats} rounds, more until every headline delta is within {args.target:.0%} or {args.budget:g} s "
        f"have passed{then}; results into {out}",
        flush=True,
    )
    log = ResultLog(out / "results.jsonl")

    def keep(runs: list) -> None:
        for r in runs:
            log.append(r)

    def progress(k: int, a: dict) -> None:
        print(f"round {k:>3} done", flush=True)

    installed = releases.installed()
    with interrupts_raise():
        try:
            h, results = history.measure(
                "cpu", tuple(None if v == installed else v for v in versions), args.repeats, args.budget,
                args.target, args.ladder, not missing, args.parity == "on", keep, progress,
            )  # fmt: skip
        except KeyboardInterrupt:
            h, results = None, log.read()
            print(f"interrupted: {len(results)} runs kept in {out / 'results.jsonl'}", file=sys.stderr)
    if not results:
        return 130
    print(f"report: {write(results, out, measured=h)}")
    if args.publish:
        print(f"published: {write(results, machine_folder(Path('reports'), ('cpu',)) / 'lightning-history', h)}")
    return 130 if h is None else 1 if history.answer(results, "cpu")["failed"] else 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Per probe variant and task cell: the change from OLD to NEW with its interval; exit 1 past --fail-above."""
    from loopbench.compare import compare
    from loopbench.store import load_results

    if args.fail_above is not None:
        _positive("--fail-above", args.fail_above)
    changes = compare(load_results(args.old), load_results(args.new))
    for c in changes:
        print(c.line())
    failing = [c for c in changes if c.resolved and args.fail_above is not None and c.percent > args.fail_above]
    for c in failing:
        print(f"FAIL: {c.what} rose by {c.percent:.1f}% (resolved), above --fail-above {args.fail_above:g}%")
    return 1 if failing else 0


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


VERBS = {
    "run": ("train one cell and print its measurements", "cmd_run"),
    "parity": ("train pytorch and a Lightning variant; exit 0 if parity holds", "cmd_parity"),
    "suite": ("run a matrix of cells and write the report into a run folder", "cmd_suite"),
    "overhead": ("what a Trainer costs per optimizer step: the near-zero-compute probe", "cmd_overhead"),
    "history": ("the overhead probe and parity across Lightning releases, and what changed", "cmd_history"),
    "report": ("turn saved results (files or folders, merged) into REPORT.md and figures", "cmd_report"),
    "compare": ("what changed between two result sets (releases, commits, days), with intervals", "cmd_compare"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="loopbench", description=__doc__.split("\n\n")[0], formatter_class=_Help)
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for verb, (help, func) in VERBS.items():
        p = sub.add_parser(
            verb, help=help, description=help, epilog=f"example:\n  {options.EXAMPLES[verb]}", formatter_class=_Help
        )
        options.add_to_parser(p, verb)
        if verb == "overhead":  # refused by name: the probe is one process (see cmd_overhead)
            p.add_argument("--processes", type=int, help=argparse.SUPPRESS)
        if verb == "compare":
            p.add_argument("old", type=Path, help="the earlier results: a results.json / results.jsonl or its folder")
            p.add_argument("new", type=Path, help="the later results")
        if verb == "report":
            p.add_argument("results", nargs="+", type=Path, help="results.json / results.jsonl files, or their folders")
            p.add_argument("--out", type=Path, required=True, help="the report's folder")
        p.set_defaults(func=globals()[func])
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
