"""The random-perturbation null of the spectral analysis (rlheals.svd.null)."""
from __future__ import annotations

import numpy as np
import pytest

from rlheals.svd import linalg
from rlheals.svd._linalg_ref import spectral_gap
from rlheals.svd.null import NULL_COLUMNS, matrix_seed, null_columns, topk_sigma_change


def _pair(seed=0, shape=(40, 24), size=0.01):
    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal(shape)
    return w0, w0 + size * rng.standard_normal(shape)


def test_gap_and_topk_change_by_hand():
    s = np.array([4.0, 3.0, 1.0])
    assert spectral_gap(s, 1) == pytest.approx(0.25)
    assert spectral_gap(s, 2) == pytest.approx(2 / 3)
    assert spectral_gap(s, 3) == 1.0  # full rank: nothing left to mix with
    assert topk_sigma_change([4.0, 2.0, 1.0], [4.4, 1.8, 5.0], 2) == pytest.approx((0.1 + 0.1) / 2)


def test_columns_are_the_observed_and_a_same_size_null():
    w0, w = _pair()
    res = linalg.compare(w0, w, 6)
    cols = null_columns(w0, w, res, seed=0, labels=("sft-10", "base", "m"))
    assert list(cols) == NULL_COLUMNS
    assert cols["sigma_rel_change_topk"] == pytest.approx(np.mean(np.abs(res["sigma_rel_change"][:6])))
    # size and gap come from the compare result itself, not again from the null
    assert res["delta_fro"] == pytest.approx(np.linalg.norm(w - w0))
    assert res["spectral_gap"] == pytest.approx((res["sigma_ref"][5] - res["sigma_ref"][6]) / res["sigma_ref"][5])


def test_pure_noise_looks_like_its_null():
    """When the observed change is itself Gaussian noise, observed and null measures have the
    same distribution: over 30 matrices their means agree."""
    obs_ang, null_ang, obs_sig, null_sig = [], [], [], []
    for i in range(30):
        w0, w = _pair(seed=i)
        res = linalg.compare(w0, w, 6)
        cols = null_columns(w0, w, res, seed=0, labels=("m", i))
        obs_ang.append((res["angle_left_mean"] + res["angle_right_mean"]) / 2)
        null_ang.append(cols["null_angle_mean"])
        obs_sig.append(cols["sigma_rel_change_topk"])
        null_sig.append(cols["null_sigma_rel_change_topk"])
    assert np.mean(null_ang) == pytest.approx(np.mean(obs_ang), rel=0.1)
    assert np.mean(null_sig) == pytest.approx(np.mean(obs_sig), rel=0.2)


def test_null_scales_with_the_size_of_the_change():
    w0, w = _pair(size=1e-5)
    _, w10 = _pair(size=1e-4)
    small = null_columns(w0, w, linalg.compare(w0, w, 6), seed=0, labels=("a",))
    big = null_columns(w0, w10, linalg.compare(w0, w10, 6), seed=0, labels=("a",))
    # first order: angles and dsigma grow linearly with the perturbation (same seed, same direction)
    assert big["null_angle_mean"] == pytest.approx(10 * small["null_angle_mean"], rel=0.05)
    assert big["null_sigma_rel_change_topk"] == pytest.approx(10 * small["null_sigma_rel_change_topk"], rel=0.05)


def test_seeded_per_matrix_and_order_free():
    w0, w = _pair()
    res = linalg.compare(w0, w, 4)
    a = null_columns(w0, w, res, seed=3, labels=("sft-10", "base", "q"))
    assert a == null_columns(w0, w, res, seed=3, labels=("sft-10", "base", "q"))
    assert a != null_columns(w0, w, res, seed=3, labels=("sft-10", "base", "k"))
    assert a != null_columns(w0, w, res, seed=4, labels=("sft-10", "base", "q"))
    assert matrix_seed(0, "x") == matrix_seed(0, "x") != matrix_seed(0, "y")


def test_float32_and_a_reference_decomposed_once_agree():
    w0, w = (x.astype(np.float32) for x in _pair())
    res = linalg.compare(w0, w, 4)
    plain = null_columns(w0, w, res, seed=0, labels=("m",))
    reused = null_columns(w0, w, res, seed=0, labels=("m",), reference=linalg.reference(w0))
    for key in NULL_COLUMNS:
        assert reused[key] == pytest.approx(plain[key], rel=1e-9), key


def test_identical_weights_give_a_zero_null():
    w0, _ = _pair()
    cols = null_columns(w0, w0.copy(), linalg.compare(w0, w0.copy(), 4), seed=0)
    assert cols["null_angle_mean"] == 0 and cols["null_sigma_rel_change_mean"] == 0
