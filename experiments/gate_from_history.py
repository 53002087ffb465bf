"""The counted probe's JSON for each release, from the counts `loopbench history` made on another machine.

    python -m experiments.gate_from_history HISTORY_FOLDER OUT_FOLDER VERSION...

`loopbench history` counts the probe on every release beside its rounds (two counts of each headline variant).
This writes, per release, what `loopbench overhead --counts only` writes (analysis.probe.counts_answer over that
release's counts of the one-optimizer shape), so that `loopbench compare` can set counts made on two machines side
by side. The history's runs record no digest of the probe's code: the JSON's is null, and compare then checks
Python and torch alone (their commit is in the history report).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from loopbench.analysis.probe import counts_answer
from loopbench.core.store import load_results


def main(argv: list[str]) -> int:
    folder, out, versions = Path(argv[0]), Path(argv[1]), argv[2:]
    runs = load_results(folder)
    counted = [
        r for r in runs if r.config.get("clock") == "instructions" and r.config["overrides"].get("shape") == "auto"
    ]
    out.mkdir(parents=True, exist_ok=True)
    for version in versions:
        mine = [r for r in counted if r.env.get("pytorch_lightning") == version]
        if not mine:
            print(f"{version}: no counts in {folder}", file=sys.stderr)
            return 2
        answer = counts_answer(mine) | {
            "made_from": f"{folder} (loopbench history, commit {mine[0].env.get('commit')})"
        }
        answer["counted_with"]["probe_code"] = None
        (out / f"{version}.json").write_text(json.dumps(answer, indent=1) + "\n")
        print(f"{version}: {out / f'{version}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
