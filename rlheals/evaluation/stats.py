"""Binomial noise: confidence intervals for success rates and tests for differences.

Every rate the project reports is k successes out of n evaluation hands, and with a
few hundred hands a difference of a few points is noise. The rules used everywhere
(tables, figures, scorecard):

- a single rate comes with its Wilson score interval (`wilson`);
- every checkpoint answers the *same* hands, so two checkpoints are compared on the
  per-hand outcomes with an exact McNemar test (`mcnemar`: a two-sided binomial test on
  the hands that only one of them solves), never with an unpaired test;
- a difference of gains, e.g. (RL - start) against (RL' - start'), is a mean over hands
  of a per-hand difference, tested by a paired bootstrap over hands (`bootstrap_mean`,
  seeded from the config);
- a finding that takes the best of several forks or algorithms corrects its p-values
  with Holm's step-down method (`holm`);
- seed replicates are pooled by stratifying on the seed (`mcnemar` and `bootstrap_mean`
  take one array per seed, see there), and each seed is also judged on its own.

A difference is "called" (outside noise) when its two-sided p-value is below `alpha`
(config evaluation.alpha, default 0.05). The unpaired `compare_rates`/`compare_gains`
remain for rates measured on different hands.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Sequence

import numpy as np

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


# ---------------------------------------------------------------- paired tests on per-hand outcomes
@dataclass(frozen=True)
class Paired:
    """Outcome of a paired comparison of a against b on the same hands.

    diff: mean(a) - mean(b) (a difference of success rates, or of gains); p_value:
    two-sided; sign: +1 / -1 when a > b / a < b outside noise, else 0. For McNemar,
    a_only / b_only count the hands only a / only b solves and n the hands; for the
    bootstrap, (low, high) is the percentile interval of diff at the same level.
    """

    diff: float
    p_value: float
    sign: int
    n: int
    a_only: int = 0
    b_only: int = 0
    low: float = math.nan
    high: float = math.nan
    method: str = "mcnemar"

    @property
    def called(self) -> bool:
        return self.sign != 0

    def __str__(self) -> str:
        if self.method == "mcnemar":
            return f"{100 * self.diff:+.1f} pt, {self.a_only} vs {self.b_only} discordant, McNemar p={self.p_value:.3g}"
        return f"{100 * self.diff:+.1f} pt [{100 * self.low:+.1f}, {100 * self.high:+.1f}], bootstrap p={self.p_value:.3g}"


Strata = "np.ndarray | Sequence[np.ndarray]"


def _strata(x, name: str) -> list[np.ndarray]:
    """One 1-D array per stratum (seed): a single array is one stratum."""
    if isinstance(x, np.ndarray) and x.ndim == 1 or (hasattr(x, "index") and hasattr(x, "to_numpy")):
        x = [x]
    out = []
    for i, part in enumerate(x):
        arr = np.asarray(part)
        if arr.ndim != 1:
            raise ValueError(f"{name}[{i}]: expected a 1-D array of per-hand values, got shape {arr.shape}")
        out.append(arr)
    if not out:
        raise ValueError(f"{name}: no per-hand values")
    return out


def _aligned(a, b) -> None:
    """Two pandas Series (indexed by hand id) must cover the same hands in the same order."""
    ia, ib = getattr(a, "index", None), getattr(b, "index", None)
    if ia is not None and ib is not None and not ia.equals(ib):
        raise ValueError("the two outcome vectors are not of the same hands (hand ids differ); a paired test needs both on the same hands")


def binom_two_sided(k: int, n: int) -> float:
    """Exact two-sided p-value of k successes in n fair coin flips: 2 * P(X <= min(k, n-k)), capped at 1."""
    if n == 0:
        return 1.0
    m = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(m + 1))
    return min(1.0, 2 * tail / 2**n)


def mcnemar(a, b, alpha: float = DEFAULT_ALPHA) -> Paired:
    """Exact McNemar test of per-hand successes a against b (bool arrays of the same hands).

    Only the discordant hands carry information: under "a and b are equally good" each of
    them is solved by a alone or by b alone with probability 1/2, so the test is an exact
    binomial test on a_only out of a_only + b_only. Given one array per seed (same hands or
    not), the discordant counts are summed over seeds: the stratified (Mantel-Haenszel)
    test for matched pairs, which for pairs reduces to McNemar on the pooled counts.
    """
    sa, sb = _strata(a, "a"), _strata(b, "b")
    if len(sa) != len(sb):
        raise ValueError(f"a has {len(sa)} strata (seeds), b has {len(sb)}")
    a_only = b_only = n = 0
    total_a = total_b = 0
    for i, (x, y) in enumerate(zip(sa, sb)):
        if x.shape != y.shape:
            raise ValueError(f"stratum {i}: a has {x.size} hands, b has {y.size}; a paired test needs the same hands")
        _aligned(a[i] if isinstance(a, (list, tuple)) else a, b[i] if isinstance(b, (list, tuple)) else b)
        x, y = x.astype(bool), y.astype(bool)
        a_only += int(np.sum(x & ~y))
        b_only += int(np.sum(~x & y))
        n += x.size
        total_a += int(x.sum())
        total_b += int(y.sum())
    if n == 0:
        return Paired(math.nan, 1.0, 0, 0)
    p = binom_two_sided(a_only, a_only + b_only)
    diff = (total_a - total_b) / n
    sign = 0 if p >= alpha else (1 if a_only > b_only else -1)
    return Paired(diff, p, sign, n, a_only, b_only)


def gain_per_hand(after, before, after_b=None, before_b=None) -> np.ndarray:
    """Per-hand gain (after - before), or difference of gains (after - before) - (after_b - before_b),
    as floats; all arrays of the same hands. Its mean is the difference of success rates."""
    parts = [after, before] + ([after_b, before_b] if after_b is not None else [])
    arrs = [np.asarray(x, dtype=float) for x in parts]
    if len({x.shape for x in arrs}) != 1:
        raise ValueError(f"per-hand arrays of different lengths {[x.size for x in arrs]}; expected the same hands")
    d = arrs[0] - arrs[1]
    if after_b is not None:
        d = d - (arrs[2] - arrs[3])
    return d


def bootstrap_mean(d, seed: int, n_boot: int = 10000, alpha: float = DEFAULT_ALPHA) -> Paired:
    """Paired bootstrap over hands of the mean of per-hand values `d` (e.g. `gain_per_hand`).

    Hands are resampled with replacement `n_boot` times (numpy Generator seeded with `seed`,
    from the config). p-value: the share of centred resamples at least as far from the
    estimate as the estimate is from 0 (two-sided, (1 + count) / (1 + n_boot)); interval:
    percentile. Given one array per seed, the pooled statistic is the mean over all hands of
    all seeds; when every seed has the same number of hands (the same evaluation hands), the
    same resampled hand indices are used in every seed, so a hand's correlated outcomes across
    seeds stay together (a cluster bootstrap over hands); otherwise hands are resampled within
    each seed.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    parts = [np.asarray(x, dtype=float) for x in _strata(d, "d")]
    n = sum(x.size for x in parts)
    if n == 0:
        return Paired(math.nan, 1.0, 0, 0, method="bootstrap")
    est = float(sum(x.sum() for x in parts) / n)
    rng = np.random.default_rng(seed)
    boots = np.zeros(n_boot)
    joint = len({x.size for x in parts}) == 1
    # per-hand totals over seeds: resampling a hand index takes that hand in every seed
    totals = np.sum(parts, axis=0) if joint else None
    chunk = max(1, 2_000_000 // max(1, max(x.size for x in parts)))  # bounded memory
    for lo in range(0, n_boot, chunk):
        hi = min(n_boot, lo + chunk)
        if joint:
            boots[lo:hi] = totals[rng.integers(0, totals.size, size=(hi - lo, totals.size))].sum(axis=1)
        else:
            for x in parts:
                boots[lo:hi] += x[rng.integers(0, x.size, size=(hi - lo, x.size))].sum(axis=1)
    boots /= n
    if np.all(np.concatenate(parts) == parts[0][0]) and est == 0:
        p = 1.0
    else:
        p = float((1 + np.sum(np.abs(boots - est) >= abs(est))) / (1 + n_boot))
    low, high = (float(q) for q in np.quantile(boots, [alpha / 2, 1 - alpha / 2]))
    sign = 0 if p >= alpha else (1 if est > 0 else -1)
    return Paired(est, p, sign, n, low=low, high=high, method="bootstrap")


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (step-down): sort ascending, multiply the i-th smallest (0-based)
    by (m - i), take the running maximum, cap at 1. A family of m tests called at adj < alpha
    keeps the chance of any false call below alpha, whatever their dependence."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adj = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))
        adj[i] = running
    return adj
