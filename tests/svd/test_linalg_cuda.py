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
