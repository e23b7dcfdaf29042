"""Spectral analysis of fine-tuning: how each weight matrix moved against a reference.

For every attention and MLP projection (`layers.<i>.{self_attn,mlp}.<type>.weight`) of a
checkpoint, `rlheals.svd.linalg.compare` gives the relative singular-value change, the
principal angles between the top-k left and right singular subspaces, the projection
distances and the split of ‖U₀ₖᵀ ΔW V₀ₖ‖² into scaling (diagonal) and rotation
(off-diagonal) energy. One row per matrix; angles are in radians. `rlheals.svd.null` adds
the same measures for a random perturbation of the same Frobenius norm (the null that
scorecard finding 4 compares with), the spectral gap at k and |Δσ|/σ over the top k.

Weights are read straight from the safetensors files (no model is instantiated), in
float32 or upcast from bf16; the linear algebra itself runs in float64.
"""
from __future__ import annotations

import logging
import os

import numpy as np

from rlheals.svd.edits import load_tensors, matrix_info
from rlheals.svd.null import NULL_COLUMNS, null_columns

log = logging.getLogger(__name__)

#: Scalar results of `linalg.compare` kept in the table, in column order.
METRICS = [
    "sigma_rel_change_mean", "sigma_rel_change_max", "sigma_rel_change_median", "sigma_rel_change_signed_mean",
    "angle_left_mean", "angle_left_max", "angle_right_mean", "angle_right_max",
    "proj_dist_left", "proj_dist_right", "scaling_energy", "rotation_energy", "rotation_fraction",
]
KEY_COLUMNS = ["checkpoint", "reference", "reference_ckpt", "name", "layer", "matrix", "rows", "cols", "k"]


def load_matrices(model_dir: str | os.PathLike, matrices) -> dict[str, np.ndarray]:
    """{weight name: float32 array} of the selected projection types, in layer order.

    Read with safetensors' numpy reader (no torch import, which dominates the run time of
    a small analysis job); bf16 weights, which numpy cannot hold, go through torch.
    """
    from safetensors import safe_open

    from rlheals.svd.edits import weight_files

    wanted = set(matrices)
    out = {}
    for path in weight_files(model_dir):
        with safe_open(str(path), framework="np") as fh:
            for name in fh.keys():
                info = matrix_info(name)
                if info is None or info[1] not in wanted:
                    continue
                if fh.get_slice(name).get_dtype() in ("BF16", "F8_E4M3", "F8_E5M2"):
                    out[name] = load_tensors(model_dir, {name})[name].float().numpy()
                else:
                    out[name] = fh.get_tensor(name)
    out = {n: np.ascontiguousarray(w, dtype=np.float32) for n, w in out.items() if w.ndim == 2}
    if not out:
        raise ValueError(f"'{model_dir}' has no weights named layers.<i>.(self_attn|mlp).<{'|'.join(sorted(wanted))}>.weight")
    return dict(sorted(out.items(), key=lambda kv: (matrix_info(kv[0])[0], kv[0])))


def save_reference(model_dir: str | os.PathLike, matrices, path: str | os.PathLike, backend: str = "auto") -> None:
    """Decompose a reference model's matrices once and store them (npz: <name>/sigma, <name>/basis),
    so that every checkpoint compared against it skips the reference's decomposition."""
    from rlheals.svd import linalg
    from rlheals.atomic import atomic_path

    ref = load_matrices(model_dir, matrices)
    # host arrays: a cuda analysis decomposes its references on the GPU itself
    decomposed = linalg.reference(list(ref.values()), backend="auto" if backend == "cuda" else backend)
    arrays = {}
    for name, r in zip(ref, decomposed):
        arrays[f"{name}/sigma"] = np.asarray(r.sigma, dtype=np.float64)
        arrays[f"{name}/basis"] = np.asarray(r.basis, dtype=np.float64)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def _references(ref: dict, cache, backend: str) -> list:
    from rlheals.svd import linalg

    if cache is None:
        return linalg.reference(list(ref.values()), backend=backend)
    with np.load(cache) as npz:
        missing = [n for n in ref if f"{n}/sigma" not in npz]
        if missing:
            raise ValueError(f"reference cache '{cache}' lacks {missing[:3]}; delete it so that it is rebuilt")
        return [linalg.Reference(w, npz[f"{n}/sigma"], npz[f"{n}/basis"]) for n, w in ref.items()]


def analyze(
    ckpt_dir: str | os.PathLike,
    ref_dir: str | os.PathLike,
    k: int,
    matrices,
    labels: dict | None = None,
    backend: str = "auto",
    cache: str | os.PathLike | None = None,
    seed: int = 0,
):
    """Table (pandas) with one row per analysed matrix of `ckpt_dir` against `ref_dir`.

    `labels` fills the checkpoint/reference/reference_ckpt columns; `cache` is the
    reference's decomposition from `save_reference`. k is clipped to each matrix's rank
    (a k_proj of a GQA model can be smaller than the others). `seed` (the config seed) seeds
    the null perturbations (rlheals.svd.null), one stream per matrix.
    """
    import pandas as pd

    from rlheals.svd import linalg

    ref = load_matrices(ref_dir, matrices)
    cur = load_matrices(ckpt_dir, matrices)
    missing = sorted(set(ref) ^ set(cur))
    if missing:
        raise ValueError(f"'{ckpt_dir}' and '{ref_dir}' differ in their weights (e.g. {missing[:3]}); same architecture expected")
    for name, w0 in ref.items():
        if cur[name].shape != w0.shape:
            raise ValueError(f"'{name}': shape {cur[name].shape} in '{ckpt_dir}' but {w0.shape} in '{ref_dir}'")
    if backend == "cuda":  # linalg runs where the data lives: move it to the GPU
        import torch

        ref = {n: torch.from_numpy(w).cuda() for n, w in ref.items()}
        refs, mats = linalg.reference(list(ref.values()), backend=backend), [torch.from_numpy(cur[n]).cuda() for n in ref]
    else:
        refs, mats = _references(ref, cache, backend), [cur[n] for n in ref]
    results = linalg.compare(refs, mats, k, backend=backend)
    labels = labels or {}
    rows = []
    for i, ((name, w0), result) in enumerate(zip(ref.items(), results)):
        layer, mtype = matrix_info(name)
        row = {
            "checkpoint": labels.get("checkpoint"), "reference": labels.get("reference"),
            "reference_ckpt": labels.get("reference_ckpt"), "name": name, "layer": layer, "matrix": mtype,
            "rows": w0.shape[0], "cols": w0.shape[1], "k": int(result["k"]),
        }
        row.update({m: float(result[m]) for m in METRICS})
        row.update(null_columns(w0, cur[name], result, seed, (row["checkpoint"], row["reference"], name), backend,
                                reference=refs[i]))
        rows.append(row)
    log.info("analysed %d matrices of %s against %s", len(rows), ckpt_dir, ref_dir)
    return pd.DataFrame(rows, columns=KEY_COLUMNS + METRICS + NULL_COLUMNS)


def aggregate(paths) -> "pandas.DataFrame":  # noqa: F821
    """results/tables/analysis.csv: every per-comparison table, stacked."""
    import pandas as pd

    frames = [pd.read_csv(p) for p in paths]
    if not frames:
        return pd.DataFrame(columns=KEY_COLUMNS + METRICS + NULL_COLUMNS)
    return pd.concat(frames, ignore_index=True)
