"""What each `self.log` call pays since Lightning 2.4: a `.to(device)` of its result metric on every call.

    python -m experiments.log_to_device [--calls 2000] [--repeats 15] [--json PATH]

Lightning 2.4.0 changed `_ResultCollection.log` (PR #19814, "Fix moving keys to device in
ResultCollection") to call `self[key].to(value.device)` on every `self.log`, where 2.3 moved a key's
metric once, when it was first logged. `_ResultMetric.to` walks the metric's whole `__dict__` with
`apply_to_collection` even when everything already is on that device (issue #20388, "Major performance
degradation when multiple metrics/losses"; an open PR, #21769, short-circuits it). This times, in one
process and alternating (A B C / C B A over repeats), per call on a metric as `self.log` leaves it:

  to-device       `metric.to(torch.device("cpu"))`, what 2.4+ does on every call
  short-circuit   the same call, returning at once when the metric's value is already on that device
  nothing         the loop alone

and prints the median over repeats of each variant's time per call (us), the extra cost of `to-device`
over `short-circuit`, and, given the number of `self.log` calls per step of a task, what it adds per
step. It needs Lightning 2.x only for its `_ResultMetric`; nothing trains. The short-circuit leaves the
metric exactly as the full call does (tested).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

VARIANTS = ("to-device", "short-circuit", "nothing")


def logged_metric() -> Any:
    """A `_ResultMetric` as one `self.log("loss", value, on_step=True)` in training_step leaves it."""
    from pytorch_lightning.trainer.connectors.logger_connector.result import _Metadata, _ResultMetric, _Sync

    meta = _Metadata(fx="training_step", name="loss", on_step=True, on_epoch=False)
    meta.sync = _Sync()
    metric = _ResultMetric(meta, True)
    metric.update(torch.tensor(0.5), 32)
    return metric


def short_circuit(metric: Any, device: torch.device) -> Any:
    """`.to(device)`, returning at once when the metric's value is already on `device`."""
    value = getattr(metric, "value", None)
    if isinstance(value, torch.Tensor) and value.device == device:
        return metric
    return metric.to(device)


def _call(variant: str, metric: Any, device: torch.device) -> None:
    if variant == "to-device":
        metric.to(device)
    elif variant == "short-circuit":
        short_circuit(metric, device)


def per_call_us(variant: str, metric: Any, calls: int) -> float:
    device = torch.device("cpu")
    start = time.perf_counter()
    for _ in range(calls):
        _call(variant, metric, device)
    return (time.perf_counter() - start) / calls * 1e6


def measure(calls: int, repeats: int) -> dict[str, Any]:
    import pytorch_lightning

    metric = logged_metric()
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for k in range(repeats):
        for variant in VARIANTS if k % 2 == 0 else VARIANTS[::-1]:
            times[variant].append(per_call_us(variant, metric, calls))
    median = {v: statistics.median(t) for v, t in times.items()}
    extra = [a - b for a, b in zip(times["to-device"], times["short-circuit"], strict=True)]
    return {
        "pytorch_lightning": pytorch_lightning.__version__,
        "calls": calls,
        "repeats": repeats,
        "us_per_call": median,
        "extra_us_per_call": statistics.median(extra),
        "extra_us_per_call_range": [min(extra), max(extra)],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.log_to_device", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.calls < 1 or args.repeats < 2:
        parser.error("--calls must be at least 1 and --repeats at least 2")
    torch.set_num_threads(1)
    out = measure(args.calls, args.repeats)
    print(f"pytorch-lightning {out['pytorch_lightning']}, one thread, {args.repeats} repeats of {args.calls} calls:")
    for v, us in out["us_per_call"].items():
        print(f"  {v:<14} {us:8.2f} us per call")
    low, high = out["extra_us_per_call_range"]
    print(
        f"  .to(device) on every self.log costs {out['extra_us_per_call']:.2f} us per call more "
        f"(range over repeats {low:.2f} to {high:.2f})"
    )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
