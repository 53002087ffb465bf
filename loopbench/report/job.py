"""The report's "between epochs" table: what the whole job spends outside its training steps.

Per cell and implementation: seconds per validation, per checkpoint write and for Lightning's sanity
check, the whole job's time, and each Lightning variant's validation time over the plain loop's from
runs paired by repeat (a ratio with its interval, or "not resolved", as for the steps).
"""

from __future__ import annotations

import statistics

import pandas as pd

from loopbench.analysis import stats
from loopbench.analysis.grouping import by_group, placement
from loopbench.core.trainers import is_lightning
from loopbench.core.types import RunResult


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def between_epochs(results: list[RunResult]) -> pd.DataFrame:
    rows = []
    for (task, device, precision, *_, processes, lightning), impls in by_group(results).items():
        device = placement(device, processes, lightning)
        runs = {impl: [r for r in rs if r.ok and r.val_metrics] for impl, rs in impls.items()}
        plain = {r.config["repeat"]: _mean(r.between_steps_s["validation"]) for r in runs.get("pytorch", [])}
        for impl, rs in runs.items():
            if not rs:
                continue
            row = {
                "task": task,
                "device": device,
                "precision": precision,
                "impl": impl,
                "epochs validated": _median([len(r.val_metrics) for r in rs]),
                "validation s/epoch": _median([_mean(r.between_steps_s.get("validation", [])) for r in rs]),
                "checkpoint s/write": _median([_mean(r.between_steps_s.get("checkpoint", [])) for r in rs]),
                "sanity check s": _median([_mean(r.between_steps_s.get("sanity check", [])) for r in rs]),
                "whole job s": _median([r.job_s for r in rs]),
            }
            mine = {r.config["repeat"]: _mean(r.between_steps_s["validation"]) for r in rs}
            pairs = [(plain[k], mine[k]) for k in sorted(plain.keys() & mine.keys())]
            if impl != "pytorch" and pairs:
                r = stats.paired_ratio(pairs, more_work=is_lightning(impl))  # the same validation, and hooks
                row["validation time vs plain"] = r.label() + (f" ({r.verdict})" if r.resolved else "")
            rows.append(row)
    return pd.DataFrame(rows)


INTRO = (
    "In epoch mode (`validate_every_epoch`) each implementation validates on the held-out split after every "
    "epoch through its own path (Lightning: `validation_step` + torchmetrics objects logged with `self.log_dict`; "
    "the plain loop: `model.eval()`, `torch.no_grad()`, the same metric objects), keeps the best weights "
    "(`ModelCheckpoint(monitor=..., mode=...)`: a full checkpoint with optimizer state; the plain loop: "
    "`torch.save` of the state dict) and may stop early. That time is kept out of the step times above; here "
    "it is per validation and per checkpoint write, medians over runs. Lightning's default Trainer also runs "
    "a sanity check (2 validation batches) before training, which also takes the first pass's one-time costs "
    "out of its first epoch's validation: a validation ratio below 1 is that, or noise."
)
