"""Binomial noise: confidence intervals for success rates and tests for differences.

Every rate the project reports is k successes out of n evaluation hands, and with a
few hundred hands a difference of a few points is noise. The rule used everywhere
(tables, figures, scorecard): a rate comes with its Wilson score interval, and two
rates are called different only when a two-sided two-proportion z-test rejects
equality at level `alpha` (default 0.05). Because every checkpoint is evaluated on
the *same* hands, the unpaired test is conservative (correlated errors shrink the true
variance of a difference), so a difference it calls is a real one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

DEFAULT_ALPHA = 0.05


def z_value(alpha: float = DEFAULT_ALPHA) -> float:
    """Two-sided normal quantile for level `alpha` (1.96 for 0.05)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return NormalDist().inv_cdf(1 - alpha / 2)


def wilson(k: int, n: int, alpha: float = DEFAULT_ALPHA) -> tuple[float, float]:
    """Wilson score interval for k successes out of n (nan, nan when n == 0).

    Wilson rather than the normal approximation because rates near 0 (OOD success of a
    tiny model) would otherwise get intervals below zero or of zero width.
    """
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return (math.nan, math.nan)
    z = z_value(alpha)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return (low, high)


@dataclass(frozen=True)
class Comparison:
    """Outcome of comparing two rates a = k1/n1 and b = k2/n2."""

    diff: float  # a - b
    z: float
    p_value: float
    sign: int  # +1: a > b outside noise, -1: a < b outside noise, 0: within noise

    @property
    def called(self) -> bool:
        return self.sign != 0


def compare_rates(k1: int, n1: int, k2: int, n2: int, alpha: float = DEFAULT_ALPHA) -> Comparison:
    """Two-sided pooled two-proportion z-test of k1/n1 against k2/n2."""
    if n1 <= 0 or n2 <= 0:
        return Comparison(math.nan, math.nan, math.nan, 0)
    p1, p2 = k1 / n1, k2 / n2
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return Comparison(p1 - p2, 0.0, 1.0, 0)
    z = (p1 - p2) / se
    return _decide(p1 - p2, z, alpha)


def compare_gains(
    gain_a: tuple[int, int, int, int], gain_b: tuple[int, int, int, int], alpha: float = DEFAULT_ALPHA
) -> Comparison:
    """Compare two gains (k_after/n_after - k_before/n_before), each given as
    (k_after, n_after, k_before, n_before), with a Wald z-test whose variance is the sum
    of the four binomial variances (used for "fork A recovers more than fork B")."""
    rates, var = [], 0.0
    for k, n in ((gain_a[0], gain_a[1]), (gain_a[2], gain_a[3]), (gain_b[0], gain_b[1]), (gain_b[2], gain_b[3])):
        if n <= 0:
            return Comparison(math.nan, math.nan, math.nan, 0)
        p = k / n
        rates.append(p)
        # Floor the variance at one success so that 0/n against 0/n is not "certain".
        p_var = max(p * (1 - p), (1 / n) * (1 - 1 / n))
        var += p_var / n
    diff = (rates[0] - rates[1]) - (rates[2] - rates[3])
    z = diff / math.sqrt(var)
    return _decide(diff, z, alpha)


def _decide(diff: float, z: float, alpha: float) -> Comparison:
    p_value = 2 * (1 - NormalDist().cdf(abs(z)))
    sign = 0 if p_value >= alpha else (1 if diff > 0 else -1)
    return Comparison(diff, z, p_value, sign)
