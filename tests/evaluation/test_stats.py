"""Paired statistics against hand-computed values and scipy.stats: McNemar, bootstrap, Holm, Wilson."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from rlheals.evaluation.stats import (
    binom_two_sided, bootstrap_mean, gain_per_hand, holm, mcnemar, wilson,
)


def _hands(both, a_only, b_only, neither):
    """Per-hand outcome vectors with the given counts of each (a, b) pattern."""
    a = [1] * both + [1] * a_only + [0] * b_only + [0] * neither
    b = [1] * both + [0] * a_only + [1] * b_only + [0] * neither
    return np.array(a, bool), np.array(b, bool)


def test_exact_binomial_by_hand_and_scipy():
    assert binom_two_sided(1, 10) == pytest.approx(22 / 1024)  # 2 * (C(10,0) + C(10,1)) / 2^10
    assert binom_two_sided(5, 10) == 1.0 and binom_two_sided(0, 0) == 1.0
    for k, n in [(0, 7), (3, 17), (40, 100), (61, 100), (2, 300)]:
        assert binom_two_sided(k, n) == pytest.approx(scipy.stats.binomtest(k, n, 0.5).pvalue, rel=1e-9), (k, n)


def test_mcnemar_counts_only_discordant_hands():
    a, b = _hands(both=5, a_only=8, b_only=1, neither=6)
    r = mcnemar(a, b)
    assert (r.a_only, r.b_only, r.n) == (8, 1, 20)
    assert r.p_value == pytest.approx(20 / 512)  # 2 * (C(9,0) + C(9,1)) / 2^9
    assert r.diff == pytest.approx((13 - 6) / 20) and r.sign == 1 and r.called
    assert mcnemar(b, a).sign == -1 and mcnemar(b, a).p_value == r.p_value
    # the same rates with more concordant hands: same test (concordant hands carry nothing)
    a2, b2 = _hands(both=50, a_only=8, b_only=1, neither=60)
    assert mcnemar(a2, b2).p_value == r.p_value
    # at alpha 0.01 the same difference is within noise
    assert mcnemar(a, b, alpha=0.01).sign == 0


def test_mcnemar_is_more_powerful_than_unpaired_on_correlated_hands():
    """12/20 vs 8/20 is noise for an unpaired test but 4 vs 0 discordant hands is not either:
    4 vs 0 gives p = 2/16 = 0.125; 10 vs 0 gives 2/1024."""
    a, b = _hands(both=8, a_only=4, b_only=0, neither=8)
    assert mcnemar(a, b).p_value == pytest.approx(0.125)
    a, b = _hands(both=0, a_only=10, b_only=0, neither=10)
    assert mcnemar(a, b).p_value == pytest.approx(2 / 1024)


def test_mcnemar_pooled_over_seeds_sums_discordant_pairs():
    s1 = _hands(both=2, a_only=3, b_only=0, neither=5)
    s2 = _hands(both=1, a_only=3, b_only=1, neither=5)
    pooled = mcnemar([s1[0], s2[0]], [s1[1], s2[1]])
    assert (pooled.a_only, pooled.b_only, pooled.n) == (6, 1, 20)
    assert pooled.p_value == pytest.approx(2 * (1 + 7) / 128)
    assert mcnemar(*s1).p_value == pytest.approx(0.25)  # 3 vs 0 alone


def test_mcnemar_refuses_different_hands():
    with pytest.raises(ValueError, match="same hands"):
        mcnemar(np.ones(5, bool), np.ones(6, bool))
    a = pd.Series([True, False], index=["eval_ood-00000", "eval_ood-00001"])
    b = pd.Series([True, False], index=["eval_ood-00000", "eval_ood-00002"])
    with pytest.raises(ValueError, match="hand ids differ"):
        mcnemar(a, b)
    assert mcnemar(a, a).p_value == 1.0


def test_mcnemar_keeps_its_level_under_the_null():
    """a and b drawn from the same per-hand success probabilities: false calls <= alpha."""
    rng = np.random.default_rng(0)
    p_hand = rng.uniform(0, 1, 120)
    calls = 0
    for _ in range(2000):
        a, b = rng.random(120) < p_hand, rng.random(120) < p_hand
        calls += mcnemar(a, b).called
    assert calls / 2000 <= 0.05


def test_gain_per_hand_means_are_rate_differences():
    rng = np.random.default_rng(1)
    x = [rng.random(50) < q for q in (0.6, 0.2, 0.3, 0.25)]
    d = gain_per_hand(*x)
    assert d.mean() == pytest.approx((x[0].mean() - x[1].mean()) - (x[2].mean() - x[3].mean()))
    assert gain_per_hand(x[0], x[1]).mean() == pytest.approx(x[0].mean() - x[1].mean())
    with pytest.raises(ValueError, match="same hands"):
        gain_per_hand(x[0], x[1][:10])


def test_bootstrap_is_seeded_and_matches_the_analytic_spread():
    rng = np.random.default_rng(2)
    d = rng.choice([-1.0, 0.0, 1.0], size=200, p=[0.2, 0.5, 0.3])
    r1, r2 = bootstrap_mean(d, seed=7, n_boot=4000), bootstrap_mean(d, seed=7, n_boot=4000)
    assert r1 == r2  # same seed, same numbers
    assert r1.diff == pytest.approx(d.mean()) and r1.low < r1.diff < r1.high
    se = d.std() / math.sqrt(d.size)
    # percentile interval width ~ 2 * 1.96 * se
    assert (r1.high - r1.low) == pytest.approx(2 * 1.96 * se, rel=0.1)
    # p-value close to the normal approximation's
    z = abs(d.mean()) / se
    assert r1.p_value == pytest.approx(2 * (1 - scipy.stats.norm.cdf(z)), abs=0.02)


def test_bootstrap_extremes():
    assert bootstrap_mean(np.zeros(30), seed=0).p_value == 1.0
    assert bootstrap_mean(np.zeros(30), seed=0).sign == 0
    sure = bootstrap_mean(np.ones(30), seed=0, n_boot=999)
    assert sure.p_value == pytest.approx(1 / 1000) and sure.sign == 1
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_mean(np.ones(3), seed=0, n_boot=0)


def test_bootstrap_pooled_over_seeds_keeps_hands_together():
    """Two seeds with identical per-hand values: resampling hands jointly (the same hands are
    evaluated in every seed) gives the single seed's spread, not one shrunk by sqrt(2)."""
    rng = np.random.default_rng(3)
    d = rng.choice([-1.0, 0.0, 1.0], size=150, p=[0.3, 0.4, 0.3])
    one = bootstrap_mean(d, seed=1, n_boot=4000)
    two = bootstrap_mean([d, d.copy()], seed=1, n_boot=4000)
    assert two.diff == pytest.approx(one.diff) and two.n == 300
    assert (two.high - two.low) == pytest.approx(one.high - one.low, rel=0.1)
    # seeds with different hand counts are resampled within each seed
    mixed = bootstrap_mean([d, d[:100]], seed=1, n_boot=2000)
    assert mixed.diff == pytest.approx((d.sum() + d[:100].sum()) / 250)


def test_holm_by_hand():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 -> running max 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([0.02]) == [0.02] and holm([]) == []


def test_wilson_matches_scipy():
    for k, n in [(0, 234), (1, 234), (91, 234), (234, 234)]:
        ci = scipy.stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12), (k, n)
