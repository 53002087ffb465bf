"""The command line's vocabulary, defined once: every option of every verb, and the bench's `--lb-*` mirror.

One word per idea, the same on every verb: `--repeats` is rounds (of a task cell's segments, or of the
overhead probe), `--fresh-runs` is runs in a process of their own, `--processes` is data parallelism and
nothing else. The bench (`pytest benchmarks --benchmark-only`) takes every `suite` option as
`--lb-<name>`, built from the same table, so the two cannot drift apart. Each help text ends with the
default.
"""

from __future__ import annotations

import argparse
import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import implementations
from loopbench.core.precision import PRECISIONS
from loopbench.core.trainers import FABRIC, TRAINERS
from loopbench.core.types import COMPILE_BACKENDS, COMPILE_MODES, LAUNCHERS
from loopbench.studies.protocol import AFTER, MIN_ROUNDS, SEGMENT_STEPS, SUITE_ROUNDS, SUITE_STEPS, TARGET

PRESETS = ("smoke", "quick", "full")
PUBLISHED = {  # where --publish writes each verb's report under reports/<machine>/
    "suite": "",
    "module": "own-module/<FACTORY>/ (runs compacted)",
    "history": "lightning-history/",
    "paycurve": "pay-curve/",
    "compile": "compile/ (several releases: compile/releases/)",
    "collectives": "multi-node/",
}
CELL = ("run", "parity")  # one cell: singular --task, --device, --precision
MATRIX = ("suite", "module")  # a matrix (and the bench): plural --tasks, --devices, --precisions
PROBES = ("overhead", "history", "paycurve")  # the overhead probe in rounds: on one release, or across releases
STUDIES = ("compile", "collectives")  # the tasks' cells along an axis of their own (torch.compile, collectives)


def override(text: str) -> tuple[str, object]:
    """KEY=VALUE of --set, the value read as a Python literal where it is one (else as a string)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def overrides(pairs: list[tuple[str, object]], pretrained: bool) -> dict[str, object]:
    """The task settings that --set and --pretrained ask for."""
    return dict(pairs) | ({"pretrained": True} if pretrained else {})


@dataclass(frozen=True)
class Option:
    name: str  # --<name> on the verbs, --lb-<name> on the bench
    verbs: tuple[str, ...]
    help: str
    kwargs: dict[str, Any] = field(default_factory=dict)  # argparse's: type, choices, nargs, action, metavar
    default: Any = None
    shown: str | None = None  # how --help names the default, where the value alone would not say it
    by_verb: dict[str, Any] = field(default_factory=dict)  # a verb's own default, where it differs
    help_by_verb: dict[str, str] = field(default_factory=dict)  # a verb's own help, where the meaning narrows
    shown_by_verb: dict[str, str] = field(default_factory=dict)  # how a verb's --help names its own default
    kwargs_by_verb: dict[str, dict[str, Any]] = field(default_factory=dict)  # a verb's own form (one value, or several)

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    def default_for(self, verb: str) -> Any:
        return self.by_verb.get(verb, self.default)

    def kwargs_for(self, verb: str) -> dict[str, Any]:
        return self.kwargs | self.kwargs_by_verb.get(verb, {})

    def help_for(self, verb: str) -> str:
        text = self.help_by_verb.get(verb, self.help)
        if self.kwargs.get("required"):
            return text
        value = self.default_for(verb)
        if verb in self.shown_by_verb:
            shown = self.shown_by_verb[verb]
        elif verb in self.by_verb or self.shown is None:
            shown = "off" if value is False else "none" if value is None else " ".join(map(str, _listed(value)))
        else:
            shown = self.shown
        return f"{text} (default: {shown})"


def _listed(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _o(name: str, verbs: tuple[str, ...], help: str, **kw: Any) -> Option:
    own = ("default", "shown", "by_verb", "help_by_verb", "shown_by_verb", "kwargs_by_verb")
    fields = {k: kw.pop(k) for k in own if k in kw}
    return Option(name, verbs, help, kw, **fields)


TASK_NAMES = implementations.TASKS + implementations.PROBES
MODULE_IMPLS = ["pytorch", "lightning", "lightning-defaults", "lightning-barebones"]  # a user's module: barebones too
OPTIONS: tuple[Option, ...] = (
    # what to run
    _o("task", CELL, f"the task ({', '.join(TASK_NAMES)}, a registered one, or a task's folder)",
       type=implementations.task_name, required=True, metavar="TASK"),
    _o("tasks", ("suite", *STUDIES), f"tasks: {', '.join(TASK_NAMES)}, registered ones, or tasks' folders", nargs="+",
       type=implementations.task_name, shown="every task", metavar="TASK"),
    _o("impl", ("run",), f"implementation: {', '.join(implementations.ALL_IMPLS)}",
       choices=tuple(implementations.ALL_IMPLS), metavar="IMPL", required=True),
    _o("impls", (*MATRIX, *STUDIES), "implementations (see --impl of run)", nargs="+",
       choices=tuple(implementations.ALL_IMPLS),
       metavar="IMPL", default=list(implementations.IMPLS), by_verb={"module": MODULE_IMPLS}),
    _o("against", ("parity",), "what is compared with the plain loop: a Lightning Trainer, or fabric",
       choices=(*TRAINERS, FABRIC), default="lightning"),
    _o("device", (*CELL, "overhead", "compile"), "cpu, cuda or cuda:N", default="cpu"),
    _o("devices", MATRIX, "devices", nargs="+", shown="cuda if visible, else cpu"),
    _o("precision", (*CELL, *STUDIES), "precision", choices=PRECISIONS, default="32-true"),
    _o("precisions", MATRIX, f"precisions: {', '.join(PRECISIONS)}", nargs="+", choices=PRECISIONS,
       metavar="PRECISION", shown="each device's usual set"),
    _o("preset", (*CELL, *MATRIX, *STUDIES), "smoke (tests), quick (CPU), full (GPU)",
       choices=PRESETS, shown="full on GPU, quick on CPU",
       by_verb={"run": "smoke", "parity": "smoke", "compile": "smoke", "collectives": "smoke"}),
    _o("seed", (*CELL, *MATRIX, *STUDIES), "random seed of data order, weights and noise", type=int, default=0),
    _o("seeds", ("parity",), "several seeds: a verdict per seed, and an equivalence test (TOST) of --metric",
       type=int, nargs="+"),
    _o("steps", (*CELL, *MATRIX, "overhead", *STUDIES), "optimizer steps (batches) per run",
       type=int, shown="the preset's", by_verb={"overhead": None, "collectives": 30},
       help_by_verb={"overhead": "steps per segment, a quarter warm up"},
       shown_by_verb={"overhead": f"{SEGMENT_STEPS}; with --after read, {AFTER['read'][1]}"}),
    _o("warmup-steps", (*CELL, *MATRIX, *STUDIES), "steps left out of the timing", type=int, shown="the preset's"),
    _o("batch-size", (*CELL, *MATRIX, "compile"), "samples per batch (per process)", type=int, shown="the preset's"),
    _o("data", (*CELL, *MATRIX), "synthetic (generated, offline) or real (torchvision's loaders)",
       choices=("synthetic", "real"), default="synthetic"),
    _o("data-dir", (*CELL, *MATRIX), "folder of the real data set (with --data real)"),
    _o("set", (*CELL, *MATRIX, "compile"), "override a task hyperparameter, e.g. --set lr=0.05 (repeatable)",
       action="append", type=override, metavar="KEY=VALUE", default=[], shown="none"),
    _o("pretrained", (*CELL, *MATRIX, "compile"), "efficientnet_binary: start from torchvision's ImageNet weights "
       "(local cache)", action="store_true", default=False),
    _o("compile", (*CELL, "compile"), "torch.compile: off, on (as each framework documents: the plain model, "
       "Fabric's model before setup, the LightningModule before fit) or inner (a Trainer: the module's own nets, in "
       "place)", choices=COMPILE_MODES, default="off", by_verb={"compile": list(COMPILE_MODES[1:])},
       kwargs_by_verb={"compile": {"nargs": "+", "choices": COMPILE_MODES[1:]}},
       help_by_verb={"compile": "torch.compile modes side by side (each beside the plain loop compiled)"}),
    _o("compile-backend", (*CELL, "compile"), "torch.compile's backend: inductor, or eager (dynamo's capture "
       "alone: graphs, breaks and recompiles in seconds)", choices=COMPILE_BACKENDS, default="inductor"),
    _o("cache", ("compile",), "inductor's on-disk cache at each run's start: cold (a new empty one every run), or "
       "warm (each variant keeps its own across its repeats, so its first run is cold)", choices=("cold", "warm"),
       default="cold"),
    _o("launcher", CELL, "who starts the processes: local (N on this machine, by loopbench), torchrun or slurm "
       "(this command is one rank of a job torchrun or srun started, on any nodes; docs/data-parallel.md)",
       choices=LAUNCHERS, default="local"),
    _o("join-timeout", CELL, "with --launcher torchrun or slurm: seconds a rank waits for the job's store",
       type=float, default=120.0),
    _o("processes", (*CELL, *MATRIX, "collectives"), "data parallel: N processes (DDP; gloo on CPU, nccl on CUDA)",
       type=int, shown="1", by_verb={"suite": [1], "module": [1], "collectives": 2},
       kwargs_by_verb={v: {"nargs": "+"} for v in MATRIX},
       help_by_verb={v: "data parallel: each task at each of these process counts, e.g. 1 2" for v in MATRIX}),
    _o("nodes", ("collectives",), "also run the installed release's cells as a job of two torchrun agents on this "
       "machine (on: where torchrun is installed)", choices=("on", "off"), default="on"),
    _o("lightning", (*CELL, "overhead", *MATRIX, *STUDIES), "Lightning releases to measure side by side (rounds "
       "alternate over them; installed on first use, hash-checked; see loopbench/core/releases.py), or a checkout or "
       "wheel of your own", nargs="+", shown="the installed one",
       kwargs_by_verb={v: {"nargs": None} for v in CELL},
       help_by_verb={v: "a Lightning release other than the installed one (installed on first use, hash-checked; "
                        "see loopbench/core/releases.py), or a checkout or wheel of your own" for v in CELL}),
    # how often, how long
    _o("versions", ("history",), "Lightning releases, oldest to newest (each installed on first use, "
       "hash-checked)", nargs="+", shown="every release in loopbench/core/releases.py"),
    # how often, how long
    _o("repeats", (*MATRIX, *PROBES), "sequential repeats: rounds of time-only segments per cell (a data-parallel "
       "or step-limited cell has none: its fresh runs are its samples)", type=int, default=None,
       shown="each task's own, its spec's HARNESS.rounds",
       by_verb={"overhead": MIN_ROUNDS, "history": MIN_ROUNDS, "paycurve": 8},
       help_by_verb={v: "sequential repeats: rounds, at least" for v in PROBES[:2]}
       | {"paycurve": "sequential repeats: rounds of every point and of the probe"}),
    _o("fresh-runs", (*MATRIX, *STUDIES), "fresh-process runs per implementation and cell (memory, the whole job, "
       "parity)", type=int, default=None, shown="1; 8 where a cell has no rounds: data parallel, step-limited cells",
       by_verb={"module": 2, "compile": 3, "collectives": 3},
       help_by_verb={"module": "fresh-process runs per implementation (memory, parity; two runs of one seed that "
                               "differ make the module not comparable)",
                     "compile": "fresh-process runs of each implementation and mode, alternated (a cold compile in "
                                "each)",
                     "collectives": "fresh-process runs per release: batches of processes, alternated"}),
    _o("probe-repeats", MATRIX, "overhead probe before the tasks: rounds of paired segments (0: no probe)",
       type=int, default=SUITE_ROUNDS),
    _o("probe-steps", MATRIX, "overhead probe: steps per segment", type=int, default=SUITE_STEPS),
    _o("budget", PROBES[:2], "seconds of timed rounds at most; rounds are added until the target is met",
       type=float, default=90.0, by_verb={"history": 1200.0}),
    _o("target", PROBES[:2], "stop adding rounds when every delta's 95%% half-width is within this fraction",
       type=float, default=TARGET),
    _o("slowdown-us", (*CELL, *MATRIX), "busy work added to every training step, in microseconds: a known "
       "slowdown, to check that a compare (loopbench compare, --benchmark-compare-fail) catches one", type=float,
       default=0.0, shown="0, none"),
    _o("counts", (*MATRIX, *PROBES), "instructions per step counted under valgrind's callgrind, one thread, where "
       "valgrind is installed: on (beside the timing), off, or only (the counts alone)", choices=("on", "off", "only"),
       default="off", by_verb={"overhead": "on", "history": "on", "paycurve": "on"},
       help_by_verb={**{v: "also count each CPU task cell's instructions per step under valgrind's callgrind, one "
                        "thread, after the timed runs (about 3 minutes per implementation for the GAN, more for the "
                        "convolutional tasks)" for v in MATRIX},
                     "overhead": "instructions per step of each variant under valgrind's callgrind: on (beside the "
                     "rounds), off, or only (each headline variant counted once, no rounds: the input of a CI gate, "
                     "docs/ci.md)",
                     "history": "also count instructions per step on every release (on or off)",
                     "paycurve": "also count the Trainers' instructions per step at the points that name a count, "
                     "after the rounds (only: the counts alone, added to an --out folder)"}),
    _o("points", ("paycurve",), "the points to measure, by name (see loopbench/analysis/paycurve.py)", nargs="+",
       shown="every point"),
    _o("probe", ("paycurve",), "also run the probe (off: add points to an --out folder whose probe ran)",
       choices=("on", "off"), default="on"),
    _o("ladder", ("history",), "also measure the ladder (each Trainer default's cost) on every release",
       action="store_true", default=False),
    _o("parity", ("history",), "also check parity (probe and every task, 32-true and bf16-mixed) on every release",
       choices=("on", "off"), default="on"),
    _o("shape", ("overhead",), "auto (one optimizer), manual (two, manual optimization) or both",
       choices=("auto", "manual", "both"), default="both"),
    _o("after", ("overhead",), "what each probe step does before the Trainer's work: nothing (a near-zero step: "
       "the floor) or read (64 MiB, as a real job's step leaves the caches: what real jobs paid, docs/pay-curve.md; "
       f"{AFTER['read'][1]} steps per segment unless --steps)", choices=tuple(AFTER), default="nothing"),
    _o("timeout", (*CELL, *MATRIX, "paycurve", *STUDIES), "seconds per run before it is killed (run: with "
       "--isolate, or in several processes)", type=float,
       default=1800.0),
    _o("isolate", ("run",), "run in a fresh process, as the suite does", action="store_true", default=False),
    # the verdict
    _o("metric", ("parity",), "final metric for the equivalence test", shown="the task's first"),
    _o("margin", ("parity",), "equivalence margin, in the metric's units", type=float, default=0.02),
    _o("fail-above", ("compare",), "exit 1 when a variant's extra instructions per step (else a resolved change "
       "in time) rose by more than this percent of OLD's", type=float),
    # where results go
    _o("json", (*CELL, "overhead"), "write the result as JSON to this file", type=Path),
    _o("out", (*MATRIX, *PROBES[1:], *STUDIES), "folder for results (appended as each run ends) and the report",
       type=Path, shown="runs/<machine>/<date-time>/"),
    _o("resume", MATRIX, "run only what --out does not hold yet (without --out: the newest run folder)",
       action="store_true", default=False),
    _o("plain", ("module",), "PKG.MOD:TRAIN, your own plain-PyTorch port of the job, in the place of the plain loop "
       "built from the module's hooks: train(module, data, steps) -> each step's loss (docs/ci.md); the job is then "
       "--steps optimizer steps", shown="the plain loop built from the module's hooks"),
    _o("publish", ("suite", "module", "history", "paycurve", "compile", "collectives"), "also write the report to "
       "the committed reports, reports/<machine>/", action="store_true", default=False,
       help_by_verb={verb: f"also write the report to the committed reports, reports/<machine>/{folder}" for verb,
                     folder in PUBLISHED.items()}),
)  # fmt: skip

EXAMPLES = {
    "run": "loopbench run --task cifar_cnn --impl lightning --precision bf16-mixed --steps 20",
    "parity": "loopbench parity --task mnist_gan --against lightning-defaults --precision bf16-mixed",
    "suite": "loopbench suite --tasks cifar_cnn --precisions 32-true --repeats 4",
    "module": "loopbench module examples.demos.factories:boring --precisions 32-true --out runs/boring",
    "overhead": "loopbench overhead --json overhead.json",
    "history": "loopbench history --versions 2.4.0 2.5.6 2.6.6 --publish",
    "paycurve": "loopbench paycurve --repeats 8 --publish",
    "compile": "loopbench compile --fresh-runs 6 --cache warm --steps 30 --publish",
    "collectives": "loopbench collectives --lightning 2.4.0 2.5.6 2.6.6 --fresh-runs 3 --publish",
    "report": "loopbench report runs/<machine>/<date-time> --out reports/<machine>",
    "compare": "loopbench compare old.json new.json --fail-above 10   # two `loopbench overhead --counts only` JSONs",
}


def for_verb(verb: str) -> list[Option]:
    return [o for o in OPTIONS if verb in o.verbs]


def add_to_parser(parser: argparse.ArgumentParser, verb: str) -> None:
    """The verb's options, as --<name>."""
    for o in for_verb(verb):
        parser.add_argument(
            f"--{o.name}", dest=o.dest, default=o.default_for(verb), help=o.help_for(verb), **o.kwargs_for(verb)
        )


def add_to_pytest(group: Any) -> None:
    """The suite's options as the bench's --lb-<name> (a pytest option group)."""
    for o in for_verb("suite"):
        group.addoption(f"--lb-{o.name}", dest=f"lb_{o.dest}", default=o.default_for("suite"), **_pytest(o))


def _pytest(o: Option) -> dict[str, Any]:
    return dict(o.kwargs_for("suite"), help=o.help_for("suite"))
