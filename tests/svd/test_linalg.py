"""rlheals.svd.linalg on CPU: the compiled extension against numpy/scipy, and every bad input."""
import numpy as np
import pytest
import scipy.linalg

from rlheals.svd import _linalg_ref as ref
from rlheals.svd import linalg
from tolerances import identical_bounds

try:
    from rlheals.svd import _svd_cpu  # noqa: F401
    HAVE_EXT = True
except ImportError:  # the numpy fallback is still tested
    HAVE_EXT = False
BACKENDS = (["cpu"] if HAVE_EXT else []) + ["numpy"]
needs_ext = pytest.mark.skipif(not HAVE_EXT, reason="extension not built; run `make install`")
TOL = {np.float32: 2e-5, np.float64: 1e-12}  # relative to the matrix's scale (sigma_max), never absolute
EPS = np.finfo(np.float64).eps


def _rng(seed=0):
    return np.random.default_rng(seed)


def _matrix(kind: str, dtype, rng):
    if kind == "random":
        a = rng.standard_normal((40, 30))
    elif kind == "tall":
        a = rng.standard_normal((120, 17))
    elif kind == "wide":
        a = rng.standard_normal((9, 70))
    elif kind == "square":
        a = rng.standard_normal((33, 33))
    elif kind == "1x1":
        a = np.array([[-3.5]])
    elif kind == "rank_deficient":
        a = rng.standard_normal((50, 4)) @ rng.standard_normal((4, 35))
    elif kind == "ill_conditioned":
        q1, _ = np.linalg.qr(rng.standard_normal((60, 25)))
        q2, _ = np.linalg.qr(rng.standard_normal((25, 25)))
        a = (q1 * np.logspace(0, -6, 25)) @ q2.T
    else:
        raise KeyError(kind)
    return np.ascontiguousarray(a, dtype=dtype)


KINDS = ["random", "tall", "wide", "square", "1x1", "rank_deficient", "ill_conditioned"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", KINDS)
def test_svd_matches_numpy(kind, dtype, backend):
    a = _matrix(kind, dtype, _rng())
    tol = TOL[dtype] * 10  # times sigma_max below: the error of an SVD scales with the matrix
    u, s, vh = linalg.svd(a, backend=backend)
    s_np = np.linalg.svd(a.astype(np.float64), compute_uv=False)
    r = min(a.shape)
    assert u.shape == (a.shape[0], r) and s.shape == (r,) and vh.shape == (r, a.shape[1])
    assert u.dtype == s.dtype == vh.dtype == dtype
    np.testing.assert_allclose(s, s_np, atol=tol * s_np[0], rtol=0)
    assert np.all(np.diff(s) <= 0), "singular values must be descending"
    np.testing.assert_allclose((u * s) @ vh, a, atol=tol * s_np[0] * 5, rtol=0)
    # orthonormal columns wherever sigma is not ~0 (null-space vectors are arbitrary but still orthonormal)
    eye = np.eye(r)
    np.testing.assert_allclose(u.T.astype(np.float64) @ u, eye, atol=TOL[dtype] * 50)
    np.testing.assert_allclose(vh.astype(np.float64) @ vh.T, eye, atol=TOL[dtype] * 50)
    s_only = linalg.svd(a, compute_uv=False, backend=backend)
    np.testing.assert_allclose(s_only, s_np, atol=tol * s_np[0], rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_top_k_list_and_stack(backend):
    rng = _rng(1)
    mats = [rng.standard_normal(sh).astype(np.float32) for sh in [(20, 8), (5, 30), (16, 16)]]
    res = linalg.svd(mats, k=6, backend=backend)
    assert isinstance(res, list) and len(res) == 3
    for a, (u, s, vh) in zip(mats, res):
        kk = min(6, *a.shape)
        assert u.shape == (a.shape[0], kk) and vh.shape == (kk, a.shape[1])
        np.testing.assert_allclose(s, np.linalg.svd(a, compute_uv=False)[:kk], rtol=1e-5)
    stack = rng.standard_normal((4, 12, 7))
    u, s, vh = linalg.svd(stack, backend=backend)
    assert u.shape == (4, 12, 7) and s.shape == (4, 7) and vh.shape == (4, 7, 7)
    tol = 64 * EPS * float(s.max())  # float64 rounding, relative to the largest singular value
    np.testing.assert_allclose(np.einsum("bij,bj,bjk->bik", u, s, vh), stack, atol=tol, rtol=0)
    s_only = linalg.svd(stack, k=3, compute_uv=False, backend=backend)
    np.testing.assert_allclose(s_only, np.linalg.svd(stack, compute_uv=False)[:, :3], atol=tol, rtol=0)


@needs_ext
def test_torch_tensor_in_torch_out():
    torch = pytest.importorskip("torch")
    t = torch.randn(10, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    u, s, vh = linalg.svd(t)
    assert isinstance(s, torch.Tensor)
    torch.testing.assert_close(s, torch.linalg.svdvals(t))


def _bases(rng, n, k, eps):
    a, _ = np.linalg.qr(rng.standard_normal((n, k)))
    b, _ = np.linalg.qr(a + eps * rng.standard_normal((n, k)))
    return a, b


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("eps", [1e-9, 1e-4, 0.3, 10.0])
@pytest.mark.parametrize("ks", [(8, 8), (8, 5), (5, 8)])
def test_principal_angles_vs_scipy(eps, ks, backend):
    rng = _rng(2)
    a, _ = _bases(rng, 40, ks[0], eps)
    _, b = _bases(rng, 40, ks[1], 0)
    b, _ = np.linalg.qr(a[:, : min(ks)] @ rng.standard_normal((min(ks), ks[1])) + eps * rng.standard_normal((40, ks[1])))
    got = linalg.principal_angles(a, b, backend=backend)
    want = np.sort(scipy.linalg.subspace_angles(a, b))
    assert got.shape == (min(ks),)
    assert np.all(np.diff(got) >= 0)
    # orthonormal bases have unit scale: small angles come from sines, accurate to a few eps
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=64 * EPS)


def test_principal_angles_batched_and_projection_distance():
    rng = _rng(3)
    pairs = [_bases(rng, 30, 6, 1e-3) for _ in range(5)]
    A = np.stack([p[0] for p in pairs]).reshape(5, 1, 30, 6)
    B = np.stack([p[1] for p in pairs]).reshape(5, 1, 30, 6)
    th = linalg.principal_angles(A, B)
    assert th.shape == (5, 1, 6)
    dist = linalg.projection_distance(A[0, 0], B[0, 0])
    want = np.linalg.norm(A[0, 0] @ A[0, 0].T - B[0, 0] @ B[0, 0].T)
    np.testing.assert_allclose(dist, want, rtol=1e-6)


def test_relative_sigma_change_guards_zeros():
    rel = linalg.relative_sigma_change(np.array([2.0, 0.0, 0.0]), np.array([3.0, 0.0, 1.0]))
    np.testing.assert_array_equal(rel, [0.5, 0.0, np.inf])


def test_scaling_rotation_energy():
    rng = _rng(4)
    w0 = rng.standard_normal((20, 12))
    u0, s0, vh0 = np.linalg.svd(w0, full_matrices=False)
    eps = np.finfo(np.float64).eps

    def tol(delta):
        # rounding of U^T (W + dW) V - diag(S) is of order eps * ||W|| * ||W + dW|| (any BLAS kernel)
        return 64 * eps * (np.linalg.norm(w0) + np.linalg.norm(delta)) ** 2

    scale = u0 @ vh0  # pure scaling by +1: energy 12 on the diagonal, none off it
    d, o = linalg.scaling_rotation_energy(w0 + scale, u0, s0, vh0)
    assert d == pytest.approx(12.0, abs=tol(scale)) and o == pytest.approx(0.0, abs=tol(scale))
    rot = u0 @ (np.triu(np.ones((12, 12)), 1) * 1e-3) @ vh0  # pure rotation: 66 entries of 1e-3
    d, o = linalg.scaling_rotation_energy(w0 + rot, u0, s0, vh0)
    assert d == pytest.approx(0.0, abs=tol(rot)) and o == pytest.approx(66e-6, abs=tol(rot))
    assert tol(rot) < 1e-6 * 66e-6  # the tolerance is far below what the test tells apart


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(96, 40), (40, 96), (48, 48)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compare_matches_two_svds(shape, dtype, backend):
    rng = _rng(5)
    w0 = (0.02 * rng.standard_normal(shape)).astype(dtype)
    w = (w0 + 2e-5 * rng.standard_normal(shape)).astype(dtype)  # a small fine-tuning step
    k = 24
    got = linalg.compare(w0, w, k, backend=backend)
    want = ref.compare_svd(w0, w, k)
    for key in ("sigma_rel_change_mean", "sigma_rel_change_max", "sigma_rel_change_median", "proj_dist_left",
                "proj_dist_right", "angle_left_mean", "angle_right_mean", "angle_left_max", "angle_right_max",
                "scaling_energy", "rotation_energy"):
        assert got[key] == pytest.approx(want[key], rel=1e-3), key
    np.testing.assert_allclose(got["angles_left"], want["angles_left"], atol=1e-6)
    np.testing.assert_allclose(got["angles_right"], want["angles_right"], atol=1e-6)
    # a reference decomposed once gives the same numbers, and lists map to lists
    r = linalg.reference(w0, backend=backend)
    again = linalg.compare([r, r], [w, w], k, backend=backend)
    assert again[1]["angle_left_mean"] == pytest.approx(got["angle_left_mean"], rel=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(30, 20), (20, 30), (16, 16)])
def test_compare_k_none_is_full_rank(shape, backend):
    """k=None means full rank in every backend (and reports k = min(m, n), not -1)."""
    rng = _rng(11)
    w0 = rng.standard_normal(shape)
    w = w0 + 1e-3 * rng.standard_normal(shape)
    got = linalg.compare(linalg.reference(w0, backend="numpy"), w, k=None, backend=backend)
    want = ref.compare_svd(w0, w, min(shape))
    assert got["k"] == min(shape)
    assert got["angles_left"].shape == (min(shape),) and got["angles_right"].shape == (min(shape),)
    # angles near 0 carry sqrt(eps) * cond(W) from the Gram route (any BLAS kernel)
    tol = max(identical_bounds(w0, min(shape))["angle"], identical_bounds(w, min(shape))["angle"])
    for key in ("angle_left_max", "angle_right_max"):
        assert got[key] == pytest.approx(want[key], abs=tol), key
    for key in ("scaling_energy", "rotation_energy", "sigma_rel_change_max"):
        assert got[key] == pytest.approx(want[key], rel=1e-6), key
    assert got["spectral_gap"] == pytest.approx(1.0)  # sigma_{q+1} = 0


@pytest.mark.parametrize("made_by", BACKENDS)
@pytest.mark.parametrize("used_by", BACKENDS)
@pytest.mark.parametrize("basis", [None, 8])
def test_reference_works_across_backends(made_by, used_by, basis):
    """A reference decomposed by one backend (full or truncated basis) is usable by every other."""
    rng = _rng(12)
    w0 = (0.02 * rng.standard_normal((60, 24))).astype(np.float32)
    w = (w0 + 2e-5 * rng.standard_normal(w0.shape)).astype(np.float32)
    r = linalg.reference(w0, backend=made_by, basis=basis)
    assert r.vectors == (basis or 24) and r.basis.flags.c_contiguous
    got = linalg.compare(r, w, 6, backend=used_by)
    want = ref.compare_svd(w0, w, 6)
    np.testing.assert_allclose(got["angles_left"], want["angles_left"], atol=1e-9)
    np.testing.assert_allclose(got["angles_right"], want["angles_right"], atol=1e-9)
    assert got["rotation_energy"] == pytest.approx(want["rotation_energy"], rel=1e-6)
    if basis is not None:
        with pytest.raises(ValueError, match="keeps only 8"):
            linalg.compare(r, w, 9, backend=used_by)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(80, 30), (30, 80)])
def test_truncated_basis_matches_full(shape, backend):
    rng = _rng(13)
    w0 = rng.standard_normal(shape)
    w = w0 + 1e-4 * rng.standard_normal(shape)
    full = linalg.compare(linalg.reference(w0, backend=backend), w, 10, backend=backend)
    part = linalg.compare(linalg.reference(w0, backend=backend, basis=10), w, 10, backend=backend)
    for side in ("angles_left", "angles_right"):
        np.testing.assert_allclose(part[side], full[side], rtol=1e-6, atol=2e-8)  # sin² from 1 - cos² : ~1e-8 rad
    np.testing.assert_allclose(part["sigma"], full["sigma"], rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_spectral_gap_and_warning(backend):
    """gap = (s_k - s_{k+1})/s_k of both matrices; the warning fires where the gap at k is
    below the perturbation (Wedin's bound says nothing) and stays off where it is wide."""
    rng = _rng(14)
    q1, _ = np.linalg.qr(rng.standard_normal((50, 20)))
    q2, _ = np.linalg.qr(rng.standard_normal((20, 20)))
    s = np.linspace(2.0, 1.0, 20)
    s[4] = s[5] + 1e-7  # sigma_5 ~ sigma_6: the top-5 subspace is not determined by a 1e-4 perturbation
    w0 = (q1 * s) @ q2.T
    w = w0 + 1e-4 * rng.standard_normal(w0.shape)
    r = linalg.reference(w0, backend=backend)
    bad = linalg.compare(r, w, 5, backend=backend)
    good = linalg.compare(r, w, 10, backend=backend)
    s0 = np.linalg.svd(w0, compute_uv=False)
    s1 = np.linalg.svd(w, compute_uv=False)
    assert bad["spectral_gap"] == pytest.approx((s0[4] - s0[5]) / s0[4], rel=1e-4, abs=1e-12)
    assert good["spectral_gap"] == pytest.approx((s0[9] - s0[10]) / s0[9], rel=1e-9)
    assert good["spectral_gap_ckpt"] == pytest.approx((s1[9] - s1[10]) / s1[9], rel=1e-9)
    assert bad["gap_warning"] and not good["gap_warning"]
    d = w - w0
    assert good["delta_fro"] == pytest.approx(np.linalg.norm(d), rel=1e-10)
    spec = np.linalg.norm(d, 2)
    assert 0.9 * spec <= good["delta_spec"] <= spec * (1 + 1e-9)


def test_spectral_norm_diff_is_close_from_below():
    rng = _rng(15)
    for shape in [(200, 60), (60, 200), (1, 5)]:
        w0 = rng.standard_normal(shape).astype(np.float32)
        w = w0 + 1e-3 * rng.standard_normal(shape).astype(np.float32)
        est = linalg.spectral_norm_diff(w0, w)
        exact = np.linalg.norm((w - w0).astype(np.float64), 2)
        assert 0.9 * exact <= est <= exact * (1 + 1e-5)
    assert linalg.spectral_norm_diff(np.eye(3), np.eye(3)) == 0.0


@pytest.mark.skipif(not linalg.backends()["cpu"], reason="CPU extension not built")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_extensions_spectral_norm_is_close_from_below(dtype):
    """compare's ‖ΔW‖₂ from the CPU extension (its own power iteration, in its threads) is the
    numpy estimate's equal: within a few % of the exact norm, never above it."""
    rng = _rng(16)
    for shape in [(200, 60), (60, 200), (40, 40), (3, 5)]:
        w0 = rng.standard_normal(shape).astype(dtype)
        w = w0 + (1e-3 * rng.standard_normal(shape)).astype(dtype)
        exact = np.linalg.norm((w - w0).astype(np.float64), 2)
        got = linalg.compare(linalg.reference(w0, backend="cpu"), w, 2, backend="cpu")["delta_spec"]
        assert 0.9 * exact <= got <= exact * (1 + (1e-5 if dtype == np.float32 else 1e-9)), shape
        assert got == pytest.approx(linalg.spectral_norm_diff(w0, w), rel=0.05)
    same = rng.standard_normal((30, 20))
    assert linalg.compare(linalg.reference(same, backend="cpu"), same.copy(), 3, backend="cpu")["delta_spec"] == 0.0


def test_compare_identical_is_zero():
    w0 = _rng(6).standard_normal((30, 20))
    got = linalg.compare(w0, w0.copy(), 10)
    bound = identical_bounds(w0, 10)
    assert got["sigma_rel_change_max"] <= bound["sigma_rel"]
    assert got["angle_left_max"] <= bound["angle"] and got["angle_right_max"] <= bound["angle"]
    assert got["scaling_energy"] <= bound["energy"] and got["rotation_energy"] <= bound["energy"]
    # the bounds are far below what the analysis tells apart (angles of 1e-3, energies of 1e-10 here)
    assert bound["angle"] < 1e-5 and bound["energy"] < 1e-18


BAD = [
    (np.zeros((3, 3), dtype=np.int64), "dtype"),
    (np.zeros((3, 3), dtype=np.float16), "dtype"),
    (np.ones((6, 4))[:, ::2], "C-contiguous"),
    (np.ones((6, 4)).T, "C-contiguous"),
    (np.ones(5), "shape|2-D"),
    (np.ones((0, 4)), "empty"),
    (np.array([[1.0, np.nan], [0.0, 1.0]]), "NaN or inf"),
    (np.array([[1.0, np.inf], [0.0, 1.0]], dtype=np.float32), "NaN or inf"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad,match", BAD)
def test_svd_bad_input_raises_value_error(bad, match, backend):
    with pytest.raises(ValueError, match=match):
        linalg.svd(bad, backend=backend)
    with pytest.raises(ValueError, match=match):
        linalg.svd([np.eye(3), bad], backend=backend)


@pytest.mark.parametrize("bad,match", BAD)
def test_compare_and_angles_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        linalg.compare(bad.copy(), bad, 1)
    with pytest.raises(ValueError, match=match):
        linalg.principal_angles(bad, bad)


def test_other_bad_arguments():
    with pytest.raises(ValueError, match="k="):
        linalg.svd(np.eye(3), k=0)
    with pytest.raises(ValueError, match="backend"):
        linalg.svd(np.eye(3), backend="tpu")
    with pytest.raises(ValueError, match="cuda"):
        linalg.svd(np.eye(3), backend="cuda")
    with pytest.raises(ValueError, match="does not match"):
        linalg.compare(np.eye(4), np.eye(5), 2)
    with pytest.raises(ValueError, match="dtype"):
        linalg.compare(np.eye(4), np.eye(4, dtype=np.float32), 2)
    with pytest.raises(ValueError, match="rank-deficient"):
        linalg.compare(np.diag([1.0, 1.0, 0.0]), np.eye(3), 3)
    with pytest.raises(ValueError, match="differ|same number of rows"):
        linalg.principal_angles(np.eye(4)[:, :2], np.eye(5)[:, :2])
    with pytest.raises(ValueError, match="empty list"):
        linalg.svd([])
    with pytest.raises(ValueError, match="expected"):
        linalg.svd("not an array")
