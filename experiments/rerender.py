"""Every committed report re-rendered by the current writers from its own committed runs, in place.

    python -m experiments.rerender reports

Each folder's writer is told by the JSON it keeps beside REPORT.md (history.json, paycurve.json, compile.json,
collectives.json; else the suite's report). Rendering is a pure function of the runs: a second pass changes no byte.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from loopbench.core.store import PUBLISHED_RESULTS_NAME, load_results
from loopbench.report import collectives, history, paycurve, write_report
from loopbench.report import compile as compile_report

WRITERS = {  # the file a study keeps beside its REPORT.md -> how it is written again
    "history.json": lambda runs, folder: history.write(
        runs, folder, measured=json.loads((folder / "history.json").read_text())
    ),
    "paycurve.json": paycurve.write,
    "compile.json": compile_report.write,
    "collectives.json": collectives.write,
}


def rerender(folder: Path) -> str:
    runs = load_results(folder / PUBLISHED_RESULTS_NAME)
    kind = next((name for name in WRITERS if (folder / name).exists()), None)
    if kind is None:
        write_report(runs, folder, PUBLISHED_RESULTS_NAME)
        return "suite"
    WRITERS[kind](runs, folder)
    return kind.removesuffix(".json")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    for report in sorted(Path(argv[0]).rglob("REPORT.md")):
        print(f"{rerender(report.parent)}: {report.parent}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
