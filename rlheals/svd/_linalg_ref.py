"""Pure-numpy implementations behind `rlheals.svd.linalg` (fallback backend and test oracle).

The compiled extension runs the same algorithms; these versions exist so that the package
works (slowly) where the extension could not be built, and so that tests have a plain,
readable oracle. Everything is computed in float64.
"""
from __future__ import annotations

import numpy as np

# A singular value below this fraction of the largest one counts as zero when dividing.
RANK_TOL = 1e-13


def check_matrix(name: str, a: np.ndarray) -> None:
    """Mirror the extension's boundary checks so that both backends fail the same way."""
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{name}: expected a numpy array, got {type(a).__name__}")
    if a.dtype not in (np.float32, np.float64):
        raise ValueError(f"{name}: dtype {a.dtype} is not supported; expected float32 or float64")
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D matrix, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name}: empty matrix of shape {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name}: array of shape {a.shape} is not C-contiguous; pass np.ascontiguousarray(x)")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: matrix of shape {a.shape} contains NaN or inf")


def svd(a: np.ndarray, k: int | None, compute_uv: bool):
    """Thin SVD of one matrix in its own dtype (numpy works in float64 and casts back)."""
    r = min(a.shape)
    k = r if k is None else min(k, r)
    if not compute_uv:
        return np.linalg.svd(a, compute_uv=False)[:k].astype(a.dtype)
    u, s, vh = np.linalg.svd(a, full_matrices=False)
    return u[:, :k].astype(a.dtype), s[:k].astype(a.dtype), vh[:k].astype(a.dtype)


def principal_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angles between span(a) and span(b) (orthonormal columns), ascending, stable when small.

    Same method as scipy.linalg.subspace_angles: cosines from svd(aᵀb), sines from
    svd(b − a aᵀb); the sine is used where the angle is below π/4.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    c = a.T @ b
    kk = min(a.shape[1], b.shape[1])
    cos = np.clip(np.linalg.svd(c, compute_uv=False)[:kk], -1.0, 1.0)  # descending
    resid = b - a @ c if a.shape[1] >= b.shape[1] else a - b @ c.T  # kk columns
    sin = np.linalg.svd(resid, compute_uv=False)[::-1]  # ascending
    sin = np.clip(np.concatenate([np.zeros(max(0, kk - sin.size)), sin])[-kk:], 0.0, 1.0)
    return np.where(cos**2 >= 0.5, np.arcsin(sin), np.arccos(cos))


def gram_eig(a: np.ndarray):
    """Singular values (descending) and small-side singular vectors of the tall form of `a`.

    Returns (A, s, Y): A = a as float64 in tall orientation (a or aᵀ), and AᵀA = Y diag(s²) Yᵀ.
    """
    tall = a.shape[0] >= a.shape[1]
    A = np.asarray(a if tall else a.T, dtype=np.float64)
    lam, Y = np.linalg.eigh(A.T @ A)
    lam, Y = lam[::-1], Y[:, ::-1]
    return A, np.sqrt(np.clip(lam, 0.0, None)), Y


def sines_to_angles(sin2: np.ndarray) -> np.ndarray:
    """Angles from squared sines (ascending)."""
    return np.sort(np.arcsin(np.sqrt(np.clip(sin2, 0.0, 1.0))))


def compare_gram(w0: np.ndarray, s0: np.ndarray, Y0: np.ndarray, a: np.ndarray, k: int) -> tuple:
    """The analysis of one fine-tuned matrix against its reference, through float64 Grams.

    (s0, Y0) come from `gram_eig(w0)` (Y0 may keep only its first kb >= k columns); `w0`
    and `a` are the reference and fine-tuned matrices in their original orientation; k < 0
    means full rank. Small-side angles come from the off-block Y0[:, k:]ᵀ Y[:, :k] when the
    whole basis is kept (sines, exact), else from eig(I − DᵀD), D = Y0_kᵀ Y_k; big-side
    angles from the cross Gram X = A0ᵀA; the scaling/rotation split is the diagonal and
    off-diagonal energy of U0ₖᵀ ΔW V0ₖ. Returns the raw tuple that `summarize` takes:
    (sigma, angles_left, angles_right, scaling, rotation, k, ‖a − w0‖_F).
    """
    tall = a.shape[0] >= a.shape[1]
    A0 = np.asarray(w0 if tall else w0.T, dtype=np.float64)
    A, s, Y = gram_eig(a)
    q = A.shape[1]
    k = q if k < 0 else min(k, q)
    if Y0.shape[1] < k:
        raise ValueError(f"k={k}: the reference keeps only {Y0.shape[1]} singular vectors; decompose it with basis >= k")
    if s0[k - 1] <= RANK_TOL * s0[0] or s[k - 1] <= RANK_TOL * s[0]:
        raise ValueError(f"k={k}: a matrix is numerically rank-deficient at k (sigma_k ~ 0)")
    if Y0.shape[1] == q:  # small side: sines are the singular values of the block of Y in the complement of Y0_k
        D = Y0[:, k:].T @ Y[:, :k]
        small_sin2 = np.linalg.eigvalsh(D.T @ D) if q > k else np.zeros(k)
    else:
        D = Y0[:, :k].T @ Y[:, :k]
        small_sin2 = np.linalg.eigvalsh(np.eye(k) - D.T @ D)
    # big side: C = U0_kᵀ U_k through the cross Gram
    X = A0.T @ A
    C = (Y0[:, :k].T @ X @ Y[:, :k]) / s0[:k, None] / s[None, :k]
    big_sin2 = np.linalg.eigvalsh(np.eye(k) - C.T @ C)
    # energy split of U0_kᵀ ΔW V0_k (orientation does not change it)
    M = (Y0[:, :k].T @ X @ Y0[:, :k]) / s0[:k, None] - np.diag(s0[:k])
    diag_e = float(np.sum(np.diag(M) ** 2))
    off_e = float(np.sum(M**2) - diag_e)
    right, left = (small_sin2, big_sin2) if tall else (big_sin2, small_sin2)
    fro = float(np.linalg.norm(A - A0))
    return s, sines_to_angles(left), sines_to_angles(right), diag_e, off_e, k, fro


#: Relative spectral gap below which the top-k subspace counts as numerically undefined.
GAP_TOL = 1e-8


def spectral_gap(s: np.ndarray, k: int) -> float:
    """(σ_k − σ_{k+1})/σ_k (1-based k; σ_{q+1} = 0, so 1 at full rank)."""
    nxt = s[k] if k < s.size else 0.0
    return float((s[k - 1] - nxt) / s[k - 1]) if s[k - 1] > 0 else 0.0


def gap_warning(s0: np.ndarray, s: np.ndarray, k: int, delta_spec: float) -> bool:
    """True where the top-k subspaces are not determined by the data at this perturbation size.

    Wedin's theorem bounds sin of the largest angle by ‖ΔW‖_2 / δ with the cross gap
    δ = min(σ0_k − σ_{k+1}, σ_k − σ0_{k+1}); when δ ≤ ‖ΔW‖_2 the bound says nothing, and the
    angles can be large simply because σ_k ≈ σ_{k+1}. Also True where either relative gap is
    below GAP_TOL (degenerate even without a perturbation).
    """
    nxt0 = s0[k] if k < s0.size else 0.0
    nxt = s[k] if k < s.size else 0.0
    delta = min(s0[k - 1] - nxt, s[k - 1] - nxt0)
    return bool(delta <= delta_spec or min(spectral_gap(s0, k), spectral_gap(s, k)) <= GAP_TOL)


def summarize(s0, s, ang_left, ang_right, diag_e, off_e, k, delta_fro=float("nan"), delta_spec=float("nan")) -> dict:
    """The dict that `rlheals.svd.linalg.compare` returns, built from the raw pieces."""
    s0 = np.asarray(s0, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    rel = relative_change(s0, s)
    absrel = np.abs(rel)
    total = diag_e + off_e
    return {
        "k": int(k),
        "sigma_ref": s0,
        "sigma": s,
        "sigma_rel_change": rel,
        "sigma_rel_change_mean": float(absrel.mean()),
        "sigma_rel_change_max": float(absrel.max()),
        "sigma_rel_change_median": float(np.median(absrel)),
        "sigma_rel_change_signed_mean": float(rel.mean()),
        "angles_left": np.asarray(ang_left),
        "angles_right": np.asarray(ang_right),
        "angle_left_mean": float(np.mean(ang_left)),
        "angle_left_max": float(np.max(ang_left)),
        "angle_right_mean": float(np.mean(ang_right)),
        "angle_right_max": float(np.max(ang_right)),
        "proj_dist_left": float(np.sqrt(2.0 * np.sum(np.sin(ang_left) ** 2))),
        "proj_dist_right": float(np.sqrt(2.0 * np.sum(np.sin(ang_right) ** 2))),
        "scaling_energy": float(diag_e),
        "rotation_energy": float(off_e),
        "rotation_fraction": float(off_e / total) if total > 0 else 0.0,
        "spectral_gap": spectral_gap(s0, int(k)),
        "spectral_gap_ckpt": spectral_gap(s, int(k)),
        "delta_fro": float(delta_fro),
        "delta_spec": float(delta_spec),
        "gap_warning": gap_warning(s0, s, int(k), float(delta_spec)) if np.isfinite(delta_spec) else False,
    }


def relative_change(s0: np.ndarray, s: np.ndarray) -> np.ndarray:
    """(s − s0)/s0, with 0 where both are 0 and ±inf where only s0 is 0."""
    s0 = np.asarray(s0, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    diff = s - s0
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(s0 != 0, diff / np.where(s0 != 0, s0, 1.0), np.where(diff == 0, 0.0, np.sign(diff) * np.inf))
    return out


def compare_svd(w0: np.ndarray, w: np.ndarray, k: int) -> dict:
    """Oracle for tests: two full float64 SVDs and scipy-style angles (slow, obviously right)."""
    u0, s0, vh0 = np.linalg.svd(np.asarray(w0, np.float64), full_matrices=False)
    u, s, vh = np.linalg.svd(np.asarray(w, np.float64), full_matrices=False)
    k = s.size if k is None or k < 0 else min(k, s.size)
    al = principal_angles(u0[:, :k], u[:, :k])
    ar = principal_angles(vh0[:k].T, vh[:k].T)
    M = u0[:, :k].T @ (np.asarray(w, np.float64) - np.asarray(w0, np.float64)) @ vh0[:k].T
    diag_e = float(np.sum(np.diag(M) ** 2))
    d = np.asarray(w, np.float64) - np.asarray(w0, np.float64)
    return summarize(s0, s, al, ar, diag_e, float(np.sum(M**2) - diag_e), k, float(np.linalg.norm(d)),
                     float(np.linalg.norm(d, 2)))
