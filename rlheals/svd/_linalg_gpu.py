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

    def __init__(self, x: Any, name: str):
        self.is_torch = type(x).__module__.startswith("torch")
        self.x = x.detach() if self.is_torch else x
        cai = self.x.__cuda_array_interface__
        self.ptr = int(cai["data"][0])
        self.typestr = cai["typestr"]
        self.shape = tuple(int(s) for s in cai["shape"])
        self.strides = cai.get("strides")
        self.name = name

    @property
    def stream(self) -> int:
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


def svd(items: list, kk: int, compute_uv: bool, method: str | None = None) -> list:
    """Thin SVD of each device matrix; returns (U, S, Vh) or S per item, same framework."""
    ext = _ext()
    ext.check_k(kk)
    out = []
    for i, x in enumerate(items):
        d = _Dev(x, f"a[{i}]" if len(items) > 1 else "a")
        with d.device():
            f64 = d.check(2)
            m, n = d.shape
            r = min(m, n) if kk < 0 else min(kk, m, n)
            s = d.empty((r,))
            u = d.empty((m, r)) if compute_uv else None
            vh = d.empty((r, n)) if compute_uv else None
            ext.svd(f64, d.ptr, 1, m, n, r, compute_uv, _ptr(u) if compute_uv else 0, _ptr(s),
                    _ptr(vh) if compute_uv else 0, d.stream, method or METHOD)
        out.append((u, s, vh) if compute_uv else s)
    return out


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


def reference(items: list) -> list:
    """(sigma, basis) float64 device arrays per reference matrix."""
    ext = _ext()
    out = []
    for i, x in enumerate(items):
        d = _Dev(x, f"W_ref[{i}]" if len(items) > 1 else "W_ref")
        with d.device():
            f64 = d.check(2)
            m, n = d.shape
            q = min(m, n)
            s0, y0 = d.empty((q,), True), d.empty((q, q), True)
            ext.reference(f64, d.ptr, m, n, _ptr(s0), _ptr(y0), d.stream)
        out.append((s0, y0))
    return out


def compare(refs: list, items: list, k: int) -> list:
    """Raw compare tuples (sigma, angles_left, angles_right, scaling, rotation, k) per pair."""
    ext = _ext()
    ext.check_k(k)
    out = []
    for i, (r, x) in enumerate(zip(refs, items)):
        d = _Dev(x, f"W[{i}]" if len(items) > 1 else "W")
        d0 = _Dev(r.w, f"W_ref[{i}]" if len(items) > 1 else "W_ref")
        with d.device():
            f64 = d.check(2)
            if d0.check(2) != f64:
                raise ValueError(f"{d.name}: dtype differs from {d0.name}")
            m, n = d.shape
            for arr, nm in ((r.sigma, "sigma_ref"), (r.basis, "basis_ref")):
                if not hasattr(arr, "__cuda_array_interface__") and not type(arr).__module__.startswith("torch"):
                    raise ValueError(f"{nm}: the reference lives on the host; build it with reference() on GPU data")
            res = ext.compare(f64, d0.ptr, _ptr(r.sigma), _ptr(r.basis), d.ptr, m, n, k if k > 0 else 1 << 62,
                              d.stream)
        out.append(tuple(np.asarray(v) if isinstance(v, list) else v for v in res))
    return out


def principal_angles(A: Any, B: Any):
    """Principal angles on the GPU with the framework's own SVD (scipy's sine/cosine rule)."""
    is_torch = type(A).__module__.startswith("torch")
    if is_torch:
        import torch as xp
        svdvals = lambda x: torch_svdvals(x)  # noqa: E731
    else:
        import cupy as xp
        svdvals = lambda x: xp.linalg.svd(x, compute_uv=False)  # noqa: E731
    if A.ndim != 2 or B.ndim != 2 or A.shape[0] != B.shape[0]:
        raise ValueError(f"A, B: expected (n, kA) and (n, kB), got {tuple(A.shape)} and {tuple(B.shape)}")
    A = A.double() if is_torch else A.astype(xp.float64)
    B = B.double() if is_torch else B.astype(xp.float64)
    c = A.T @ B
    kk = min(A.shape[1], B.shape[1])
    cos = xp.clip(svdvals(c)[:kk], -1.0, 1.0)
    res = B - A @ c if A.shape[1] >= B.shape[1] else A - B @ c.T
    sin = xp.clip(xp.flip(svdvals(res), (0,)) if is_torch else svdvals(res)[::-1], 0.0, 1.0)[:kk]
    return xp.where(cos**2 >= 0.5, xp.arcsin(sin), xp.arccos(cos))


def torch_svdvals(x):
    import torch
    return torch.linalg.svdvals(x)
