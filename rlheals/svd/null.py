"""A null model for the spectral analysis: what a random perturbation of the same size does.

Principal angles of the top-k singular subspaces grow like ‖ΔW‖/gap_k and relative
singular-value changes like ‖ΔW‖/σ_i, so *any* perturbation, even pure noise, shows
"large angles and small Δσ/σ" once the spectral gap at k is small against the singular
values. The paper's reading (fine-tuning rotates directions while keeping σ) says more
than that only if the observed ΔW rotates more, relative to how much it rescales, than a
random ΔW of the same Frobenius norm. For every analysed matrix this module draws one
such perturbation E (i.i.d. Gaussian, scaled to ‖E‖_F = ‖W − W₀‖_F, seeded per matrix),
compares W₀ + E with W₀ exactly as the observed W is compared (rlheals.svd.linalg.compare,
same k, same dtype), and returns the null's columns next to the observed ones:

- ``null_angle_mean``: mean of the null's top-k left and right principal angles (radians);
- ``null_sigma_rel_change_topk`` / ``null_sigma_rel_change_mean``: its mean |Δσ|/σ over the
  top k and over all singular values;
- ``sigma_rel_change_topk``: the observed mean |Δσ|/σ over the same top k as the angles.

The size both share is the analysis row's ``delta_fro`` (‖W − W₀‖_F) and the gap at k its
``spectral_gap`` (rlheals.svd.linalg.compare computes both).

The scorecard (finding 4) compares the observed rotation-to-scaling ratio with the null's
matrix by matrix.
"""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

#: Columns `null_columns` adds to each analysis row, in order.
NULL_COLUMNS = ["sigma_rel_change_topk", "null_angle_mean", "null_sigma_rel_change_topk", "null_sigma_rel_change_mean"]


def matrix_seed(seed: int, *labels: Any) -> int:
    """A seed for one matrix from the config seed and its labels (checkpoint, reference, name),
    independent of the order matrices are processed in (so streamed analyses agree)."""
    text = "\x1f".join([str(int(seed))] + [str(x) for x in labels])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def _host(x) -> np.ndarray:
    if type(x).__module__.startswith("torch"):
        return x.detach().cpu().numpy()
    if hasattr(x, "get") and type(x).__module__.startswith("cupy"):
        return x.get()
    return np.asarray(x)


def topk_sigma_change(sigma_ref, sigma, k: int) -> float:
    """Mean |Δσ|/σ over the top k singular values (the ones whose directions the angles measure)."""
    s0, s = np.asarray(sigma_ref, np.float64)[:k], np.asarray(sigma, np.float64)[:k]
    return float(np.mean(np.abs(s - s0) / s0)) if s0.size else float("nan")


def null_columns(w_ref, w, result: dict, seed: int, labels: tuple = (), backend: str = "auto", reference=None) -> dict:
    """The null columns for one matrix pair (see the module doc).

    w_ref, w: the reference and observed matrices (numpy or torch, any device: the null is
    computed on the host); result: `linalg.compare(w_ref, w, k)` of the observed pair; seed:
    the config seed, mixed with `labels` into this matrix's own stream; reference: the
    host `linalg.Reference` of w_ref if the caller has it (saves decomposing w_ref again).
    """
    from rlheals.svd import linalg

    w0 = _host(w_ref)
    w1 = _host(w)
    k = int(result["k"])
    delta = np.asarray(w1, np.float64) - np.asarray(w0, np.float64)
    norm = float(np.linalg.norm(delta))
    out = {"sigma_rel_change_topk": topk_sigma_change(result["sigma_ref"], result["sigma"], k)}
    if norm == 0.0:
        return {**out, "null_angle_mean": 0.0, "null_sigma_rel_change_topk": 0.0, "null_sigma_rel_change_mean": 0.0}
    rng = np.random.default_rng(matrix_seed(seed, *labels))
    e = rng.standard_normal(w0.shape)
    e *= norm / np.linalg.norm(e)
    w_null = np.ascontiguousarray((np.asarray(w0, np.float64) + e).astype(w1.dtype))
    ref = reference if isinstance(reference, linalg.Reference) and isinstance(reference.w, np.ndarray) \
        and reference.w.dtype == w1.dtype else np.ascontiguousarray(w0.astype(w1.dtype))
    null = linalg.compare(ref, w_null, k, backend="numpy" if backend == "numpy" else "auto")
    angles = np.concatenate([np.asarray(null["angles_left"]), np.asarray(null["angles_right"])])
    out.update({
        "null_angle_mean": float(angles.mean()),
        "null_sigma_rel_change_topk": topk_sigma_change(null["sigma_ref"], null["sigma"], k),
        "null_sigma_rel_change_mean": float(null["sigma_rel_change_mean"]),
    })
    return out
