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
    reference: Sequence[float],
    candidate: Sequence[float],
    confidence: float = 0.95,
    n_resamples: int = 2_000,
    seed: int = 0,
) -> Ratio:
    """Ratio of medians with a percentile-bootstrap interval (two independent samples of step times)."""
    ref, cand = np.asarray(reference, float), np.asarray(candidate, float)
    if len(ref) < 2 or len(cand) < 2:
        raise ValueError("need at least two step times on each side")

    def statistic(c, r, axis=-1):
        return np.median(c, axis=axis) / np.median(r, axis=axis)

    res = stats.bootstrap(
        (cand, ref),
        statistic,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
        vectorized=True,
    )
    return Ratio(
        float(statistic(cand, ref)), float(res.confidence_interval.low), float(res.confidence_interval.high), confidence
    )


@dataclass(frozen=True)
class Equivalence:
    difference: float  # mean(candidate) - mean(reference)
    margin: float
    p_value: float  # the larger of the two one-sided p-values
    equivalent: bool
    alpha: float

    def to_dict(self) -> dict:
        return asdict(self)


def tost(reference: Sequence[float], candidate: Sequence[float], margin: float, alpha: float = 0.05) -> Equivalence:
    """Welch two one-sided tests: is |mean(candidate) - mean(reference)| < margin?"""
    ref, cand = np.asarray(reference, float), np.asarray(candidate, float)
    if len(ref) < 2 or len(cand) < 2:
        raise ValueError("an equivalence test needs at least two seeds per implementation")
    diff = float(cand.mean() - ref.mean())
    if np.all(ref == ref[0]) and np.all(cand == cand[0]):  # no spread: the test is exact
        p = 0.0 if abs(diff) < margin else 1.0
    else:
        p_low = stats.ttest_ind(cand + margin, ref, equal_var=False, alternative="greater").pvalue
        p_high = stats.ttest_ind(cand - margin, ref, equal_var=False, alternative="less").pvalue
        p = float(max(p_low, p_high))
    return Equivalence(diff, margin, p, p < alpha, alpha)
