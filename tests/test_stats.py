import numpy as np

from loopbench.stats import median_ratio, tost

rng = np.random.default_rng(0)


def test_same_distribution_is_within_noise():
    a, b = rng.normal(10, 1, 200), rng.normal(10, 1, 200)
    r = median_ratio(a, b)
    assert r.low < 1.0 < r.high and r.verdict == "within noise"


def test_clearly_slower_is_slower_and_interval_brackets_the_ratio():
    a, b = rng.normal(10, 0.5, 100), rng.normal(12, 0.5, 100)
    r = median_ratio(a, b)
    assert r.verdict == "slower" and r.low <= r.ratio <= r.high and abs(r.ratio - 1.2) < 0.05


def test_tost_equivalent_when_means_agree_within_margin():
    a, b = rng.normal(0.80, 0.01, 8), rng.normal(0.80, 0.01, 8)
    assert tost(a, b, margin=0.02).equivalent


def test_tost_not_equivalent_when_means_differ_or_data_too_few_to_tell():
    assert not tost(rng.normal(0.80, 0.01, 8), rng.normal(0.85, 0.01, 8), margin=0.02).equivalent
    # same means, but far too noisy for the margin: absence of evidence is not equivalence
    assert not tost(rng.normal(0.8, 0.2, 3), rng.normal(0.8, 0.2, 3), margin=0.01).equivalent


def test_tost_on_identical_values():
    assert tost([0.5, 0.5], [0.5, 0.5], margin=0.01).equivalent
