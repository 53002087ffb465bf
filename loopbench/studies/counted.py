"""The counted probe: each headline variant's instructions per optimizer step under valgrind's callgrind, and no
timing rounds. A count does not move with the machine's neighbours, nor between these VMs, so it is what a CI
gate compares (analysis/compare.py). The variants run in two valgrind processes side by side, one per core.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from loopbench.analysis.probe import HEADLINE_IMPLS, counts_answer
from loopbench.launch.valgrind import beside
from loopbench.launch.valgrind import count as count_instructions
from loopbench.measure.env import code_digest
from loopbench.studies.overhead import count_plan

ROOT = Path(__file__).resolve().parents[2]
# what runs inside a counted window (the probe's loops, the harness's step) and how many steps it counts; its digest
# names the code counted
COUNTED_CODE = ("implementations/overhead_probe", "implementations/common.py", "loopbench/harness/run.py",
                "loopbench/measure/clock.py", "loopbench/measure/callgrind.py",
                "loopbench/studies/protocol.py")  # fmt: skip


def run(device: str, shape: str, lightning: str | None) -> dict[str, Any]:
    """Count every headline variant once, two processes at a time; the answer (analysis.probe.counts_answer) with
    the digest of the code counted and how long it took."""
    started = time.monotonic()
    cells = [dataclasses.replace(c, lightning=lightning) for c in count_plan(device, shape, HEADLINE_IMPLS)]
    with beside(2) as side:
        halves = [side.submit(count_instructions, half, 1800) for half in (cells[0::2], cells[1::2]) if half]
        results = [r for f in halves for r in f.result()]
    out = counts_answer(results)
    out["counted_with"]["probe_code"] = code_digest(ROOT, COUNTED_CODE)
    out["elapsed_s"] = round(time.monotonic() - started, 1)
    return out
