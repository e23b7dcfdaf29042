"""Rounding bounds of the SVD analysis, relative to each matrix's scale, shared by the svd tests.

Numeric tests compare against these (never against absolute numbers such as 1e-20), so they
hold whichever BLAS kernel (OPENBLAS_CORETYPE) or CPU runs them.
"""
from __future__ import annotations

import numpy as np

EPS = np.finfo(np.float64).eps
EPS32 = np.finfo(np.float32).eps


def identical_bounds(w: np.ndarray, k: int) -> dict:
    """What comparing W with itself may leave, from the rounding of the Gram route (any BLAS kernel).

    sigma^2 comes from a Gram matrix whose entries carry eps * ||W||_F^2, so sigma_i is off by a
    relative eps * ||W||_F^2 / sigma_i^2; angles come from sin^2 = eigenvalues of I - C^T C, so
    they are off by sqrt(eps) * cond(W); the energy split's entries by eps * ||W||_F^2 / sigma_min.
    """
    s = np.linalg.svd(np.asarray(w, np.float64), compute_uv=False)
    f2 = float(np.linalg.norm(np.asarray(w, np.float64)) ** 2)
    return {
        "sigma_rel": 64 * EPS * f2 / s[-1] ** 2,
        "angle": np.sqrt(64 * EPS) * s[0] / s[-1],
        "proj_dist": np.sqrt(2 * k) * np.sqrt(64 * EPS) * s[0] / s[-1],
        "energy": (k * 64 * EPS * f2 / s[-1]) ** 2,
    }


def svd_vector_tol(*mats: np.ndarray) -> float:
    """Bound on entries rebuilt from float64 singular vectors: vectors carry eps * sigma_max / gap,
    scaled back by sigma_max (the smallest gap between singular values of any input)."""
    spectra = [np.linalg.svd(np.asarray(m, np.float64), compute_uv=False) for m in mats]
    scale = max(float(s[0]) for s in spectra)
    gap = min(float(np.min(-np.diff(s))) if s.size > 1 else scale for s in spectra)
    return 64 * EPS * scale * scale / gap
