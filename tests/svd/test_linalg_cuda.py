"""rlheals.svd.linalg on a GPU (cupy arrays and torch CUDA tensors); skipped without one."""
import numpy as np
import pytest

from rlheals.svd import _linalg_gpu
from rlheals.svd import _linalg_ref as ref
from rlheals.svd import linalg

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not _linalg_gpu.available(), reason="no CUDA extension or no GPU")]


def _frameworks():
    out = []
    try:
        import torch
        if torch.cuda.is_available():
            out.append("torch")
    except ImportError:
        pass
    try:
        import cupy
        cupy.zeros(1)
        out.append("cupy")
    except Exception:  # noqa: BLE001 - any failure means "not usable here"
        pass
    return out


FRAMEWORKS = _frameworks() or ["none"]


def _to_dev(x: np.ndarray, fw: str):
    if fw == "torch":
        import torch
        return torch.as_tensor(x, device="cuda")
    if fw == "cupy":
        import cupy
        return cupy.asarray(x)
    pytest.skip("no GPU framework")


def _host(x):
    return x.cpu().numpy() if hasattr(x, "cpu") else x.get()


SHAPES = [(40, 30), (120, 17), (9, 70), (1, 1), (300, 300), (500, 128)]


@pytest.mark.parametrize("fw", FRAMEWORKS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("method", ["auto", "gesvdj", "gesvdp", "gesvd"])
def test_svd_gpu_matches_numpy(fw, dtype, shape, method):
    a = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    d = _to_dev(a, fw)
    u, s, vh = _linalg_gpu.svd([d], -1, True, method=method)[0]
    assert type(u) is type(d) and type(s) is type(d)
    u, s, vh = _host(u), _host(s), _host(vh)
    s_np = np.linalg.svd(a.astype(np.float64), compute_uv=False)
    tol = (2e-5 if dtype == np.float32 else 1e-11) * 10
    np.testing.assert_allclose(s, s_np, atol=tol * s_np[0], rtol=0)
    np.testing.assert_allclose((u * s) @ vh, a, atol=tol * s_np[0] * 5, rtol=0)
    r = min(shape)
    np.testing.assert_allclose(u.T.astype(np.float64) @ u, np.eye(r), atol=tol * 10)
    s_only = _host(linalg.svd(d, compute_uv=False))
    np.testing.assert_allclose(s_only, s_np, atol=tol * s_np[0], rtol=0)


@pytest.mark.parametrize("fw", FRAMEWORKS)
@pytest.mark.parametrize("shape", [(16, 8), (8, 16), (32, 32)])
def test_small_batched_stack(fw, shape):
    a = np.random.default_rng(1).standard_normal((50,) + shape)
    u, s, vh = linalg.svd(_to_dev(a, fw), k=5)
    u, s, vh = _host(u), _host(s), _host(vh)
    np.testing.assert_allclose(s, np.linalg.svd(a, compute_uv=False)[:, :5], rtol=1e-10)
    full = linalg.svd(_to_dev(a, fw))
    smax = float(np.linalg.svd(a, compute_uv=False).max())  # the error of a rebuilt matrix scales with it
    np.testing.assert_allclose(np.einsum("bij,bj,bjk->bik", *map(_host, full)), a, atol=2e-11 * smax, rtol=0)


@pytest.mark.parametrize("fw", FRAMEWORKS)
@pytest.mark.parametrize("shape", [(256, 96), (96, 256), (128, 128)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compare_gpu_matches_cpu(fw, shape, dtype):
    rng = np.random.default_rng(2)
    w0 = (0.02 * rng.standard_normal(shape)).astype(dtype)
    w = (w0 + 2e-5 * rng.standard_normal(shape)).astype(dtype)
    got = linalg.compare(_to_dev(w0, fw), _to_dev(w, fw), 64)
    want = ref.compare_svd(w0, w, 64)
    for key in ("sigma_rel_change_mean", "sigma_rel_change_max", "angle_left_mean", "angle_right_mean",
                "proj_dist_left", "proj_dist_right", "scaling_energy", "rotation_energy"):
        assert got[key] == pytest.approx(want[key], rel=1e-3), key


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_principal_angles_gpu(fw):
    import scipy.linalg
    rng = np.random.default_rng(3)
    a, _ = np.linalg.qr(rng.standard_normal((60, 8)))
    b, _ = np.linalg.qr(a + 1e-5 * rng.standard_normal((60, 8)))
    got = _host(linalg.principal_angles(_to_dev(a, fw), _to_dev(b, fw)))
    np.testing.assert_allclose(got, np.sort(scipy.linalg.subspace_angles(a, b)), rtol=1e-6)


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_gpu_bad_input(fw):
    good = np.ones((4, 3))
    with pytest.raises(ValueError, match="NaN or inf"):
        linalg.svd(_to_dev(np.array([[1.0, np.nan], [0.0, 1.0]]), fw))
    with pytest.raises(ValueError, match="C-contiguous"):
        linalg.svd(_to_dev(good, fw).T)
    with pytest.raises(ValueError, match="dtype"):
        linalg.svd(_to_dev(good.astype(np.float16), fw))
    with pytest.raises(ValueError, match="empty"):
        linalg.svd(_to_dev(np.ones((0, 3)), fw))
    with pytest.raises(ValueError, match="shape"):
        linalg.svd(_to_dev(np.ones(3), fw))
    with pytest.raises(ValueError, match="host"):
        linalg.svd(_to_dev(good, fw), backend="cpu")


@pytest.mark.parametrize("fw", FRAMEWORKS)
@pytest.mark.parametrize("basis", [None, 16])
@pytest.mark.parametrize("shape", [(256, 96), (96, 256)])
def test_host_reference_on_gpu(fw, basis, shape):
    """A reference decomposed on the host (the workflow's cached .npz) compares on the GPU,
    full or truncated, with the same numbers as the CPU; and a GPU reference on the CPU."""
    rng = np.random.default_rng(4)
    w0 = (0.02 * rng.standard_normal(shape)).astype(np.float32)
    w = (w0 + 2e-5 * rng.standard_normal(shape)).astype(np.float32)
    host_ref = linalg.reference(w0, basis=basis)
    want = linalg.compare(host_ref, w, 16)
    got = linalg.compare(linalg.Reference(_to_dev(w0, fw), host_ref.sigma, host_ref.basis), _to_dev(w, fw), 16)
    for key in ("angle_left_mean", "angle_right_max", "rotation_energy", "sigma_rel_change_max", "spectral_gap",
                "delta_fro"):
        assert got[key] == pytest.approx(want[key], rel=1e-6, abs=1e-9), key
    dev_ref = linalg.reference(_to_dev(w0, fw), basis=basis)
    back = linalg.compare(dev_ref, w, 16)  # device sigma/basis used by the CPU backend
    assert back["angle_left_mean"] == pytest.approx(want["angle_left_mean"], rel=1e-6)


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_svd_list_on_streams_matches_numpy(fw):
    rng = np.random.default_rng(5)
    mats = [rng.standard_normal(sh) for sh in [(200, 64), (64, 200), (128, 128)] * 3]
    res = linalg.svd([_to_dev(a, fw) for a in mats])
    for a, (u, s, vh) in zip(mats, res):
        np.testing.assert_allclose(_host(s), np.linalg.svd(a, compute_uv=False), rtol=1e-10)
        np.testing.assert_allclose((_host(u) * _host(s)) @ _host(vh), a, atol=1e-10)


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_principal_angles_gpu_stacked(fw):
    import scipy.linalg
    rng = np.random.default_rng(6)
    A = np.stack([np.linalg.qr(rng.standard_normal((40, 6)))[0] for _ in range(6)]).reshape(2, 3, 40, 6)
    B = np.stack([np.linalg.qr(a + 1e-4 * rng.standard_normal(a.shape))[0] for a in A.reshape(6, 40, 6)]).reshape(A.shape)
    got = _host(linalg.principal_angles(_to_dev(A, fw), _to_dev(B, fw)))
    assert got.shape == (2, 3, 6)
    for i in range(2):
        for j in range(3):
            np.testing.assert_allclose(got[i, j], np.sort(scipy.linalg.subspace_angles(A[i, j], B[i, j])), rtol=1e-6)


def test_edits_on_gpu_match_cpu():
    pytest.importorskip("torch")
    from rlheals.svd.edits import edit_matrices
    rng = np.random.default_rng(7)
    ts = [rng.standard_normal((48, 20)), rng.standard_normal((20, 48))]
    ds = [t + 0.1 * rng.standard_normal(t.shape) for t in ts]
    for kind in ("directions", "values", "triplets_top", "triplets_bottom"):
        cpu = edit_matrices(ts, ds, kind, 5, "cpu")
        gpu = edit_matrices(ts, ds, kind, 5, "cuda")
        for a, b in zip(cpu, gpu):
            np.testing.assert_allclose(b, a, atol=1e-10)


def test_auto_backend_uses_the_gpu():
    assert linalg.job_device("auto") == "cuda"
