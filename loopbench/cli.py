"""loopbench run | parity | suite | module | overhead | history | paycurve | compile | report | compare.

The parser, from the table of options (options.py); the verbs are in commands/.

Bad input (unknown names, a device that is not there, a missing data folder, a cell an
implementation cannot run as labelled) ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from loopbench import options
from loopbench.core.types import UsageError

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
    def v(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return f"loopbench {v('loopbench')}, torch {v('torch')}, pytorch-lightning {v('pytorch-lightning')}"


# each verb's function, "module:function" under loopbench.commands, imported when the verb runs: --help and a
# refused argument answer without importing torch
VERBS = {
    "run": ("train one cell and print its measurements", "cells:cmd_run"),
    "parity": ("train pytorch and a Lightning variant; exit 0 if parity holds", "cells:cmd_parity"),
    "suite": ("run a matrix of cells and write the report into a run folder", "cells:cmd_suite"),
    "module": ("your own LightningModule: a plain loop from its hooks against the Trainers", "module:cmd_module"),
    "overhead": ("what a Trainer costs per optimizer step: the near-zero-compute probe", "probe:cmd_overhead"),
    "history": ("the overhead probe and parity across Lightning releases, and what changed", "probe:cmd_history"),
    "paycurve": ("the pay curve measured: real tasks over two decades of step time vs the probe", "probe:cmd_paycurve"),
    "compile": ("torch.compile on every side: compile time, graph breaks, recompiles, speed, parity",
                "compile:cmd_compile"),
    "collectives": ("data parallel: the collectives of each step per release, and two torchrun nodes on this machine",
                    "collectives:cmd_collectives"),
    "report": ("turn saved results (files or folders, merged) into REPORT.md and figures", "results:cmd_report"),
    "compare": ("what changed between two result sets or counted probes: the CI gate on instruction counts",
                "results:cmd_compare"),
}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="loopbench", description=__doc__.split("\n\n")[0], formatter_class=_Help)
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for verb, (help, func) in VERBS.items():
        p = sub.add_parser(
            verb, help=help, description=help, epilog=f"example:\n  {options.EXAMPLES[verb]}", formatter_class=_Help
        )
        options.add_to_parser(p, verb)
        if verb == "overhead":  # refused by name: the probe is one process (see commands/probe.py)
            p.add_argument("--processes", type=int, help=argparse.SUPPRESS)
        if verb == "compare":
            p.add_argument("old", type=Path, help="the earlier results: a results.json / results.jsonl or its folder")
            p.add_argument("new", type=Path, help="the later results")
        if verb == "module":
            p.add_argument(
                "factory",
                help="PKG.MOD:FACTORY, a function that returns a LightningModule or "
                "(module, DataLoader or LightningDataModule); imported from the current folder too",
            )
        if verb == "report":
            p.add_argument("results", nargs="+", type=Path, help="results.json / results.jsonl files, or their folders")
            p.add_argument("--out", type=Path, required=True, help="the report's folder")
        p.set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv

    where, name = args.func.split(":")
    try:
        return getattr(importlib.import_module(f"loopbench.commands.{where}"), name)(args)
    except UsageError as e:
        return _usage_error(str(e))


if __name__ == "__main__":
    sys.exit(main())
