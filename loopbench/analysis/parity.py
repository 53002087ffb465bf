"""Do two runs of the same cell give the same model? Bitwise, within a tolerance, or not at all.

What is expected depends on the cell: on CPU every kernel used is deterministic, so anything short of
bitwise-equal losses and weights is a mismatch. On CUDA some backward kernels accumulate with atomics
(max-pool, adaptive pooling, some conv weight-gradient algorithms), so two runs of the *same* loop
already differ in the last bits; there the per-step losses must agree within the relative tolerance
below, stated per precision.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from loopbench.analysis.logged import close, first_difference
from loopbench.core.precision import device_type
from loopbench.core.types import RunResult

VERDICTS = ("bitwise", "within_tolerance", "mismatch")

# Largest relative difference of any per-step loss allowed on CUDA, per precision.
CUDA_LOSS_RTOL = {
    "32-true": 1e-3,
    "16-mixed": 1e-2,
    "bf16-mixed": 3e-2,  # bf16 keeps 8 mantissa bits: rounding flips amplify faster
}


def expected_strength(device: str, precision: str) -> tuple[str, float | None]:
    """('bitwise', None) on CPU; ('within_tolerance', rtol) on CUDA."""
    if device_type(device) == "cpu":
        return "bitwise", None
    return "within_tolerance", CUDA_LOSS_RTOL[precision]


@dataclass
class ParityReport:
    verdict: str
    expected: str
    holds: bool
    reference: str
    candidate: str
    steps: int
    losses_equal: bool
    weights_equal: bool
    max_abs_loss_diff: float
    max_rel_loss_diff: float
    max_abs_weight_diff: float | None
    rtol: float | None
    max_rel_weight_diff: float | None = None  # the largest |difference| of a tensor over its largest |weight|
    first_differing_step: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    # a tolerance's positive control: a nudged candidate and a second reference run (`with_control`)
    control: dict[str, Any] | None = None
    # what the module logged (a user's module): how many values, and the first that differs
    logged_values: int | None = None
    logged_difference: str | None = None
    # the whole job (epoch mode): what each side's validation computed and which weights it kept
    val_metrics: list[dict[str, Any]] | None = None  # per epoch: {"epoch", <reference impl>: {...}, <candidate>: {...}}
    val_metrics_equal: bool | None = None  # within VAL_METRICS_RTOL, every epoch, same number of epochs
    best_epochs: tuple[int | None, int | None] | None = None
    best_weights_equal: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        ok = "holds" if self.holds else "FAILS"
        where = "" if self.first_differing_step is None else f", first differing step {self.first_differing_step}"
        job = ""
        if self.val_metrics is not None:
            job = (
                f"; validation metrics {'equal' if self.val_metrics_equal else 'DIFFER'} over "
                f"{len(self.val_metrics)} validations"
            )
            if self.best_weights_equal is not None:
                job += (f", best epoch {' vs '.join(map(str, self.best_epochs))}, "
                        f"best weights {'equal' if self.best_weights_equal else 'differ'}")  # fmt: skip
        if self.logged_values is not None:
            job += f"; {self.logged_values} logged values " + (
                "equal" if self.logged_difference is None else f"DIFFER: {self.logged_difference}"
            )
        n = self.details.get("processes")
        ranks = f" on each of {n} processes" if n else ""
        rel = "" if self.rtol is None else f" (relative {self.max_rel_loss_diff:.2g}; tolerance {self.rtol:g})"
        weights = "equal" if self.weights_equal else "differ"
        if self.max_rel_weight_diff is not None and not self.weights_equal and self.rtol is not None:
            weights += f" by at most {self.max_rel_weight_diff:.2g} of a tensor's largest weight"
        return (
            f"{self.candidate} vs {self.reference}: {self.verdict} (expected {self.expected}: {ok}); "
            f"{self.steps} steps, max |loss diff| {self.max_abs_loss_diff:.3g}{rel}, "
            f"weights {weights}{ranks}{where}{job}{_control_line(self.control)}"
        )


def _losses(result: RunResult) -> dict[str, list[float]]:
    """Per-step losses by name; with several processes, every process's, named `loss@rank1` and so on."""
    if not result.ranks:
        return result.losses
    return {f"{name}@rank{r['rank']}": values for r in result.ranks for name, values in r["losses"].items()}


def _weights_compare(a: RunResult, b: RunResult) -> tuple[bool, float | None, float | None, str | None]:
    """(equal, max |difference|, max |difference| / the tensor's largest |weight|, the tensor with the largest
    difference), the last three where the weights themselves are at hand (a run in this process)."""
    if a.ranks or b.ranks:  # several processes: every process's weights, by digest
        digests = [[r["weights_digest"] for r in x.ranks] for x in (a, b)]
        return None not in digests[0] and digests[0] == digests[1], None, None, None
    if a.weights is not None and b.weights is not None:
        if a.weights.keys() != b.weights.keys():
            return False, math.inf, math.inf, None
        equal = all(torch.equal(a.weights[k], b.weights[k]) for k in a.weights)
        floats = [k for k in a.weights if a.weights[k].is_floating_point() and a.weights[k].numel()]
        diffs = {k: (a.weights[k].double() - b.weights[k].double()).abs().max().item() for k in floats}
        rel = [d / max(a.weights[k].double().abs().max().item(), 1e-12) for k, d in diffs.items()]
        largest = max(diffs, key=diffs.get, default=None)
        return equal, max(diffs.values(), default=0.0), max(rel, default=0.0), largest
    return a.weights_digest is not None and a.weights_digest == b.weights_digest, None, None, None


VAL_METRICS_RTOL = 1e-6  # the two sides compute the same metric objects over the same outputs (CPU)


def _same_epoch(a: dict[str, float], b: dict[str, float], rtol: float) -> bool:
    return a.keys() == b.keys() and all(close(a[k], b[k], rtol) for k in a)


def best_epochs_agree(reference: RunResult, candidate: RunResult, rtol: float | None) -> bool:
    """The same best epoch; where bitwise is not expected (rtol), also two epochs whose validations agree within
    rtol on the reference's side: the metrics tied within the tolerance, and either side may keep either."""
    a, b = reference.best_epoch, candidate.best_epoch
    if a == b or rtol is None or a is None or b is None:
        return a == b
    vals = reference.val_metrics
    return 0 < a <= len(vals) and 0 < b <= len(vals) and _same_epoch(vals[a - 1], vals[b - 1], rtol)


def _job_compare(reference: RunResult, candidate: RunResult, rtol: float | None = None) -> dict[str, Any]:
    """Per-epoch validation metrics and the kept weights of both sides; {} where neither validated. The metrics
    agree within VAL_METRICS_RTOL where bitwise is expected, within `rtol` (the cell's loss tolerance) elsewhere."""
    a, b = reference.val_metrics, candidate.val_metrics
    if not a and not b:
        return {}
    ref, cand = reference.config["impl"], candidate.config["impl"]
    rows = [
        {"epoch": i + 1, ref: a[i] if i < len(a) else None, cand: b[i] if i < len(b) else None}
        for i in range(max(len(a), len(b)))
    ]
    tolerance = VAL_METRICS_RTOL if rtol is None else rtol
    equal = len(a) == len(b) and all(_same_epoch(x, y, tolerance) for x, y in zip(a, b, strict=True))
    return {
        "val_metrics": rows,
        "val_metrics_equal": equal,
        "best_epochs_agree": best_epochs_agree(reference, candidate, rtol),
        "best_epochs": (reference.best_epoch, candidate.best_epoch),
        "best_weights_equal": None  # neither side kept a best (a job without a checkpoint that watches a metric)
        if reference.best_weights_digest is None and candidate.best_weights_digest is None
        else reference.best_weights_digest == candidate.best_weights_digest,
    }


def compare(reference: RunResult, candidate: RunResult, rtol: float | None = None) -> ParityReport:
    """Compare per-step losses and final weights of two successful runs.

    `rtol=None` asks for bitwise equality; a number also accepts losses within that relative error.
    """
    for r in (reference, candidate):
        if not r.ok:
            raise ValueError(f"cannot compare a run with status {r.status!r}: {r.message}")
    ref_losses, cand_losses = _losses(reference), _losses(candidate)
    if ref_losses.keys() != cand_losses.keys():
        raise ValueError(f"different losses recorded: {sorted(ref_losses)} vs {sorted(cand_losses)}")
    max_abs = max_rel = 0.0
    first_diff = None
    steps = 0
    for name in ref_losses:
        a, b = ref_losses[name], cand_losses[name]
        if len(a) != len(b):  # one side trained longer (an early stop, an epoch): it differs from the shorter's end
            first_diff = min(len(a), len(b)) if first_diff is None else min(first_diff, len(a), len(b))
            max_abs = max_rel = math.inf
        steps = max(steps, len(a))
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            d = abs(x - y) if math.isfinite(x) and math.isfinite(y) else (0.0 if x == y else math.inf)
            if d and first_diff is None:
                first_diff = i
            max_abs = max(max_abs, d)
            if d:
                max_rel = max(max_rel, d / max(abs(x), 1e-12) if math.isfinite(d) else math.inf)
    losses_equal = all(ref_losses[n] == cand_losses[n] for n in ref_losses)
    weights_equal, max_w, rel_w, largest = _weights_compare(reference, candidate)
    if losses_equal and weights_equal:
        verdict = "bitwise"
    elif rtol is not None and max_rel <= rtol and (rel_w is None or rel_w <= rtol):
        verdict = "within_tolerance"
    else:
        verdict = "mismatch"
    cfg = reference.run_config
    expected, _ = expected_strength(cfg.device, cfg.precision)
    holds = verdict == "bitwise" or (verdict == "within_tolerance" and expected == "within_tolerance")
    tolerant = rtol if expected == "within_tolerance" else None
    job = _job_compare(reference, candidate, tolerant)
    best_agree = job.pop("best_epochs_agree", True)
    if job:  # the whole job must agree too: the same metrics per epoch (within the tolerance), the same weights kept
        kept = job["best_weights_equal"] is not False or tolerant is not None
        holds = holds and job["val_metrics_equal"] and best_agree and kept
    both_logged = bool(reference.logged) and bool(candidate.logged)  # a team's port logs nothing: not compared
    logged = first_difference(reference.logged, candidate.logged, tolerant) if both_logged else None
    holds = holds and not logged
    return ParityReport(
        verdict=verdict,
        expected=expected,
        holds=holds,
        reference=reference.config["impl"],
        candidate=candidate.config["impl"],
        steps=steps,
        losses_equal=losses_equal,
        weights_equal=weights_equal,
        max_abs_loss_diff=max_abs,
        max_rel_loss_diff=max_rel,
        max_abs_weight_diff=max_w,
        rtol=rtol,
        max_rel_weight_diff=rel_w,
        first_differing_step=first_diff,
        details=({"processes": len(reference.ranks)} if reference.ranks else {})
        | ({"largest_weight_difference_in": largest} if largest and not weights_equal else {}),
        logged_values=sum(map(len, reference.logged.values())) if both_logged else None,
        logged_difference=logged,
        **job,
    )


def compare_cell(reference: RunResult, candidate: RunResult) -> ParityReport:
    """`compare` at the strength expected for the reference's device and precision."""
    cfg = reference.run_config
    _, rtol = expected_strength(cfg.device, cfg.precision)
    return compare(reference, candidate, rtol)


CONTROL_LR = 1.001  # a tolerance's positive control: the candidate again, its learning rate times this


def with_control(report: ParityReport, nudged: ParityReport, noise: ParityReport) -> ParityReport:
    """A tolerance verdict beside its positive control. `nudged`: the candidate with its learning rate times
    CONTROL_LR against the reference, which must come out a mismatch; `noise`: a second run of the reference
    against the first, the run-to-run noise. Where the nudged run passes the tolerance too, the tolerance cannot
    tell a changed job from the same one: the verdict does not hold, and the line gives the three differences."""
    blind = nudged.verdict != "mismatch"
    report.control = {
        "nudge": f"learning rate x{CONTROL_LR}",
        "caught": not blind,
        **{f"{name}_{k}": getattr(r, k) for name, r in (("nudged", nudged), ("noise", noise))
           for k in ("verdict", "max_rel_loss_diff", "max_rel_weight_diff")},
    }  # fmt: skip
    report.holds = report.holds and not blind
    return report


def _control_line(control: dict[str, Any] | None) -> str:
    if not control:
        return ""
    if control["caught"]:
        return f"; positive control ({control['nudge']}): a mismatch, as it must be"
    return (
        f"; NOT RESOLVED: the positive control ({control['nudge']}) passes the tolerance too (max relative loss "
        f"difference {control['nudged_max_rel_loss_diff']:.2g}); the plain loop against itself, run to run: "
        f"{control['noise_max_rel_loss_diff']:.2g}"
    )


def combine(reports: list[ParityReport], seeds: list[int]) -> dict[str, Any]:
    """One verdict over several seeds: the weakest per-seed verdict; holds only if every seed holds."""
    worst = max(reports, key=lambda r: VERDICTS.index(r.verdict))
    return {"verdict": worst.verdict, "expected": worst.expected, "holds": all(r.holds for r in reports),
            "reference": worst.reference, "candidate": worst.candidate, "steps": worst.steps,
            "losses_equal": all(r.losses_equal for r in reports),
            "weights_equal": all(r.weights_equal for r in reports),
            "max_abs_loss_diff": max(r.max_abs_loss_diff for r in reports),
            "max_rel_loss_diff": max(r.max_rel_loss_diff for r in reports),
            "seeds": {str(seed): r.to_dict() for seed, r in zip(seeds, reports, strict=True)}}  # fmt: skip
