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


# -- a job that marks its phases (a user's module): where its time goes -------------------------------------------

PHASES = ("start-up", "training steps", "validation", "epoch ends", "the rest", "whole job")


def _phases(r: RunResult) -> dict[str, float]:
    steps = sum(r.step_times_s)
    validation = sum(r.between_steps_s.get("validation", []))
    epoch_ends = sum(r.between_steps_s.get("epoch end", []))
    parts = {"start-up": r.startup_s, "training steps": steps, "validation": validation, "epoch ends": epoch_ends}
    return parts | {"the rest": r.job_s - sum(parts.values()), "whole job": r.job_s}


def phases(results: list[RunResult]) -> pd.DataFrame:
    """Per implementation, the seconds of each phase of the whole job (medians over its fresh runs), and each
    Lightning variant's extra in each over the plain loop's run of the same repeat, with its interval."""
    rows = []
    fresh = [r for r in results if not r.config.get("slot") and r.config.get("clock", "time") == "time"]
    for (task, device, precision, *_, processes, lightning), impls in by_group(fresh).items():
        runs = {impl: [r for r in rs if r.ok and r.startup_s is not None and r.job_s] for impl, rs in impls.items()}
        plain = {r.config["repeat"]: _phases(r) for r in runs.get("pytorch", [])}
        for impl, rs in runs.items():
            if not rs:
                continue
            row = {"task": task, "device": placement(device, processes, lightning), "precision": precision,
                   "impl": impl, "runs": len(rs)}  # fmt: skip
            mine = {r.config["repeat"]: _phases(r) for r in rs}
            for phase in PHASES:
                row[f"{phase} s"] = _median([m[phase] for m in mine.values()])
                pairs = [(plain[k][phase], mine[k][phase]) for k in sorted(plain.keys() & mine.keys())]
                if impl != "pytorch" and len(pairs) >= 2:
                    d = stats.paired_difference(pairs)
                    row[f"{phase}: extra s"] = f"{d.delta:+.3g} [{d.low:+.3g}, {d.high:+.3g}]"
                elif impl != "pytorch" and pairs:
                    row[f"{phase}: extra s"] = f"{pairs[0][1] - pairs[0][0]:+.3g} (one pair: no interval)"
            rows.append(row)
    return pd.DataFrame(rows)


PHASES_INTRO = (
    "The whole job as each side ran it, in seconds (medians over fresh runs): `start-up`, from the job's start "
    "(the model built, the Trainer made) to its first batch, the sanity check included; `training steps`, the "
    "steps' own time; `validation`, every validation; `epoch ends`, from an epoch's last step to the next epoch's "
    "first batch, less validation (epoch-end hooks, schedulers, checkpoints, loggers); `the rest`, what is left "
    "of the whole job (the end of training, teardown). `extra`: each Lightning variant's over the plain loop's "
    "run of the same repeat, with a 95% t interval over the pairs. The in-place split above is the per-step answer."
)
