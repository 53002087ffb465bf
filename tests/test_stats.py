import numpy as np

from loopbench.stats import median_ratio, tost

rng = np.random.default_rng(0)


def test_same_distribution_is_within_noise():
    a, b = rng.normal(10, 1, 200), rng.normal(10, 1, 200)
    r = median_ratio([a], [b])
    assert r.low < 1.0 < r.high and r.verdict == "within noise"


def test_clearly_slower_is_slower_and_interval_brackets_the_ratio():
    a, b = rng.normal(10, 0.5, 100), rng.normal(12, 0.5, 100)
    r = median_ratio([a], [b])
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


def test_paired_tost_sees_what_unpaired_cannot():
    """Seed-to-seed spread is large, the per-seed difference tiny: only the paired test can tell."""
    ref = rng.normal(0.8, 0.05, 6)
    cand = ref + rng.normal(0.0, 0.001, 6)
    assert tost(ref, cand, margin=0.01, paired=True).equivalent
    assert not tost(ref, cand, margin=0.01).equivalent


def test_paired_tost_on_identical_runs_is_exact():
    ref = [0.81, 0.77, 0.84]
    assert tost(ref, ref, margin=0.001, paired=True).p_value == 0.0
    assert not tost(ref, [x + 0.01 for x in ref], margin=0.005, paired=True).equivalent


def test_run_to_run_variation_widens_the_interval():
    """Three runs per side at levels 10% apart, the candidate 3% slower: pooled steps would call it
    'slower' with a tight interval; counting run-to-run variation, the data cannot tell."""
    ref = [rng.normal(level, 0.2, 60) for level in (9, 10, 11)]
    cand = [rng.normal(level + 0.3, 0.2, 60) for level in (9, 10, 11)]
    clustered = median_ratio(ref, cand)
    pooled = median_ratio([np.concatenate(ref)], [np.concatenate(cand)])
    assert pooled.verdict == "slower" and clustered.verdict == "within noise"
    assert clustered.high - clustered.low > 3 * (pooled.high - pooled.low)
