"""Batched SVD, principal angles and the paper's spectral analysis, on CPU or GPU.

The heavy lifting is in the compiled extension (`rlheals.svd._svd_cpu`: LAPACK through
scipy-openblas32, threads across matrices; `rlheals.svd._svd_cuda`: cuSOLVER). The functions
follow numpy's conventions (thin `U, S, Vh`, S descending) and pick the backend from where
the data lives: numpy arrays / torch CPU tensors -> CPU, cupy arrays / torch CUDA tensors ->
GPU (results come back as the same kind of array, with no host round trip). Where the
extension was not built, a pure-numpy backend computes the same numbers, slower.

Analysis of a fine-tuned W against its reference W0 (`compare`) never runs a second SVD:
the reference is decomposed once (`reference`), then W costs one float64 Gram matrix, one
cross Gram with W0 and a symmetric eigensolve. Float32 LAPACK noise (≈1e-5 relative) is as
large as the fine-tuning signal, so all of it runs in float64, and angles come from sines.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from rlheals.svd import _linalg_ref as _ref

__all__ = [
    "svd", "principal_angles", "projection_distance", "relative_sigma_change",
    "scaling_rotation_energy", "reference", "compare", "Reference", "backends",
]

BACKENDS = ("auto", "cpu", "cuda", "numpy")
_warned = False


def _cpu_ext():
    """The CPU extension, or None if it was not built (then numpy is used, with one warning)."""
    global _warned
    try:
        _preload_openblas()
        from rlheals.svd import _svd_cpu
        return _svd_cpu
    except ImportError as exc:
        if not _warned:
            warnings.warn(f"rlheals.svd._svd_cpu is not built ({exc}); using the slower numpy backend. "
                          "Run `make install` to build it.", RuntimeWarning, stacklevel=3)
            _warned = True
        return None


def _preload_openblas() -> None:
    """Load libscipy_openblas globally so the extension resolves it by soname (as numpy does)
    even when its build-time rpath is gone (e.g. after `pip install .` with build isolation)."""
    try:
        import scipy_openblas32
        scipy_openblas32.get_openblas_config()
    except (ImportError, OSError):
        pass


def blas_kernels() -> dict[str, str]:
    """{library: 'version kernel'} of the two OpenBLAS builds in play: numpy's and the extension's
    (scipy-openblas32). The kernel (SkylakeX, Haswell, ...) sets dgemm throughput, up to 2x apart
    on one CPU, so benchmarks print it; OPENBLAS_CORETYPE forces one in both. Empty without
    threadpoolctl (a test dependency)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {}
    import numpy  # noqa: F401  (loads numpy's OpenBLAS)

    _cpu_ext()  # loads scipy-openblas32
    out = {}
    for info in threadpool_info():
        if info.get("internal_api") != "openblas":
            continue
        lib = "extension (scipy-openblas32)" if "scipy_openblas32" in info["filepath"] else "numpy"
        out[lib] = f"{info.get('version')} {info.get('architecture')}"
    return out


def backends() -> dict[str, bool]:
    """Which backends are usable here: {'cpu': ..., 'cuda': ..., 'numpy': True}."""
    from rlheals.svd import _linalg_gpu
    return {"cpu": _cpu_ext() is not None, "cuda": _linalg_gpu.available(), "numpy": True}


def job_device(backend: str = "auto") -> str:
    """Where a job's matrices should live for `backend` ('auto', 'cpu', 'cuda'): 'cuda' when
    this job has a GPU that torch sees and the CUDA extension is built (auto), or insisted on
    (cuda: an error otherwise); else 'cpu'. The functions here then run where the data is."""
    if backend not in ("auto", "cpu", "cuda"):
        raise ValueError(f"backend={backend!r}: expected auto, cpu or cuda")
    if backend == "cpu":
        return "cpu"
    from rlheals.svd import _linalg_gpu
    try:
        import torch
        ok = bool(torch.cuda.is_available()) and _linalg_gpu.available()
    except ImportError:
        ok = False
    if backend == "cuda" and not ok:
        raise RuntimeError("backend 'cuda', but this job sees no GPU with the CUDA extension built "
                           "(rlheals.svd._svd_cuda); use auto or cpu, or run the job on a GPU node")
    return "cuda" if ok else "cpu"


def _threads() -> int:
    """Worker threads for batched calls: RLHEALS_SVD_THREADS, else the usable CPU count."""
    env = os.environ.get("RLHEALS_SVD_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# ---------------------------------------------------------------- input handling
@dataclass
class _Batch:
    """Inputs normalised to a list of 2-D arrays, plus how to shape the results back."""
    items: list
    kind: str          # "list", "stack" or "single"
    where: str         # "cpu" or "cuda"
    torch_cpu: bool    # inputs were torch CPU tensors: give torch tensors back


def _is_gpu(x: Any) -> bool:
    return hasattr(x, "__cuda_array_interface__") or (
        type(x).__module__.startswith("torch") and getattr(x, "is_cuda", False))


def _to_host(x: Any, name: str) -> tuple[Any, bool]:
    """numpy arrays pass through; torch CPU tensors become numpy views (no copy)."""
    if type(x).__module__.startswith("torch"):
        return x.detach().numpy(), True
    if isinstance(x, np.ndarray):
        return x, False
    if isinstance(x, (list, tuple)) and name:
        raise ValueError(f"{name}: expected an array, got a nested {type(x).__name__}")
    raise ValueError(f"{name}: expected a numpy array, torch tensor or cupy array, got {type(x).__name__}")


def _batch(a: Any, name: str) -> _Batch:
    if isinstance(a, (list, tuple)):
        if len(a) == 0:
            raise ValueError(f"{name}: empty list of matrices")
        kind, items = "list", list(a)
    else:
        nd = getattr(a, "ndim", None)
        if nd == 3:
            kind, items = "stack", [a[i] for i in range(a.shape[0])]
            if len(items) == 0:
                raise ValueError(f"{name}: empty batch of shape {tuple(a.shape)}")
        elif nd == 2 or nd is None:
            kind, items = "single", [a]
        else:
            raise ValueError(f"{name}: expected shape (m, n) or (batch, m, n), got {tuple(a.shape)}")
    if any(_is_gpu(x) for x in items):
        if not all(_is_gpu(x) for x in items):
            raise ValueError(f"{name}: mixes GPU and CPU arrays")
        return _Batch(items, kind, "cuda", False)
    host = [_to_host(x, f"{name}[{i}]" if kind != "single" else name) for i, x in enumerate(items)]
    return _Batch([h for h, _ in host], kind, "cpu", any(t for _, t in host))


def _backend(batch: _Batch, backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}: expected one of {BACKENDS}")
    if backend == "auto":
        return "cuda" if batch.where == "cuda" else ("cpu" if _cpu_ext() is not None else "numpy")
    if backend == "cuda" and batch.where != "cuda":
        raise ValueError("backend='cuda' needs GPU arrays (cupy or torch CUDA); move the data first")
    if backend in ("cpu", "numpy") and batch.where == "cuda":
        raise ValueError(f"backend={backend!r} needs host arrays; got GPU arrays")
    if backend == "cpu" and _cpu_ext() is None:
        raise RuntimeError("backend='cpu': the extension rlheals.svd._svd_cpu is not built (run `make install`)")
    return backend


def _k_arg(k: int | None) -> int:
    if k is None:
        return -1
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k={k!r}: expected a positive integer or None")
    return int(k)


def _shape_back(results: list, batch: _Batch, stacker):
    if batch.kind == "single":
        return results[0]
    if batch.kind == "list":
        return results
    if isinstance(results[0], tuple):
        return tuple(stacker([r[j] for r in results]) for j in range(len(results[0])))
    return stacker(results)


def _torchify(x):
    import torch
    if isinstance(x, tuple):
        return tuple(torch.from_numpy(np.ascontiguousarray(y)) for y in x)
    if isinstance(x, list):
        return [_torchify(y) for y in x]
    return torch.from_numpy(np.ascontiguousarray(x))


# ---------------------------------------------------------------- public API
def svd(a: Any, k: int | None = None, compute_uv: bool = True, backend: str = "auto"):
    """Thin SVD of one matrix, a stack (batch, m, n) or a list of matrices of any shapes.

    Returns `(U, S, Vh)` with U (m, r), S (r,) descending, Vh (r, n), r = min(m, n), or `S`
    alone when `compute_uv=False`; with `k`, only the top k (r = min(k, m, n)). A list in
    gives a list out; a stack gives stacked results. float32 stays float32 (values-only
    float32 goes through a float64 Gram matrix: absolute error ≈ 1e-8·σ_max, better than
    float32 LAPACK). Raises ValueError on bad input (dtype, layout, shape, NaN/inf) and
    RuntimeError if LAPACK/cuSOLVER fails.
    """
    batch = _batch(a, "a")
    kk = _k_arg(k)
    be = _backend(batch, backend)
    if be == "cuda":
        from rlheals.svd import _linalg_gpu
        if batch.kind == "stack":  # one call: batched Jacobi for small matrices
            return _linalg_gpu.svd_stack(a, kk, bool(compute_uv))
        return _shape_back(_linalg_gpu.svd(batch.items, kk, bool(compute_uv)), batch, _linalg_gpu.stack)
    if be == "cpu":
        res = _cpu_ext().svd(batch.items, kk, bool(compute_uv), _threads())
    else:
        for i, x in enumerate(batch.items):
            _ref.check_matrix(f"a[{i}]" if batch.kind != "single" else "a", x)
        res = [_ref.svd(x, None if kk < 0 else kk, bool(compute_uv)) for x in batch.items]
    out = _shape_back(res, batch, np.stack)
    return _torchify(out) if batch.torch_cpu else out


def principal_angles(A: Any, B: Any, backend: str = "auto"):
    """Principal angles (radians, ascending) between span(A) and span(B).

    A and B hold orthonormal columns, shape (n, k) or (..., n, k) (same leading shape). Small
    angles come from sines, large ones from cosines (as scipy.linalg.subspace_angles), in
    float64; the result has min(kA, kB) angles per pair.
    """
    if _is_gpu(A) or _is_gpu(B):
        from rlheals.svd import _linalg_gpu
        return _linalg_gpu.principal_angles(A, B)
    A, ta = _to_host(A, "A")
    B, tb = _to_host(B, "B")
    if A.ndim < 2 or B.ndim < 2:
        raise ValueError(f"A, B: expected shape (..., n, k), got {A.shape} and {B.shape}")
    if A.size == 0 or B.size == 0:
        raise ValueError(f"A, B: empty array of shape {A.shape if A.size == 0 else B.shape}")
    if A.shape[:-1] != B.shape[:-1]:
        raise ValueError(f"A, B: shapes {A.shape} and {B.shape} differ outside the last axis")
    lead = A.shape[:-2]
    As = A.reshape((-1,) + A.shape[-2:])
    Bs = B.reshape((-1,) + B.shape[-2:])
    ext = _cpu_ext() if backend != "numpy" else None
    if ext is not None:
        res = ext.principal_angles([As[i] for i in range(len(As))], [Bs[i] for i in range(len(Bs))], _threads())
    else:
        for i in range(len(As)):
            _ref.check_matrix("A", As[i])
            _ref.check_matrix("B", Bs[i])
        res = [_ref.principal_angles(As[i], Bs[i]) for i in range(len(As))]
    out = np.stack(res).reshape(lead + (-1,)) if lead else res[0]
    return _torchify(out) if (ta or tb) else out


def projection_distance(A: Any, B: Any) -> Any:
    """‖AAᵀ − BBᵀ‖_F for orthonormal bases, from the principal angles: sqrt(2 Σ sin²θ)."""
    th = principal_angles(A, B)
    xp = _array_module(th)
    return xp.sqrt(2.0 * (xp.sin(th) ** 2).sum(axis=-1))


def relative_sigma_change(S_ref: Any, S: Any) -> np.ndarray:
    """(S − S_ref)/S_ref elementwise; 0 where both are 0, ±inf where only S_ref is 0."""
    return _ref.relative_change(np.asarray(S_ref), np.asarray(S))


def scaling_rotation_energy(W: Any, U0: Any, S0: Any, Vh0: Any) -> tuple[float, float]:
    """Split ‖U0ᵀ ΔW V0‖²_F, ΔW = W − U0 diag(S0) Vh0, into diagonal and off-diagonal energy.

    The diagonal part is the "scaling" of the reference singular directions, the
    off-diagonal part their "rotation" (the paper's split). U0 (m, k), S0 (k,), Vh0 (k, n)
    may be a truncated reference; the sums run over those k directions. float64 throughout.
    """
    W, U0, S0, Vh0 = (np.asarray(_to_host(x, n)[0], np.float64)
                      for x, n in ((W, "W"), (U0, "U0"), (S0, "S0"), (Vh0, "Vh0")))
    if U0.shape[0] != W.shape[0] or Vh0.shape[1] != W.shape[1] or U0.shape[1] != S0.size or Vh0.shape[0] != S0.size:
        raise ValueError(f"W {W.shape}, U0 {U0.shape}, S0 {S0.shape}, Vh0 {Vh0.shape}: shapes do not match")
    M = U0.T @ W @ Vh0.T - np.diag(S0)
    d = float(np.sum(np.diag(M) ** 2))
    return d, float(np.sum(M**2) - d)


def _array_module(x):
    if type(x).__module__.startswith("cupy"):
        import cupy
        return cupy
    if type(x).__module__.startswith("torch"):
        import torch
        return torch
    return np


# ---------------------------------------------------------------- analysis
@dataclass
class Reference:
    """A reference matrix decomposed once, to compare many checkpoints against.

    `w` is the matrix itself (kept, not copied), `sigma` all its singular values (float64,
    descending) and `basis` the float64 top singular vectors of its smaller side (right
    vectors if m ≥ n, else left), q × kb with kb ≤ q columns, from the eigendecomposition of
    its float64 Gram matrix. A reference made by any backend works with every backend: host
    arrays are moved to the GPU (and back) by `compare` as needed.
    """
    w: Any
    sigma: Any
    basis: Any

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.w.shape)

    @property
    def vectors(self) -> int:
        """How many singular vectors the reference keeps (compare's k can be at most this)."""
        return int(self.basis.shape[1])


def _basis_arg(basis: int | None) -> int:
    if basis is None:
        return -1
    if isinstance(basis, bool) or not isinstance(basis, (int, np.integer)) or basis < 1:
        raise ValueError(f"basis={basis!r}: expected a positive integer or None (all vectors)")
    return int(basis)


def reference(W_ref: Any, backend: str = "auto", basis: int | None = None):
    """Decompose reference matrices once (one matrix -> Reference; a list -> list).

    `basis` keeps only the top `basis` singular vectors (all when None): a checkpoint can
    then be compared at any k ≤ basis, and a cached reference of a big model stays small.
    """
    batch = _batch(W_ref, "W_ref")
    be = _backend(batch, backend)
    kb = _basis_arg(basis)
    if be == "cuda":
        from rlheals.svd import _linalg_gpu
        res = [Reference(w, s, y) for w, (s, y) in zip(batch.items, _linalg_gpu.reference(batch.items, kb))]
    elif be == "cpu":
        res = [Reference(w, s, y) for w, (s, y) in zip(batch.items, _cpu_ext().reference(batch.items, kb, _threads()))]
    else:
        res = []
        for w in batch.items:
            _ref.check_matrix("W_ref", w)
            _, s, y = _ref.gram_eig(w)
            y = y if kb < 0 else y[:, :kb]
            res.append(Reference(w, s, np.ascontiguousarray(y)))
    return res[0] if batch.kind == "single" else res


def compare(W_ref: Any, W: Any, k: int | None, backend: str = "auto"):
    """Everything the analysis needs for one (or a list of) reference/fine-tuned matrix pair(s).

    W_ref: a matrix, a `Reference` (decomposed once, reused; made by any backend), or a list
    of either; W: the fine-tuned matrix (or list, same length). k: how many top singular
    directions the angles and the energy split use (clipped to min(m, n); None = full rank).
    Returns a dict (a list of dicts): k; sigma_ref, sigma, sigma_rel_change (arrays) and its
    |.| mean/max/median and signed mean; angles_left/right (top-k principal angles, radians,
    ascending) with their mean and max; proj_dist_left/right = ‖P_ref − P‖_F of the top-k
    projectors; scaling_energy / rotation_energy = diagonal / off-diagonal part of
    ‖U0ₖᵀ (W − W_ref) V0ₖ‖²_F and rotation_fraction; spectral_gap / spectral_gap_ckpt =
    (σ_k − σ_{k+1})/σ_k of W_ref / W; delta_fro, delta_spec = ‖W − W_ref‖_F, ‖W − W_ref‖_2
    (the latter a block power-iteration estimate, from below); gap_warning: True where the
    top-k subspaces are not determined at this perturbation size (Wedin: the gap
    min(σ0_k − σ_{k+1}, σ_k − σ0_{k+1}) is at most ‖ΔW‖_2, or below 1e-8·σ_k), so angles
    there say more about σ_k ≈ σ_{k+1} than about rotation. All in float64.
    """
    kk = _k_arg(k)
    single = not isinstance(W, (list, tuple))
    Ws = [W] if single else list(W)
    refs = [W_ref] if single else list(W_ref) if isinstance(W_ref, (list, tuple)) else None
    if refs is None or len(refs) != len(Ws):
        raise ValueError(f"W_ref, W: expected matching lists, got {type(W_ref).__name__} and {len(Ws)} matrices")
    todo = [i for i, r in enumerate(refs) if not isinstance(r, Reference)]
    if todo:
        made = reference([refs[i] for i in todo], backend=backend)
        for i, r in zip(todo, made):
            refs[i] = r
    for i, (r, w) in enumerate(zip(refs, Ws)):
        if tuple(r.shape) != tuple(getattr(w, "shape", ())):
            raise ValueError(f"W[{i}]: shape {tuple(getattr(w, 'shape', ()))} does not match W_ref shape {r.shape}")
    out = _compare_many(refs, Ws, kk, backend)
    return out[0] if single else out


def _host64(x) -> np.ndarray:
    """A C-contiguous float64 host copy (or view) of a reference's sigma/basis, from any backend."""
    return np.ascontiguousarray(_host(x), dtype=np.float64)


def _compare_many(refs: list, Ws: list, k: int, backend: str) -> list[dict]:
    batch = _batch(Ws, "W")
    be = _backend(batch, backend)
    if be == "cuda":
        from rlheals.svd import _linalg_gpu
        w0s = [_linalg_gpu.like(r.w, w) for r, w in zip(refs, batch.items)]
        raw = _linalg_gpu.compare(refs, w0s, batch.items, k)
    else:
        w0s = [_to_host(_host(r.w), "W_ref")[0] for r in refs]
    if be == "cpu":
        raw = _cpu_ext().compare(w0s, [_host64(r.sigma) for r in refs], [_host64(r.basis) for r in refs],
                                 batch.items, k, _threads())
    elif be == "numpy":
        raw = []
        for r, w0, w in zip(refs, w0s, batch.items):
            _ref.check_matrix("W", w)
            _ref.check_matrix("W_ref", w0)
            if w0.dtype != w.dtype:
                raise ValueError(f"W: dtype {w.dtype} does not match W_ref dtype {w0.dtype}")
            raw.append(_ref.compare_gram(w0, _host64(r.sigma), _host64(r.basis), w, k))
    out = []
    for r, w0, w, item in zip(refs, w0s, batch.items, raw):
        s, al, ar, de, oe, kk, fro, *spec = (_host(x) for x in item)
        # the CPU extension estimates ‖ΔW‖₂ in its worker threads; the other backends here
        spec = float(spec[0]) if spec else spectral_norm_diff(w0, w)
        out.append(_ref.summarize(_host64(r.sigma), s, al, ar, de, oe, int(kk), float(fro), spec))
    return out


def spectral_norm_diff(w0: Any, w: Any, iters: int = 6, block: int = 4) -> float:
    """‖W − W0‖_2, estimated by block power iteration from a seeded start (from below; within
    a few % on the flat top spectra of fine-tuning updates, which is all the gap warning
    needs). Costs 2·(iters + 1) passes over ΔW, far less than a decomposition; runs where
    the data lives (numpy, torch or cupy). The CPU extension runs the same iteration
    (csrc/cpu/svd_cpu.cpp spectral_norm_diff_one, its own seeded start) inside `compare`."""
    xp = _array_module(w)
    d = w - w0
    start = np.random.default_rng(0).standard_normal((d.shape[1], min(block, d.shape[1])))
    if xp is np:
        x = start.astype(d.dtype)
    elif xp.__name__ == "torch":
        x = xp.from_numpy(start).to(device=d.device, dtype=d.dtype)
    else:
        x = xp.asarray(start, dtype=d.dtype)
    for _ in range(iters):
        x, _ = xp.linalg.qr(d.T @ (d @ x))
    y = d @ x
    sv = xp.linalg.svdvals(y) if xp.__name__ == "torch" else xp.linalg.svd(y, compute_uv=False)
    top = float(np.max(_host(sv)))
    return top if np.isfinite(top) else 0.0


def _host(x):
    if hasattr(x, "get"):
        return x.get()
    if type(x).__module__.startswith("torch"):
        return x.cpu().numpy()
    return x
