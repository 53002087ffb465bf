"""Statistics for the two claims the suite makes beyond bitwise equality.

- Overhead: Lightning / PyTorch step time from paired adjacent runs, with a t interval over pairs,
  or "not resolved" with too few pairs. An interval that contains 1.0 means "no difference the data
  can show"; one below 1.0 for a Trainer that does strictly more work is called noise, not a win.
- Equivalence of final quality over seeds: two one-sided tests (TOST). Equivalent only when the
  difference of means is shown to lie inside +-margin; "p > 0.05 on a t-test" proves nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

MIN_PAIRS = 3  # fewer paired runs give no interval worth printing (t with 1 degree of freedom: x12.7)


@dataclass(frozen=True)
class Ratio:
    """Candidate / reference step time from paired runs, with a 95% interval once there are enough pairs."""

    ratio: float  # geometric mean over pairs of (candidate run's median step / reference run's)
    low: float | None  # None: not resolved
    high: float | None
    pairs: int
    pairs_needed: int  # to resolve the observed difference at the observed pair-to-pair spread
    more_work: bool  # the candidate does strictly more work than the reference (a Lightning Trainer)

    @property
    def resolved(self) -> bool:
        return self.low is not None

    @property
    def verdict(self) -> str:
        if not self.resolved:
            return "not resolved"
        if self.low > 1.0:
            return "slower"
        if self.high < 1.0:  # doing more work in less time is not a finding without an explanation
            return "noise (below 1 while doing more work)" if self.more_work else "faster"
        return "within noise"

    @property
    def half_width(self) -> float | None:
        """Half the interval's width, relative (0.02: +-2%)."""
        return (self.high - self.low) / 2 if self.resolved else None

    def label(self, target: float | None = None) -> str:
        if not self.resolved:
            text = f"{self.ratio:.2f}x, not resolved ({self.pairs} pairs; ~{self.pairs_needed} needed)"
            faster = self.more_work and self.ratio < 1  # more work in less time: what the pairs' noise did
            return text + (" (faster than the plain loop: noise)" if faster else "")
        text = f"{self.ratio:.3f}x [{self.low:.3f}, {self.high:.3f}]"
        if target is not None and self.half_width > target:
            text += f" (±{self.half_width:.1%}; ±{target:.0%} needs ~{self.pairs_needed} pairs)"
        return text


def paired_ratio(
    pairs: Sequence[tuple[float, float]], confidence: float = 0.95, more_work: bool = True, smallest: float = 0.02
) -> Ratio:
    """Ratio of step times from (reference, candidate) pairs of adjacent runs, e.g. run medians.

    Two fresh processes of one cell differ by several percent, and that run-to-run spread, not the
    spread of steps within a run, is what limits a comparison. Runs adjacent in time (the A B C / C B A
    order) share the machine's state, so each pair gives one log-ratio; the interval is a t interval
    over pairs. With fewer than MIN_PAIRS pairs the ratio is "not resolved", and `pairs_needed` says
    how many pairs would resolve the observed difference (at least `smallest`, relative) at the
    observed spread between pairs.
    """
    logs = np.log([c / r for r, c in pairs])
    n = len(logs)
    if n == 0:
        raise ValueError("need at least one pair of runs")
    mean = float(logs.mean())
    spread = float(logs.std(ddof=1)) if n > 1 else float("nan")
    effect = max(abs(mean), smallest)
    needed = max(MIN_PAIRS, math.ceil((2.0 * spread / effect) ** 2) + 1) if spread == spread else MIN_PAIRS
    if n < MIN_PAIRS:
        return Ratio(math.exp(mean), None, None, n, needed, more_work)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * spread / math.sqrt(n)
    return Ratio(math.exp(mean), math.exp(mean - half), math.exp(mean + half), n, needed, more_work)


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


@dataclass(frozen=True)
class Difference:
    """Candidate - reference from paired runs, with a 95% t interval over the pairs."""

    delta: float
    low: float
    high: float
    pairs: int


def paired_difference(pairs: Sequence[tuple[float, float]], confidence: float = 0.95) -> Difference:
    """Mean of (candidate - reference) over pairs of adjacent runs, with a t interval; needs 2 pairs."""
    d = np.array([c - r for r, c in pairs], float)
    if len(d) < 2:
        raise ValueError("an interval needs at least two pairs of runs")
    half = float(stats.t.ppf(0.5 + confidence / 2, len(d) - 1)) * float(d.std(ddof=1)) / math.sqrt(len(d))
    return Difference(float(d.mean()), float(d.mean()) - half, float(d.mean()) + half, len(d))


MIN_MEDIAN_PAIRS = 6  # the fewest pairs whose order statistics bound the median at 95% (n = 6: 96.9%)
# the median's standard error over the mean's on normal data, sqrt(pi / 2) = 1.253, rounded: how many more pairs
# the median needs than the mean for one width (pairs_needed)
MEDIAN_EFFICIENCY = 1.25


def robust_difference(d: Sequence[float], confidence: float = 0.95) -> Difference:
    """The median of per-pair differences with a distribution-free interval (order statistics): a pair hit by
    the machine's drift moves the mean and the t interval, not this. Fewer than MIN_MEDIAN_PAIRS pairs: the
    mean with a t interval (needs 2)."""
    values = sorted(float(x) for x in d)
    n = len(values)
    if n < MIN_MEDIAN_PAIRS:
        return paired_difference([(0.0, v) for v in values], confidence)
    # the largest k with P(Binomial(n, 1/2) < k) <= (1 - confidence) / 2: [x_(k), x_(n+1-k)] holds the median
    k = max(int(stats.binom.ppf((1 - confidence) / 2, n, 0.5)), 1)
    while k > 1 and stats.binom.cdf(k - 1, n, 0.5) > (1 - confidence) / 2:
        k -= 1
    return Difference(float(np.median(values)), values[k - 1], values[n - k], n)


def robust_ratio(
    pairs: Sequence[tuple[float, float]], more_work: bool = True, target: float = 0.02, confidence: float = 0.95
) -> Ratio:
    """Candidate / reference from (reference, candidate) pairs of one round each: the median log-ratio with
    a distribution-free interval (robust_difference); "not resolved" below MIN_MEDIAN_PAIRS pairs.
    `pairs_needed`: about how many pairs would bring the half-width to `target` at the observed spread."""
    logs = [math.log(c / r) for r, c in pairs]
    n = len(logs)
    mean = sum(logs) / n
    spread = float(np.std(logs, ddof=1)) if n > 1 else float("nan")
    needed = (
        max(MIN_MEDIAN_PAIRS, math.ceil((2.0 * MEDIAN_EFFICIENCY * spread / target) ** 2))
        if spread == spread
        else n + 1
    )
    if n < MIN_MEDIAN_PAIRS:
        return Ratio(math.exp(mean), None, None, n, needed, more_work)
    d = robust_difference(logs, confidence)
    return Ratio(math.exp(d.delta), math.exp(d.low), math.exp(d.high), n, needed, more_work)


def agreement(low: float | None, high: float | None, predicted_low: float | None, predicted_high: float | None) -> str:
    """The one meaning of "agrees" in every report: the measured interval [low, high] and the prediction's
    interval overlap. `measured above` / `measured below` where they do not; `–` where either is missing."""
    if low is None or high is None or predicted_low is None or predicted_high is None:
        return "–"
    if any(x != x for x in (low, high, predicted_low, predicted_high)):  # NaN: no interval
        return "–"
    if low > predicted_high:
        return "measured above"
    return "measured below" if high < predicted_low else "agrees"


def sign_test(k: int, n: int) -> float:
    """Two-sided p of k or more (or as few) of n on one side, were each side equally likely."""
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(max(k, n - k), n + 1)) / 2**n
    return min(1.0, 2 * tail)
