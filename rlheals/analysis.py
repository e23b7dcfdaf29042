"""Spectral analysis of fine-tuning: how each weight matrix moved against a reference.

For every attention and MLP projection (`layers.<i>.{self_attn,mlp}.<type>.weight`) of a
checkpoint, `rlheals.linalg.compare` gives the relative singular-value change, the
principal angles between the top-k left and right singular subspaces, the projection
distances and the split of ‖U₀ₖᵀ ΔW V₀ₖ‖² into scaling (diagonal) and rotation
(off-diagonal) energy. One row per matrix; angles are in radians.

Weights are read straight from the safetensors files (no model is instantiated), in
float32 or upcast from bf16; the linear algebra itself runs in float64.
"""
from __future__ import annotations

import logging
import os

import numpy as np

from rlheals.edits import load_tensors, matrix_info

log = logging.getLogger(__name__)

#: Scalar results of `linalg.compare` kept in the table, in column order.
METRICS = [
    "sigma_rel_change_mean", "sigma_rel_change_max", "sigma_rel_change_median", "sigma_rel_change_signed_mean",
    "angle_left_mean", "angle_left_max", "angle_right_mean", "angle_right_max",
    "proj_dist_left", "proj_dist_right", "scaling_energy", "rotation_energy", "rotation_fraction",
]
KEY_COLUMNS = ["checkpoint", "reference", "reference_ckpt", "name", "layer", "matrix", "rows", "cols", "k"]


def load_matrices(model_dir: str | os.PathLike, matrices) -> dict[str, np.ndarray]:
    """{weight name: float32 array} of the selected projection types, in layer order."""
    wanted = set(matrices)
    tensors = load_tensors(model_dir)
    out = {}
    for name, tensor in tensors.items():
        info = matrix_info(name)
        if info is not None and info[1] in wanted and tensor.ndim == 2:
            out[name] = np.ascontiguousarray(tensor.float().numpy())
    if not out:
        raise ValueError(f"'{model_dir}' has no weights named layers.<i>.(self_attn|mlp).<{'|'.join(sorted(wanted))}>.weight")
    return dict(sorted(out.items(), key=lambda kv: (matrix_info(kv[0])[0], kv[0])))


def save_reference(model_dir: str | os.PathLike, matrices, path: str | os.PathLike, backend: str = "auto") -> None:
    """Decompose a reference model's matrices once and store them (npz: <name>/sigma, <name>/basis),
    so that every checkpoint compared against it skips the reference's decomposition."""
    from rlheals import linalg
    from rlheals.atomic import atomic_path

    ref = load_matrices(model_dir, matrices)
    decomposed = linalg.reference(list(ref.values()), backend=backend)
    arrays = {}
    for name, r in zip(ref, decomposed):
        arrays[f"{name}/sigma"] = np.asarray(r.sigma, dtype=np.float64)
        arrays[f"{name}/basis"] = np.asarray(r.basis, dtype=np.float64)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def _references(ref: dict, cache, backend: str) -> list:
    from rlheals import linalg

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
):
    """Table (pandas) with one row per analysed matrix of `ckpt_dir` against `ref_dir`.

    `labels` fills the checkpoint/reference/reference_ckpt columns; `cache` is the
    reference's decomposition from `save_reference`. k is clipped to each matrix's rank
    (a k_proj of a GQA model can be smaller than the others).
    """
    import pandas as pd

    from rlheals import linalg

    ref = load_matrices(ref_dir, matrices)
    cur = load_matrices(ckpt_dir, matrices)
    missing = sorted(set(ref) ^ set(cur))
    if missing:
        raise ValueError(f"'{ckpt_dir}' and '{ref_dir}' differ in their weights (e.g. {missing[:3]}); same architecture expected")
    for name, w0 in ref.items():
        if cur[name].shape != w0.shape:
            raise ValueError(f"'{name}': shape {cur[name].shape} in '{ckpt_dir}' but {w0.shape} in '{ref_dir}'")
    results = linalg.compare(_references(ref, cache, backend), [cur[n] for n in ref], k, backend=backend)
    labels = labels or {}
    rows = []
    for (name, w0), result in zip(ref.items(), results):
        layer, mtype = matrix_info(name)
        row = {
            "checkpoint": labels.get("checkpoint"), "reference": labels.get("reference"),
            "reference_ckpt": labels.get("reference_ckpt"), "name": name, "layer": layer, "matrix": mtype,
            "rows": w0.shape[0], "cols": w0.shape[1], "k": int(result["k"]),
        }
        row.update({m: float(result[m]) for m in METRICS})
        rows.append(row)
    log.info("analysed %d matrices of %s against %s", len(rows), ckpt_dir, ref_dir)
    return pd.DataFrame(rows, columns=KEY_COLUMNS + METRICS)


def summarize_checkpoint(table) -> dict:
    """Means over all matrices: what the σ-drift vs angle-drift figure and the scorecard use."""
    return {
        "sigma_rel_change_mean": float(table["sigma_rel_change_mean"].mean()),
        "angle_mean": float(((table["angle_left_mean"] + table["angle_right_mean"]) / 2).mean()),
        "rotation_fraction": float(table["rotation_fraction"].mean()),
    }


def aggregate(paths) -> "pandas.DataFrame":  # noqa: F821
    """results/tables/analysis.csv: every per-comparison table, stacked."""
    import pandas as pd

    frames = [pd.read_csv(p) for p in paths]
    if not frames:
        return pd.DataFrame(columns=KEY_COLUMNS + METRICS)
    return pd.concat(frames, ignore_index=True)
