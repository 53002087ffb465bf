"""The verbs of the overhead probe: its answer here, across Lightning releases, against real tasks (the pay
curve), and what changed between two result sets."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from implementations.settings import validate
from loopbench.analysis import targets
from loopbench.analysis.history import across_releases
from loopbench.analysis.probe import HEADLINE_IMPLS, PROBE
from loopbench.commands.results import study_end
from loopbench.core import releases
from loopbench.core.checks import folder, json_target, positive, release
from loopbench.core.store import ResultLog
from loopbench.core.trainers import PLAIN
from loopbench.core.types import UsageError
from loopbench.launch.isolate import interrupts_raise
from loopbench.launch.valgrind import unavailable
from loopbench.report import history as history_report
from loopbench.report import paycurve as paycurve_report
from loopbench.report import probe as probe_report
from loopbench.studies import counted, history, paycurve
from loopbench.studies.batches import run_cells
from loopbench.studies.overhead import PROBE_IMPLS, plan, run_rounds
from loopbench.studies.protocol import AFTER
from loopbench.studies.suite import machine_folder, run_folder


def cmd_overhead(args: argparse.Namespace) -> int:
    """The Trainer's fixed cost per optimizer step, from the near-zero-compute probe in rounds of short segments."""
    json_target(args.json)
    if args.processes is not None:
        raise UsageError(
            "--processes is data parallelism, which the overhead probe does not measure (it runs one process "
            "on one thread); for more rounds use --repeats"
        )
    if args.repeats < 2:
        raise UsageError("--repeats must be at least 2: an interval needs two rounds")
    positive("--budget", args.budget)
    positive("--target", args.target)
    shapes = ("auto", "manual") if args.shape == "both" else (args.shape,)
    for shape in shapes:
        validate(plan(args.device, shape, 1, args.steps, after=args.after)[0])
    versions = tuple(dict.fromkeys(release(v) for v in args.lightning or [None]))
    if any(versions):
        for v in versions:
            releases.site(v)  # installed now, or refused in one line, before any round
    if args.steps is not None and args.steps < 8:
        raise UsageError("--steps must be at least 8 (a quarter of them warm up)")
    if args.counts == "only":  # the one-optimizer shape, unless --shape manual says the other
        return counted_probe(args, ("manual",) if args.shape == "manual" else ("auto",), versions)
    missing = unavailable(args.device) if args.counts == "on" else "instruction counts: off (--counts off)"
    print(
        f"loopbench overhead: {PROBE}, one torch thread{_after_text(args.after)}; rounds of short segments P V1 P "
        f"V2 ... P in one process "
        f"each, at least {args.repeats} rounds, more until every headline delta is within {args.target:.0%} "
        f"or {args.budget:g} s have passed; variants: "
        + "; ".join(f"{s}: {', '.join(PROBE_IMPLS[s])}" for s in shapes)
        + (
            f"\n{missing}"
            if missing
            else "; beside the rounds, instruction counts under valgrind (the headline variants twice, the ladder once)"
        ),
        flush=True,
    )

    def progress(k: int, a: dict) -> None:
        heads = [
            f"{release}{s} {i} {v[i]['delta_us']:+.0f} us (half-width {v[i]['half_width']:.0%})"
            for release, one in (((f"{r} ", x) for r, x in a["releases"].items()) if "releases" in a else [("", a)])
            for s, v in one["shapes"].items()
            for i in ("lightning", "lightning-defaults")
            if v.get(i, {}).get("half_width") is not None
        ]
        print(f"round {k:>3}: " + ("; ".join(heads) or "no interval yet"), flush=True)

    started = time.monotonic()
    with interrupts_raise():
        answer, _ = run_rounds(
            args.device, shapes, args.repeats, args.budget, args.target, args.steps, not missing, progress,
            versions=versions, after=args.after,
        )  # fmt: skip
    answer["elapsed_s"] = round(time.monotonic() - started, 1)  # the whole measurement: rounds and counts
    print("\n".join(lines(answer)))
    print(f"a job whose plain step takes T pays about delta / T: {probe_report.WHERE_IT_HOLDS[args.after]}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(answer, indent=1) + "\n")
    return 1 if failed(answer) else 0


def counted_probe(args: argparse.Namespace, shapes: tuple[str, ...], versions: tuple[str | None, ...]) -> int:
    """`loopbench overhead --counts only`: each headline variant's instructions per step, no rounds; the JSON a
    CI gate compares (loopbench compare)."""
    missing = unavailable(args.device)
    if missing:
        raise UsageError(f"--counts only: {missing}")
    if len(versions) > 1 or args.after != "nothing":
        raise UsageError("--counts only: one --lightning at a time, and --after nothing")
    print(f"loopbench overhead: {PROBE}, counted under valgrind's callgrind: {', '.join(HEADLINE_IMPLS)}, one "
          f"{shapes[0]} count each, two at a time", flush=True)  # fmt: skip
    answer = counted.run(args.device, shapes[0], versions[0])
    for impl, c in answer["instructions"]["shapes"].get(shapes[0], {}).items():
        extra = f"  {c['delta'] / 1e6:+.3f} M over the plain loop" if c["delta"] else ""
        print(f"{shapes[0]:<7} {impl:<24} {c['per_step'] / 1e6:8.3f} M instructions/step{extra}")
    w = answer["counted_with"]
    print(f"counted with Python {w['python']}, torch {w['torch']}, pytorch-lightning {w['pytorch_lightning']}, the "
          f"probe's code {w['probe_code']}, in {answer['elapsed_s']:.0f} s")  # fmt: skip
    for line in answer["failed"]:
        print(f"FAILED: {line}", file=sys.stderr)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(answer, indent=1) + "\n")
    return 1 if answer["failed"] else 0


def _after_text(after: str) -> str:
    """What each probe step does first, as the command's first line says it (studies.protocol.AFTER)."""
    mib = AFTER[after][0].get("ballast_mib")
    return f", each step after a read of {mib:g} MiB" if mib else ""


def cmd_history(args: argparse.Namespace) -> int:
    """The overhead probe across Lightning releases (rounds alternate over them), then parity on each."""
    if args.repeats < 2:
        raise UsageError("--repeats must be at least 2: an interval needs two rounds")
    positive("--budget", args.budget)
    positive("--target", args.target)
    versions = tuple(dict.fromkeys(args.versions or history.default_versions()))
    for v in versions:
        releases.check(v, "--versions")
    versions = tuple(sorted(versions, key=history.Version))  # adjacent releases are compared
    if len(versions) < 2:
        raise UsageError("--versions: name two releases or more (for one, use: loopbench overhead --lightning V)")
    out = args.out or run_folder(Path("runs"), ("cpu",), False)
    folder("--out", out)
    for v in versions:
        releases.site(v)  # installed now (hash-checked), or refused in one line, before any round
    if args.counts == "only":
        raise UsageError("--counts only: the counts alone are loopbench overhead's (one release: --lightning V)")
    missing = unavailable() if args.counts == "on" else "instruction counts: off (--counts off)"
    then = f"; {missing}" if missing else "; beside the rounds, instruction counts under valgrind (a release at a time)"
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
            h, results = history.run_releases(
                "cpu", tuple(None if v == installed else v for v in versions), args.repeats, args.budget,
                args.target, args.ladder, not missing, args.parity == "on", keep, progress,
            )  # fmt: skip
        except KeyboardInterrupt:
            h, results = None, log.read()
            print(f"interrupted: {len(results)} runs kept in {out / 'results.jsonl'}", file=sys.stderr)
    if not results:
        return 130
    print(f"report: {history_report.write(results, out, measured=h)}")
    if args.publish:
        published = machine_folder(Path("reports"), ("cpu",)) / "lightning-history"
        print(f"published: {history_report.write(results, published, h)}")
    return 130 if h is None else 1 if across_releases(results, "cpu")["failed"] else 0


def cmd_paycurve(args: argparse.Namespace) -> int:
    """Real tasks swept over two decades of step time, each point's ratio beside the probe's prediction."""
    if args.repeats < 6:
        raise UsageError("--repeats must be at least 6: an order-statistic interval needs six rounds")
    out = args.out or run_folder(Path("runs"), ("cpu",), False)
    folder("--out", out)
    points = paycurve.select(args.points)
    missing = unavailable("cpu") if args.counts != "off" else None
    if args.counts == "only":
        if missing:
            raise UsageError(f"--counts only: {missing}")
        if not any(p.count for p in points) and args.probe == "off":
            raise UsageError("--counts only: none of these points names a count, and --probe is off")
    counts = args.counts != "off" and missing is None
    timed = 0 if args.counts == "only" else args.repeats
    cells = paycurve.plan(points, timed, paycurve.threads(), args.probe == "on", counts)
    probe = f", and the probe at 1 and {paycurve.threads()} threads" if args.probe == "on" else ", no probe"
    probe += f"; {missing}" if missing else ", then instruction counts" if counts else ""
    what = f"{len(points)} points x {args.repeats} rounds of P L P D P{probe}"
    if not timed:
        n = sum(bool(p.count) for p in points)
        what = f"the instruction counts of {n} point{'s' * (n != 1)}" + (" and the probe" if args.probe == "on" else "")
    print(f"loopbench paycurve: {what}: {len(cells)} short runs into {out} (the report: every run there)", flush=True)
    log = ResultLog(out / "results.jsonl")
    with interrupts_raise():
        try:
            run_cells(cells, args.timeout, None, log)
        except KeyboardInterrupt:
            print(f"interrupted: {len(log.read())} runs kept in {log.path}", file=sys.stderr)
            return 130
    published = machine_folder(Path("reports"), ("cpu",)) / "pay-curve" if args.publish else None
    return study_end(log.read(), out, paycurve_report.write, published)


def failed(answer: dict[str, Any]) -> list[str]:
    """The failed runs' lines, of one release or of several."""
    if "releases" in answer:
        return [f"{v}: {line}" for v, a in answer["releases"].items() for line in a["failed"]]
    return answer["failed"]


def _us(v: dict[str, Any], key: str = "delta") -> str:
    return f"{v[f'{key}_us']:+8.1f} us [{v[f'{key}_low_us']:+.1f}, {v[f'{key}_high_us']:+.1f}]"


def lines(answer: dict[str, Any]) -> list[str]:
    if "releases" in answer:
        out = []
        for version, a in answer["releases"].items():
            out += [f"pytorch-lightning {version} (as imported):", *lines(a | {k: answer[k] for k in answer
                    if k in ("stopped", "target", "budget_s", "timed_s")}), ""]  # fmt: skip
        return out
    out = []
    for shape, impls in answer["shapes"].items():
        for impl, v in impls.items():
            line = f"{shape:<7} {impl:<24} {v['us_per_step']:8.1f} us/step"
            if v.get("delta_us") is not None:
                line += f"  {_us(v)} ({v['pairs']} rounds"
                line += f", half-width {v['half_width']:.1%})" if v.get("half_width") is not None else ")"
            if answer["device"].startswith("cuda"):  # the device's time above, the host's own here
                line += f"  host {v['host_us_per_step']:.1f} us/step"
            out.append(line)
    if answer["ladder"]:
        out += ["", "the ladder: what each part of the Trainer adds per step (median step; window mean)"]
    for row in answer["ladder"]:
        if row.get("delta_us") is not None:
            out.append(f"{row['shape']:<7} {row['feature']:<72} {_us(row)}; {_us(row, 'mean_delta')}")
    for shape, t in answer["ladder_totals"].items():
        out.append(
            f"{shape:<7} sum of the rungs {t['sum_us']:+.1f} us; the default Trainer {t['defaults_delta_us']:+.1f} us; "
            f"remainder (interactions) {t['remainder_us']:+.1f} us [{t['remainder_low_us']:+.1f}, "
            f"{t['remainder_high_us']:+.1f}]"
        )
    for shape, counts in answer["instructions"]["shapes"].items():
        for impl, c in counts.items():
            delta = f"  {c['delta'] / 1e6:+.3f} M" if c.get("delta") is not None and impl != PLAIN else ""
            rate = f"  ({c['per_us']:,.0f} per us of its time)" if c.get("per_us") else ""
            out.append(f"{shape:<7} {impl:<24} {c['per_step'] / 1e6:8.3f} M instructions/step{delta}{rate}")
    if answer["instructions"]["unavailable"]:
        out.append(answer["instructions"]["unavailable"])
    if answer.get("targets"):
        out.append(targets.line(answer["targets"]))
    if answer.get("stopped"):
        out.append(
            f"{answer['rounds']} rounds in {answer['timed_s']:.0f} s ({answer['stopped']}: target half-width "
            f"{answer['target']:.0%} of the delta, budget {answer['budget_s']:.0f} s); "
            f"{len(answer['left_out'])} pairs left out (drift)"
        )
    out += [f"FAILED: {line}" for line in answer["failed"]]
    return out
