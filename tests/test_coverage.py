"""The intervals the reports print cover what they state, simulated at the pair counts the suite uses.

Data of three kinds: normal; skewed (lognormal, sigma 1: far more skewed than the log-ratios of step times these VMs
give); drifting (15% of the pairs shifted by 1 to 5 standard deviations, as a slow spell shifts a segment). The
order-statistic interval (robust_difference, robust_ratio, the in-place split) covers the median at its exact
binomial level on every kind; the t interval (fresh-run pairs: paired_ratio, paired_difference) holds 95% on normal
and drifting data and falls to about 82% on the skewed kind (docs/method.md states it); compare's bootstrap of two
medians holds at least 95%. Each test prints the nominal and the observed coverage (`pytest -rP` shows them).
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
from scipy import stats as scipy_stats

from loopbench.analysis import stats
from loopbench.analysis.compare import bootstrap_interval

REPEATS = 1000  # the observed coverage's standard error at 95%: 0.7 points
rng = np.random.default_rng(2024)  # reseeded by each test, so that a test's draws do not depend on the order


@pytest.fixture(autouse=True)
def _seeded(request):
    rng.bit_generator.state = np.random.default_rng(zlib.crc32(request.node.name.encode())).bit_generator.state


def _drifting(n: int) -> np.ndarray:
    return rng.normal(0, 1, n) + (rng.random(n) < 0.15) * rng.uniform(1, 5, n)


_big = _drifting(2_000_000)
KINDS = {  # name: (draw n values, their distribution's median, its mean)
    "normal": (lambda n: rng.normal(0, 1, n), 0.0, 0.0),
    "skewed": (lambda n: rng.lognormal(0, 1, n), 1.0, math.exp(0.5)),
    "drifting": (_drifting, float(np.median(_big)), float(_big.mean())),
}


def _report(what: str, nominal: float, observed: float, draws: int = REPEATS) -> str:
    line = f"{what}: nominal {nominal:.1%}, observed {observed:.1%} over {draws} draws"
    print(line)
    return line


def _exact_level(n: int, confidence: float = 0.95) -> float:
    """The coverage of [x_(k), x_(n+1-k)] for the median, k the largest with 2 P(Binomial(n, 1/2) < k) <= 5%."""
    k = max(k for k in range(1, n // 2 + 1) if k == 1 or 2 * scipy_stats.binom.cdf(k - 1, n, 0.5) <= 1 - confidence)
    return 1 - 2 * scipy_stats.binom.cdf(k - 1, n, 0.5)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [6, 8, 12])
def test_the_order_statistic_interval_covers_the_median_at_its_exact_level(kind, n):
    draw, median, _ = KINDS[kind]
    hits = 0
    for _ in range(REPEATS):
        d = stats.robust_difference(draw(n))
        hits += d.low <= median <= d.high
    k = 1 if n < 12 else 3  # the order statistics robust_difference takes at these n
    nominal = 1 - 2 * scipy_stats.binom.cdf(k - 1, n, 0.5)
    assert abs(hits / REPEATS - nominal) < 0.025, _report(
        f"order statistics, {kind}, {n} pairs", nominal, hits / REPEATS
    )
    _report(f"order statistics, {kind}, {n} pairs", nominal, hits / REPEATS)


def test_robust_ratio_covers_the_median_ratio_of_step_times():
    true = 1.05  # the candidate's step is 5% longer; each round's two steps drift together, and apart by noise
    hits = 0
    for _ in range(REPEATS):
        drift = rng.lognormal(0, 0.3, 6)
        plain = drift * rng.lognormal(0, 0.05, 6)
        mine = true * drift * rng.lognormal(0, 0.05, 6)
        r = stats.robust_ratio(list(zip(plain, mine, strict=True)))
        hits += r.low <= true <= r.high
    nominal = 1 - 2 / 2**6
    assert abs(hits / REPEATS - nominal) < 0.025, _report("robust_ratio, 6 rounds", nominal, hits / REPEATS)


@pytest.mark.parametrize(("kind", "band"), [("normal", (0.93, 0.97)), ("drifting", (0.91, 0.97)),
                                            ("skewed", (0.78, 0.87))])  # fmt: skip
@pytest.mark.parametrize("n", [3, 8])
def test_the_t_interval_over_fresh_run_pairs_covers_the_mean_as_stated(kind, band, n):
    draw, _, mean = KINDS[kind]
    hits = 0
    for _ in range(REPEATS):
        d = stats.paired_difference([(0.0, v) for v in draw(n)])
        hits += d.low <= mean <= d.high
    observed = hits / REPEATS
    assert band[0] <= observed <= band[1], _report(f"t interval, {kind}, {n} pairs", 0.95, observed)
    _report(f"t interval, {kind}, {n} pairs", 0.95, observed)


@pytest.mark.parametrize("kind", KINDS)
def test_compares_bootstrap_of_two_medians_covers_their_difference(kind):
    draw, _, _ = KINDS[kind]
    repeats = 300  # each draws 2 x 4,000 resamples
    hits = 0
    for i in range(repeats):
        low, high = bootstrap_interval(list(draw(6)), list(draw(6) + 1.0), seed=i)
        hits += low <= 1.0 <= high
    what = f"bootstrap, {kind}, 6 rounds a side"
    assert hits / repeats >= 0.92, _report(what, 0.95, hits / repeats, repeats)
    _report(what, 0.95, hits / repeats, repeats)
