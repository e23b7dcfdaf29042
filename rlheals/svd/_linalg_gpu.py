"""GPU side of `rlheals.svd.linalg`: cupy arrays and torch CUDA tensors in, the same kind out.

Arrays reach the extension as raw device pointers (`__cuda_array_interface__`), outputs are
allocated here in the caller's framework on the input's device, and all work is queued on
that framework's current stream, so nothing is copied to the host (except the few numbers
`compare` returns).
"""
from __future__ import annotations

import ctypes
import glob
import os
from typing import Any

import numpy as np

# Which cuSOLVER routine svd() uses for matrices larger than 32x32: "auto" = Xgesvdp, the
# fastest on an H200 (benchmarks/svd_bench.py measures gesvdj, gesvdp and gesvd per shape);
# "gesvd" is 2-4x slower but the most accurate in float32. Override: RLHEALS_CUDA_SVD_METHOD.
METHOD = os.environ.get("RLHEALS_CUDA_SVD_METHOD", "auto")


def _preload_cuda_libs() -> None:
    """Load libcusolver/libcublas from the pip CUDA wheels if the loader cannot find them."""
    try:
        import nvidia
    except ImportError:
        return
    for base in nvidia.__path__:
        for pattern in ("cu13/lib/libcublasLt.so.*", "cu13/lib/libcublas.so.*", "cu13/lib/libcusolver.so.*",
                        "cublas/lib/libcublas*.so.*", "cusolver/lib/libcusolver.so.*"):
            for lib in sorted(glob.glob(os.path.join(base, pattern))):
                try:
                    ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
                except OSError:
                    pass


def _ext():
    try:
        from rlheals.svd import _svd_cuda
    except ImportError:
        _preload_cuda_libs()
        from rlheals.svd import _svd_cuda
    return _svd_cuda


def available() -> bool:
    """True when the CUDA extension is built and a GPU answers."""
    try:
        _ext().device_name()
        return True
    except (ImportError, RuntimeError):
        return False


class _Dev:
    """One device array: pointer, metadata, and how to allocate more like it."""

    def __init__(self, x: Any, name: str, stream: int | None = None):
        self.is_torch = type(x).__module__.startswith("torch")
        self._stream = stream
        self.x = x.detach() if self.is_torch else x
        cai = self.x.__cuda_array_interface__
        self.ptr = int(cai["data"][0])
        self.typestr = cai["typestr"]
        self.shape = tuple(int(s) for s in cai["shape"])
        self.strides = cai.get("strides")
        self.name = name

    @property
    def stream(self) -> int:
        if self._stream is not None:
            return self._stream
        if self.is_torch:
            import torch
            return int(torch.cuda.current_stream(self.x.device).cuda_stream)
        import cupy
        return int(cupy.cuda.get_current_stream().ptr)

    def device(self):
        if self.is_torch:
            import torch
            return torch.cuda.device(self.x.device)
        return self.x.device

    def empty(self, shape, float64: bool | None = None):
        f64 = self.typestr == "<f8" if float64 is None else float64
        if self.is_torch:
            import torch
            return torch.empty(shape, dtype=torch.float64 if f64 else torch.float32, device=self.x.device)
        import cupy
        return cupy.empty(shape, dtype=cupy.float64 if f64 else cupy.float32)

    def check(self, ndim: int) -> bool:
        return _ext().check(self.name, self.typestr, list(self.shape), self.strides, ndim, self.ptr, self.stream)


def _ptr(a: Any) -> int:
    return int(a.__cuda_array_interface__["data"][0]) if not type(a).__module__.startswith("torch") else int(a.data_ptr())


def stack(items: list):
    x = items[0]
    if type(x).__module__.startswith("torch"):
        import torch
        return torch.stack(items)
    import cupy
    return cupy.stack(items)


#: Side streams (and host threads) for lists of matrices: one cuSOLVER call on a large GPU is
#: far from filling it, so several matrices run at once. Override: RLHEALS_CUDA_STREAMS.
STREAMS = int(os.environ.get("RLHEALS_CUDA_STREAMS", "4"))


_POOL = None
_SIDE: dict = {}


def _pool(n: int):
    """Host threads kept for the process: the extension keeps one cuSOLVER/cuBLAS handle pair
    per thread, so threads that live on reuse theirs."""
    global _POOL
    if _POOL is None or _POOL._max_workers < n:
        from concurrent.futures import ThreadPoolExecutor
        _POOL = ThreadPoolExecutor(max(n, STREAMS), thread_name_prefix="rlheals-cuda")
    return _POOL


def _side_streams(key, n: int, make) -> list:
    if len(_SIDE.get(key, ())) < n:
        _SIDE[key] = [make() for _ in range(n)]
    return _SIDE[key][:n]


def _concurrent(items: list, fn, streams: int | None = None) -> list:
    """fn(i, x, stream_ptr) for every item, on `streams` side streams from as many host threads
    (the extension releases the GIL), ordered after the caller's current stream and joined
    back into it; results in item order."""
    n = min(streams or STREAMS, len(items))
    first = items[0]
    if n <= 1:
        return [fn(i, x, None) for i, x in enumerate(items)]
    if type(first).__module__.startswith("torch"):
        import torch

        dev = first.device
        cur = torch.cuda.current_stream(dev)
        side = _side_streams(("torch", str(dev)), n, lambda: torch.cuda.Stream(device=dev))
        for st in side:
            st.wait_stream(cur)

        def run(i):
            st = side[i % n]
            with torch.cuda.device(dev), torch.cuda.stream(st):
                return fn(i, items[i], int(st.cuda_stream))

        out = list(_pool(n).map(run, range(len(items))))
        for st in side:
            cur.wait_stream(st)
        for res in out:  # outputs were allocated on side streams and are used on the current one
            for t in (res if isinstance(res, tuple) else (res,)):
                if hasattr(t, "record_stream"):
                    t.record_stream(cur)
        return out
    import cupy

    cur = cupy.cuda.get_current_stream()
    side = _side_streams(("cupy", first.device.id), n, lambda: cupy.cuda.Stream(non_blocking=True))
    ready = cur.record()
    for st in side:
        st.wait_event(ready)

    def run_cp(i):
        st = side[i % n]
        with first.device, st:
            return fn(i, items[i], int(st.ptr))

    out = list(_pool(n).map(run_cp, range(len(items))))
    for st in side:
        cur.wait_event(st.record())
    return out


def svd(items: list, kk: int, compute_uv: bool, method: str | None = None) -> list:
    """Thin SVD of each device matrix; returns (U, S, Vh) or S per item, same framework.

    A list runs on several streams at once (`STREAMS`), which is what makes the many
    equal-shape matrices of a model (24 layers x 7 projections) fill a large GPU."""
    ext = _ext()
    ext.check_k(kk)

    def one(i, x, stream):
        d = _Dev(x, f"a[{i}]" if len(items) > 1 else "a", stream)
        with d.device():
            f64 = d.check(2)
            m, n = d.shape
            r = min(m, n) if kk < 0 else min(kk, m, n)
            s = d.empty((r,))
            u = d.empty((m, r)) if compute_uv else None
            vh = d.empty((r, n)) if compute_uv else None
            ext.svd(f64, d.ptr, 1, m, n, r, compute_uv, _ptr(u) if compute_uv else 0, _ptr(s),
                    _ptr(vh) if compute_uv else 0, d.stream, method or METHOD)
        return (u, s, vh) if compute_uv else s

    return _concurrent(items, one)


def svd_stack(a: Any, kk: int, compute_uv: bool, method: str | None = None):
    """SVD of a (batch, m, n) device stack in one call (batched Jacobi when m, n <= 32)."""
    ext = _ext()
    ext.check_k(kk)
    d = _Dev(a, "a")
    with d.device():
        f64 = d.check(3)
        b, m, n = d.shape
        r = min(m, n) if kk < 0 else min(kk, m, n)
        s = d.empty((b, r))
        u = d.empty((b, m, r)) if compute_uv else None
        vh = d.empty((b, r, n)) if compute_uv else None
        ext.svd(f64, d.ptr, b, m, n, r, compute_uv, _ptr(u) if compute_uv else 0, _ptr(s),
                _ptr(vh) if compute_uv else 0, d.stream, method or METHOD)
    return (u, s, vh) if compute_uv else s


def reference(items: list, kb: int = -1) -> list:
    """(sigma, basis) float64 device arrays per reference matrix (basis: top kb vectors, all if < 0)."""
    ext = _ext()

    def one(i, x, stream):
        d = _Dev(x, f"W_ref[{i}]" if len(items) > 1 else "W_ref", stream)
        with d.device():
            f64 = d.check(2)
            m, n = d.shape
            q = min(m, n)
            kv = q if kb < 0 else min(kb, q)
            s0, y0 = d.empty((q,), True), d.empty((q, kv), True)
            ext.reference(f64, d.ptr, m, n, kv, _ptr(s0), _ptr(y0), d.stream)
        return s0, y0

    return _concurrent(items, one)


def like(x: Any, ref: Any):
    """x (numpy, torch CPU/CUDA or cupy) as a contiguous device array in ref's framework, on ref's
    device (a no-op when it already is one): how host references reach a GPU comparison."""
    if type(ref).__module__.startswith("torch"):
        import torch

        if type(x).__module__.startswith("torch"):
            return x.to(device=ref.device).contiguous()
        return torch.as_tensor(np.ascontiguousarray(x), device=ref.device)
    import cupy

    with ref.device:
        return cupy.ascontiguousarray(cupy.asarray(x))


def compare(refs: list, w0s: list, items: list, k: int) -> list:
    """Raw compare tuples (sigma, angles_left, angles_right, scaling, rotation, k, delta_fro) per
    pair. A reference decomposed on the host (e.g. the workflow's cached .npz) is moved to
    the device here: its sigma and basis are small next to the matrices."""
    ext = _ext()
    ext.check_k(k)

    def one(i, x, stream):
        r, w0 = refs[i], w0s[i]
        d = _Dev(x, f"W[{i}]" if len(items) > 1 else "W", stream)
        d0 = _Dev(w0, f"W_ref[{i}]" if len(items) > 1 else "W_ref", stream)
        with d.device():
            f64 = d.check(2)
            if d0.check(2) != f64:
                raise ValueError(f"{d.name}: dtype differs from {d0.name}")
            m, n = d.shape
            q = min(m, n)
            sigma = like(np.ascontiguousarray(_host_np(r.sigma), np.float64) if not _on_gpu(r.sigma) else r.sigma, x)
            basis = like(np.ascontiguousarray(_host_np(r.basis), np.float64) if not _on_gpu(r.basis) else r.basis, x)
            if tuple(sigma.shape) != (q,) or basis.ndim != 2 or basis.shape[0] != q or not 1 <= basis.shape[1] <= q:
                raise ValueError(f"{d.name}: reference sigma {tuple(sigma.shape)} / basis {tuple(basis.shape)} "
                                 f"do not match a {m}x{n} matrix")
            kb = int(basis.shape[1])
            kk = q if k < 0 else min(k, q)
            if kk > kb:
                raise ValueError(f"k={kk}: the reference keeps only {kb} singular vectors; "
                                 "decompose it with basis >= k")
            res = ext.compare(f64, d0.ptr, _ptr(sigma), _ptr(basis), kb, d.ptr, m, n, kk, d.stream)
        return tuple(np.asarray(v) if isinstance(v, list) else v for v in res)

    return _concurrent(items, one)


def _on_gpu(x) -> bool:
    return hasattr(x, "__cuda_array_interface__") or (type(x).__module__.startswith("torch") and x.is_cuda)


def _host_np(x):
    if type(x).__module__.startswith("torch"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def principal_angles(A: Any, B: Any):
    """Principal angles on the GPU with the framework's own batched SVD (scipy's sine/cosine
    rule), in float64; A (..., n, kA) and B (..., n, kB) with the same leading shape."""
    is_torch = type(A).__module__.startswith("torch")
    if is_torch:
        import torch as xp
        svdvals = torch_svdvals
        tr = lambda x: x.transpose(-1, -2)  # noqa: E731
        flip = lambda x: xp.flip(x, (-1,))  # noqa: E731
    else:
        import cupy as xp
        svdvals = lambda x: xp.linalg.svd(x, compute_uv=False)  # noqa: E731
        tr = lambda x: xp.swapaxes(x, -1, -2)  # noqa: E731
        flip = lambda x: x[..., ::-1]  # noqa: E731
    if A.ndim < 2 or B.ndim < 2 or tuple(A.shape[:-1]) != tuple(B.shape[:-1]):
        raise ValueError(f"A, B: expected (..., n, kA) and (..., n, kB) with equal leading shapes, "
                         f"got {tuple(A.shape)} and {tuple(B.shape)}")
    if 0 in tuple(A.shape) or 0 in tuple(B.shape):
        raise ValueError(f"A, B: empty array of shape {tuple(A.shape)} / {tuple(B.shape)}")
    A = A.double() if is_torch else A.astype(xp.float64)
    B = B.double() if is_torch else B.astype(xp.float64)
    c = tr(A) @ B
    kk = min(A.shape[-1], B.shape[-1])
    cos = xp.clip(svdvals(c)[..., :kk], -1.0, 1.0)
    res = B - A @ c if A.shape[-1] >= B.shape[-1] else A - B @ tr(c)
    sin = xp.clip(flip(svdvals(res)), 0.0, 1.0)[..., :kk]
    return xp.where(cos**2 >= 0.5, xp.arcsin(sin), xp.arccos(cos))


def torch_svdvals(x):
    import torch
    return torch.linalg.svdvals(x)
