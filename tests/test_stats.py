import numpy as np
import pytest

from loopbench.analysis.stats import paired_difference, paired_ratio, tost

rng = np.random.default_rng(0)


def _pairs(ratio, n, run_spread=0.10, pair_noise=0.01, seed=1):
    """n pairs of run medians: runs wander by `run_spread`, the pair partner is `ratio` x slower."""
    g = np.random.default_rng(seed)
    levels = np.exp(g.normal(0, run_spread, n))
    return [(lv, lv * ratio * np.exp(g.normal(0, pair_noise))) for lv in levels]


def test_the_paired_interval_covers_the_true_ratio_about_95_percent_of_the_time():
    covered = [paired_ratio(_pairs(1.05, 5, seed=s)) for s in range(400)]
    assert 0.92 < np.mean([r.low < 1.05 < r.high for r in covered]) < 0.98


def test_paired_interval_finds_a_known_ratio_despite_run_to_run_spread():
    r = paired_ratio(_pairs(1.05, 8))
    assert r.resolved and r.low < 1.05 < r.high and r.verdict == "slower"
    assert r.high - r.low < 0.03  # pairing removes the 10% run-to-run spread


def test_same_speed_is_within_noise():
    r = paired_ratio(_pairs(1.0, 8))
    assert r.low < 1.0 < r.high and r.verdict == "within noise"


def test_too_few_pairs_are_not_resolved_and_say_how_many_are_needed():
    r = paired_ratio(_pairs(1.02, 2, pair_noise=0.05))
    assert not r.resolved and r.verdict == "not resolved" and r.pairs == 2 and r.pairs_needed >= 3
    assert "not resolved (2 pairs; ~" in r.label()


def test_more_work_in_less_time_is_called_noise_not_faster():
    pairs = _pairs(0.9, 6)
    assert paired_ratio(pairs, more_work=True).verdict == "noise (below 1 while doing more work)"
    assert paired_ratio(pairs, more_work=False).verdict == "faster"


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


def test_paired_difference_finds_a_known_delta_under_run_to_run_drift():
    g = np.random.default_rng(3)
    levels = 150 + g.normal(0, 20, 8)  # runs wander by ~13%
    d = paired_difference([(lv, lv + 310 + g.normal(0, 5)) for lv in levels])
    assert d.low < 310 < d.high and d.high - d.low < 15 and d.pairs == 8


def test_the_probe_predicts_the_whole_delta_on_a_cpu_and_none_while_the_gpu_hides_it():
    from loopbench.analysis.probe import predicted_ratio

    assert predicted_ratio(1e-3, 1e-3, 100.0) == pytest.approx(1.1)  # CPU: host time is the step time
    assert predicted_ratio(1e-3, None, 100.0) == pytest.approx(1.1)
    assert predicted_ratio(10e-3, 2e-3, 1_000.0) == 1.0  # CUDA: 3 ms of host work behind 10 ms on the GPU
    assert predicted_ratio(1e-3, 0.9e-3, 400.0) == pytest.approx(1.3)  # CUDA: the host no longer keeps up
