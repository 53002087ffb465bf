"""Statistics for the two claims the suite makes beyond bitwise equality.

- Overhead: Lightning / PyTorch median step time, with a bootstrap confidence interval. An interval
  that contains 1.0 means "no difference the data can show", never a win or a loss.
- Equivalence of final quality over seeds: two one-sided tests (TOST). Equivalent only when the
  difference of means is shown to lie inside +-margin; "p > 0.05 on a t-test" proves nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Ratio:
    ratio: float  # candidate / reference median step time
    low: float
    high: float
    confidence: float

    @property
    def verdict(self) -> str:
        if self.low > 1.0:
            return "slower"
        if self.high < 1.0:
            return "faster"
        return "within noise"


def median_ratio(
    reference_runs: Sequence[Sequence[float]],
    candidate_runs: Sequence[Sequence[float]],
    confidence: float = 0.95,
    n_resamples: int = 2_000,
    seed: int = 0,
) -> Ratio:
    """Ratio of median step times (candidate / reference) with a two-level bootstrap interval.

    Each side is a list of runs, each run a list of steady-state step times. Steps of one run share
    that run's conditions (process, allocator, machine load), so they are not independent draws:
    pooling them and resampling steps would claim a precision the data does not have. Each bootstrap
    replicate therefore resamples runs first, then steps within each chosen run (a cluster bootstrap).
    With a single run per side it reduces to the ordinary bootstrap over steps.
    """
    ref_runs = [np.asarray(r, float) for r in reference_runs if len(r)]
    cand_runs = [np.asarray(r, float) for r in candidate_runs if len(r)]
    if sum(map(len, ref_runs)) < 2 or sum(map(len, cand_runs)) < 2:
        raise ValueError("need at least two step times on each side")
    rng = np.random.default_rng(seed)

    def replicate(runs: list[np.ndarray]) -> float:
        chosen = rng.integers(len(runs), size=len(runs))
        return float(np.median(np.concatenate([rng.choice(runs[i], size=len(runs[i])) for i in chosen])))

    ratios = np.array([replicate(cand_runs) / replicate(ref_runs) for _ in range(n_resamples)])
    alpha = (1 - confidence) / 2
    low, high = np.quantile(ratios, [alpha, 1 - alpha])
    ratio = float(np.median(np.concatenate(cand_runs)) / np.median(np.concatenate(ref_runs)))
    return Ratio(ratio, float(low), float(high), confidence)


@dataclass(frozen=True)
class Equivalence:
    difference: float  # mean(candidate) - mean(reference)
    margin: float
    p_value: float  # the larger of the two one-sided p-values
    equivalent: bool
    alpha: float

    def to_dict(self) -> dict:
        return asdict(self)


def tost(
    reference: Sequence[float], candidate: Sequence[float], margin: float, alpha: float = 0.05, paired: bool = False
) -> Equivalence:
    """Two one-sided tests: is |mean(candidate) - mean(reference)| < margin?

    `paired=True` when the i-th values belong together (the same seed: same data order, same initial
    weights): the test is then on the per-seed differences, and far more powerful. Unpaired: Welch.
    """
    ref, cand = np.asarray(reference, float), np.asarray(candidate, float)
    if len(ref) < 2 or len(cand) < 2:
        raise ValueError("an equivalence test needs at least two seeds per implementation")
    if paired and len(ref) != len(cand):
        raise ValueError("paired values need the same number of seeds on both sides")
    diff = float(cand.mean() - ref.mean())
    if paired:
        d = cand - ref
        if np.all(d == d[0]):  # no spread in the differences: the decision is exact
            p = 0.0 if abs(diff) < margin else 1.0
        else:
            p_low = stats.ttest_1samp(d, -margin, alternative="greater").pvalue
            p_high = stats.ttest_1samp(d, margin, alternative="less").pvalue
            p = float(max(p_low, p_high))
    elif np.all(ref == ref[0]) and np.all(cand == cand[0]):  # no spread: the decision is exact
        p = 0.0 if abs(diff) < margin else 1.0
    else:
        p_low = stats.ttest_ind(cand + margin, ref, equal_var=False, alternative="greater").pvalue
        p_high = stats.ttest_ind(cand - margin, ref, equal_var=False, alternative="less").pvalue
        p = float(max(p_low, p_high))
    return Equivalence(diff, margin, p, p < alpha, alpha)
