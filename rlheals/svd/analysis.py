"""Spectral analysis of fine-tuning: how each weight matrix moved against a reference.

For every attention and MLP projection (matched by module type and shape, see
`rlheals.svd.weights`) of a checkpoint, `rlheals.svd.linalg.compare` gives the relative
singular-value change, the principal angles between the top-k left and right singular
subspaces, the projection distances, the split of ‖U₀ₖᵀ ΔW V₀ₖ‖² into scaling (diagonal)
and rotation (off-diagonal) energy, the spectral gap at k and a warning where the top-k
subspace is not determined. One row per matrix; angles are in radians.

Streaming: the two models' safetensors shards are read one matrix at a time (a group of as
many matrices as there are workers), each group is compared and written out, and only the
reference's decomposition of that group is loaded from its cache, so the memory is a few
matrices whatever the model's size. Weights are float32 (bf16/f16 upcast exactly); the
linear algebra runs in float64, on the GPU when the job has one (`backend: auto`).
`rlheals.svd.null` adds the same measures for a random perturbation of the same Frobenius
norm (the null that scorecard finding 4 compares with) and |Δσ|/σ over the top k.
"""
from __future__ import annotations

import csv
import logging
import os
import time
import zipfile

import numpy as np

from rlheals.svd import weights
from rlheals.svd.null import NULL_COLUMNS, null_columns
from rlheals.svd.weights import Matrix

log = logging.getLogger(__name__)

#: Scalar results of `linalg.compare` kept in the table, in column order.
METRICS = [
    "sigma_rel_change_mean", "sigma_rel_change_max", "sigma_rel_change_median", "sigma_rel_change_signed_mean",
    "angle_left_mean", "angle_left_max", "angle_right_mean", "angle_right_max",
    "proj_dist_left", "proj_dist_right", "scaling_energy", "rotation_energy", "rotation_fraction",
    "spectral_gap", "spectral_gap_ckpt", "delta_fro", "delta_spec", "gap_warning",
]
KEY_COLUMNS = ["checkpoint", "reference", "reference_ckpt", "name", "layer", "matrix", "rows", "cols", "k"]


def resolve_backend(backend: str) -> str:
    """'cuda' or 'cpu' for a config's analysis.backend (see `linalg.job_device`)."""
    from rlheals.svd import linalg

    return linalg.job_device(backend)


def group_size(device: str) -> int:
    """How many matrices are in flight at once: one per CPU worker, or the GPU's side streams."""
    from rlheals.svd import _linalg_gpu, linalg

    return max(1, _linalg_gpu.STREAMS if device == "cuda" else linalg._threads())


def basis_size(q: int, k: int | None) -> int | None:
    """Singular vectors a cached reference keeps for top-k comparisons: k when k is at most half
    the rank (cheap, and a 7B model's cache stays small), else all (exact small-side sines)."""
    if k is None or 2 * min(k, q) > q:
        return None
    return int(k)


def _device_put(arrays: list, device: str) -> list:
    if device != "cuda":
        return arrays
    import torch

    return [torch.from_numpy(a).pin_memory().to("cuda", non_blocking=True) for a in arrays]


def _groups(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def load_matrices(model_dir: str | os.PathLike, matrices) -> dict[str, np.ndarray]:
    """{weight name: float32 array} of the selected projection types, in layer order (the whole
    set in memory: for small models and tests; the analysis itself streams)."""
    index = weights.tensor_index(model_dir)
    return {m.name: weights.read_matrix(index, m) for m in weights.plan(model_dir, matrices, index)}


def save_reference(model_dir: str | os.PathLike, matrices, path: str | os.PathLike, backend: str = "auto",
                   top_k: int | None = None) -> None:
    """Decompose a reference model's matrices once and store them (npz: <name>/sigma, <name>/basis),
    so that every checkpoint compared against it skips the reference's decomposition.

    Streamed: one group of matrices is read, decomposed and appended to the archive at a
    time. With `top_k`, matrices whose rank is at least 2·top_k keep only the top_k vectors.
    """
    from rlheals.atomic import atomic_path
    from rlheals.svd import linalg

    device = resolve_backend(backend)
    index = weights.tensor_index(model_dir)
    mats = weights.plan(model_dir, matrices, index)
    t0 = time.perf_counter()
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for done, group in enumerate(_groups(mats, group_size(device))):
            ws = _device_put([weights.read_matrix(index, m) for m in group], device)
            for m, w in zip(group, ws):  # the C++ call takes one basis size; sizes differ by rank
                r = linalg.reference(w, basis=basis_size(min(m.shape), top_k))
                for key, arr in (("sigma", r.sigma), ("basis", r.basis)):
                    with zf.open(f"{m.name}/{key}.npy", "w", force_zip64=True) as fh:
                        np.lib.format.write_array(fh, np.ascontiguousarray(linalg._host(arr), dtype=np.float64))
            log.info("reference %s: %d/%d matrices (%.1f s)", model_dir, min((done + 1) * len(group), len(mats)),
                     len(mats), time.perf_counter() - t0)


def _check_same(mats0: list[Matrix], mats1: list[Matrix], ckpt_dir, ref_dir) -> None:
    names0, names1 = {m.name: m for m in mats0}, {m.name: m for m in mats1}
    missing = sorted(set(names0) ^ set(names1))
    if missing:
        raise ValueError(f"'{ckpt_dir}' and '{ref_dir}' differ in their weights (e.g. {missing[:3]}); "
                         "same architecture expected")
    for name, m0 in names0.items():
        if names1[name].shape != m0.shape:
            raise ValueError(f"'{name}': shape {names1[name].shape} in '{ckpt_dir}' but {m0.shape} in '{ref_dir}'")


def analyze(
    ckpt_dir: str | os.PathLike,
    ref_dir: str | os.PathLike,
    k: int | None,
    matrices,
    labels: dict | None = None,
    backend: str = "auto",
    cache: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    seed: int = 0,
):
    """Table (pandas) with one row per analysed matrix of `ckpt_dir` against `ref_dir`.

    `labels` fills the checkpoint/reference/reference_ckpt columns (other keys, e.g. seed,
    become leading columns); `cache` is the
    reference's decomposition from `save_reference`. k is clipped to each matrix's rank
    (a k_proj of a GQA model can be smaller than the others); None = full rank. With `out`,
    rows are written to that CSV as each group finishes (renamed into place at the end).
    `seed` (the config seed) seeds the null perturbations (rlheals.svd.null), one stream per
    matrix, independent of the order matrices are processed in.
    """
    import pandas as pd

    from rlheals.svd import linalg

    device = resolve_backend(backend)
    index0, index1 = weights.tensor_index(ref_dir), weights.tensor_index(ckpt_dir)
    mats = weights.plan(ref_dir, matrices, index0)
    _check_same(mats, weights.plan(ckpt_dir, matrices, index1), ckpt_dir, ref_dir)
    mats1 = {m.name: m for m in weights.plan(ckpt_dir, matrices, index1)}
    labels = labels or {}
    lead = [c for c in labels if c not in KEY_COLUMNS]  # e.g. seed: leading columns, in order
    columns = lead + KEY_COLUMNS + METRICS + NULL_COLUMNS
    rows: list[dict] = []
    npz = np.load(cache) if cache is not None else None
    t0 = time.perf_counter()
    try:
        if npz is not None:
            missing = [m.name for m in mats if f"{m.name}/sigma" not in npz.files]
            if missing:
                raise ValueError(f"reference cache '{cache}' lacks {missing[:3]}; delete it so that it is rebuilt")
        with _RowSink(out, columns) as sink:
            for group in _groups(mats, group_size(device)):
                w0s = _device_put([weights.read_matrix(index0, m) for m in group], device)
                ws = _device_put([weights.read_matrix(index1, mats1[m.name]) for m in group], device)
                if npz is not None:
                    refs = [linalg.Reference(w0, npz[f"{m.name}/sigma"], npz[f"{m.name}/basis"])
                            for m, w0 in zip(group, w0s)]
                else:
                    refs = linalg.reference(w0s)
                results = linalg.compare(refs, ws, k)  # runs where the data lives: GPU or CPU
                for m, result, w0, w, r in zip(group, results, w0s, ws, refs):
                    row = {c: labels[c] for c in lead}
                    row |= {"checkpoint": labels.get("checkpoint"), "reference": labels.get("reference"),
                           "reference_ckpt": labels.get("reference_ckpt"), "name": m.name, "layer": m.layer,
                           "matrix": m.mtype, "rows": m.rows, "cols": m.cols, "k": int(result["k"])}
                    row.update({c: (bool(result[c]) if c == "gap_warning" else float(result[c])) for c in METRICS})
                    host_ref = r if isinstance(r.w, np.ndarray) else None
                    row.update(null_columns(w0, w, result, seed, (row["checkpoint"], row["reference"], m.name),
                                            "auto", reference=host_ref))
                    rows.append(row)
                    sink.write(row)
                del w0s, ws, refs, results
                log.info("analysed %d/%d matrices of %s against %s (%.1f s)", len(rows), len(mats), ckpt_dir, ref_dir,
                         time.perf_counter() - t0)
    finally:
        if npz is not None:
            npz.close()
    warned = sum(r["gap_warning"] for r in rows)
    if warned:
        log.warning("%d of %d matrices have gap_warning (sigma_k ~ sigma_k+1 at k=%s): their angles measure the "
                    "gap, not a rotation", warned, len(rows), k)
    return pd.DataFrame(rows, columns=columns)


class _RowSink:
    """Append rows to a CSV as they come (atomically renamed at the end), or do nothing."""

    def __init__(self, path, columns):
        self.path, self.columns = path, columns
        self._ctx = self._fh = self._writer = None

    def __enter__(self):
        if self.path is not None:
            from rlheals.atomic import atomic_path

            self._ctx = atomic_path(self.path)
            tmp = self._ctx.__enter__()
            self._fh = open(tmp, "w", newline="")
            self._writer = csv.DictWriter(self._fh, fieldnames=self.columns)
            self._writer.writeheader()
        return self

    def write(self, row: dict) -> None:
        if self._writer is not None:
            self._writer.writerow(row)
            self._fh.flush()

    def __exit__(self, *exc):
        if self._ctx is None:
            return False
        self._fh.close()
        return self._ctx.__exit__(*exc)


def aggregate(paths) -> "pandas.DataFrame":  # noqa: F821
    """results/tables/analysis.csv: every per-comparison table, stacked."""
    import pandas as pd

    frames = [pd.read_csv(p) for p in paths]
    if not frames:
        return pd.DataFrame(columns=KEY_COLUMNS + METRICS + NULL_COLUMNS + PAPER_COLUMNS)
    table = pd.concat(frames, ignore_index=True)
    # the paper's chordal distance (chordal.png): sqrt(mean_i sin^2 theta_i) of the top-k
    # subspaces, in [0, 1]; the projection distance is sqrt(2 sum_i sin^2 theta_i)
    for side in ("left", "right"):
        table[f"chordal_{side}"] = table[f"proj_dist_{side}"] / np.sqrt(2.0 * table["k"].astype(float))
    return table


#: Columns `aggregate` adds: the paper's chordal distance of the top-k left/right subspaces
#: (its sigma drift, mean |dsigma|/sigma over all singular values, is sigma_rel_change_mean).
PAPER_COLUMNS = ["chordal_left", "chordal_right"]
