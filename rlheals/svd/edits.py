"""SVD edits: build a model whose weight matrices mix a donor's and a target's SVD.

For one matrix with SVDs W_T = U_T diag(s_T) V_Tᵀ (target) and W_D = U_D diag(s_D) V_Dᵀ
(donor), rank r = min(shape), and 0 <= k <= r:

- ``directions``: the donor's top-k singular vectors with all of the target's singular
  values, W' = [U_D,:k | U_T,k:] diag(s_T) [V_D,:k | V_T,k:]ᵀ (the paper's
  direction-only restore, `svd_recover_dir.py`).
- ``values``: the donor's top-k singular values on the target's vectors,
  W' = U_T diag([s_D,:k, s_T,k:]) V_Tᵀ.
- ``triplets_top``: the donor's top-k triplets and the target's others.
- ``triplets_bottom``: the donor's bottom-k triplets and the target's others.

k = 0 returns the target unchanged. At k = r every edit is still what its name says:
``directions`` gives U_D diag(s_T) V_Dᵀ and ``values`` gives U_T diag(s_D) V_Tᵀ; only the
triplet swaps become the donor's matrix. (The paper's code returned W_D whole whenever
k_top + k_tail reached r, so its full-rank "direction-only" edits were plain copies.)

Pairs (u_i, v_i) always come from the same SVD, so the sign ambiguity of singular
vectors cancels. The SVDs run in float64 (rlheals.svd.linalg: LAPACK on all CPU workers,
or cuSOLVER on the GPU when the job has one) and the result is cast back to the stored
dtype. Only the attention and MLP projections are edited (embeddings and the LM head are
left to the target), optionally restricted to a layer range and matrix types.

Streaming: the target's directory is copied, then each group of selected matrices is read
from both models (a byte range of a shard each), edited, and written over its rows in the
copy, so the memory is a few matrices whatever the model's size.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field

import numpy as np

from rlheals.svd import weights
from rlheals.svd.weights import MATRIX_TYPES, weight_files  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

KINDS = ("directions", "values", "triplets_top", "triplets_bottom")


def matrix_info(name: str) -> tuple[int, str] | None:
    """(layer, matrix type) of an attention/MLP projection weight name, else None."""
    m = weights._LAYER.match(name)
    if m is None:
        return None
    plain = weights._PLAIN.match(m.group(2))
    return (int(m.group(1)), plain.group(2)) if plain else None


def _check(w_target, w_donor, kind: str, k: int) -> None:
    if kind not in KINDS:
        raise ValueError(f"edit kind {kind!r}: expected one of {', '.join(KINDS)}")
    if tuple(w_target.shape) != tuple(w_donor.shape) or w_target.ndim != 2:
        raise ValueError(f"target {tuple(w_target.shape)} and donor {tuple(w_donor.shape)} must be matrices of the same shape")
    rank = min(w_target.shape)
    if not 0 <= k <= rank:
        raise ValueError(f"k={k} is outside 0..{rank} (the rank of a {w_target.shape[0]}x{w_target.shape[1]} matrix)")


def _combine(xp, kind: str, k: int, t, d):
    """The edited matrix from the two SVDs t = (U_T, s_T, Vh_T), d = (U_D, s_D, Vh_D)."""
    (u_t, s_t, vt_t), (u_d, s_d, vt_d) = t, d
    cat = np.concatenate if xp is np else xp.cat
    if kind == "directions":
        u = cat([u_d[:, :k], u_t[:, k:]], axis=1) if xp is np else cat([u_d[:, :k], u_t[:, k:]], 1)
        vt = cat([vt_d[:k], vt_t[k:]], axis=0) if xp is np else cat([vt_d[:k], vt_t[k:]], 0)
        return (u * s_t) @ vt
    if kind == "values":
        s = cat([s_d[:k], s_t[k:]])
        return (u_t * s) @ vt_t
    if kind == "triplets_top":
        return (u_d[:, :k] * s_d[:k]) @ vt_d[:k] + (u_t[:, k:] * s_t[k:]) @ vt_t[k:]
    cut = s_t.shape[0] - k  # triplets_bottom
    return (u_t[:, :cut] * s_t[:cut]) @ vt_t[:cut] + (u_d[:, cut:] * s_d[cut:]) @ vt_d[cut:]


def edit_matrices(targets: list, donors: list, kind: str, k: int, device: str = "cpu") -> list[np.ndarray]:
    """Edited matrices (float64 host arrays) for pairs of same-shape matrices (see the module doc).

    All 2·len(targets) SVDs go to `linalg.svd` in one call, so every CPU worker (or several
    GPU streams, device='cuda') is busy; the SVDs and the recombination are float64.
    """
    from rlheals.svd.linalg import svd

    for t, d in zip(targets, donors):
        _check(t, d, kind, k)
    if k == 0:
        return [np.array(t, dtype=np.float64) for t in targets]
    mats = [np.ascontiguousarray(x, dtype=np.float64) for x in list(targets) + list(donors)]
    if device == "cuda":
        import torch

        dev = [torch.from_numpy(x).to("cuda", non_blocking=True) for x in mats]
        decs = svd(dev)
        n = len(targets)
        out = [_combine(torch, kind, k, decs[i], decs[n + i]).cpu().numpy() for i in range(n)]
        return out
    decs = svd(mats)
    n = len(targets)
    return [_combine(np, kind, k, decs[i], decs[n + i]) for i in range(n)]


def edit_matrix(w_target: np.ndarray, w_donor: np.ndarray, kind: str, k: int) -> np.ndarray:
    """The edited matrix (float64) for one pair of same-shape matrices (see the module doc)."""
    return edit_matrices([w_target], [w_donor], kind, k)[0]


@dataclass
class EditSpec:
    """One edit from the config's `edits` list (donor/target already resolved to dirs)."""

    name: str
    kind: str
    k: int
    layers: tuple[int, int] | None = None
    matrices: tuple[str, ...] = field(default=MATRIX_TYPES)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"edit '{self.name}': kind {self.kind!r}, expected one of {', '.join(KINDS)}")
        if self.k < 0:
            raise ValueError(f"edit '{self.name}': k must be >= 0, got {self.k}")
        unknown = sorted(set(self.matrices) - set(MATRIX_TYPES))
        if unknown:
            raise ValueError(f"edit '{self.name}': unknown matrix types {unknown}; expected {MATRIX_TYPES}")

    @classmethod
    def from_config(cls, entry: dict) -> "EditSpec":
        layers = tuple(entry["layers"]) if entry.get("layers") else None
        return cls(entry["name"], entry["kind"], int(entry["k"]), layers, tuple(entry.get("matrices") or MATRIX_TYPES))

    def selects(self, name: str) -> bool:
        info = matrix_info(name)
        return info is not None and self.selects_matrix(info[0], info[1])

    def selects_matrix(self, layer: int, mtype: str) -> bool:
        in_range = self.layers is None or self.layers[0] <= layer <= self.layers[1]
        return in_range and mtype in self.matrices


def load_tensors(model_dir: str | os.PathLike, names=None) -> dict:
    """{name: torch tensor} of every (or the selected) weight in a model directory (whole model
    in memory: for tests and small models)."""
    from safetensors import safe_open

    out = {}
    for path in weight_files(model_dir):
        with safe_open(str(path), framework="pt") as fh:
            for name in fh.keys():
                if names is None or name in names:
                    out[name] = fh.get_tensor(name)
    return out


def build_edited_model(target_dir, donor_dir, out_dir, spec: EditSpec, provenance: dict | None = None,
                       backend: str = "auto") -> list[str]:
    """Copy the target's HF directory to `out_dir` (atomically) with the selected matrices
    replaced by their edit; returns the edited weight names. Streams one group of matrices
    at a time; runs the SVDs on the GPU when `backend` (auto/cpu/cuda) finds one."""
    from rlheals.atomic import atomic_path
    from rlheals.svd import linalg

    device = linalg.job_device(backend)
    idx_t, idx_d = weights.tensor_index(target_dir), weights.tensor_index(donor_dir)
    mats = [m for m in weights.plan(target_dir, spec.matrices, idx_t) if spec.selects_matrix(m.layer, m.mtype)]
    if not mats:
        raise ValueError(f"edit '{spec.name}' selects no weight matrix (layers {spec.layers}, matrices {spec.matrices})")
    donor = {m.name: m for m in weights.plan(donor_dir, spec.matrices, idx_d)}
    for m in mats:
        if m.name not in donor:
            raise KeyError(f"donor '{donor_dir}' has no weight '{m.name}' (donor and target must share an architecture)")
        if donor[m.name].shape != m.shape:
            raise ValueError(f"'{m.name}': shape {donor[m.name].shape} in donor '{donor_dir}' but {m.shape} in target")
    group = max(1, (linalg._threads() + 1) // 2) if device == "cpu" else 4  # 2 SVDs per pair
    t0 = time.perf_counter()
    with atomic_path(out_dir, is_dir=True) as tmp:
        shutil.copytree(target_dir, tmp, dirs_exist_ok=True)
        if spec.k > 0:
            for i in range(0, len(mats), group):
                part = mats[i:i + group]
                ts = [weights.read_matrix(idx_t, m, np.float64) for m in part]
                ds = [weights.read_matrix(idx_d, donor[m.name], np.float64) for m in part]
                for m, new in zip(part, edit_matrices(ts, ds, spec.kind, spec.k, device)):
                    weights.write_matrix(idx_t, m, new, tmp)
                del ts, ds
                log.info("edit %s: %d/%d matrices (%.1f s)", spec.name, min(i + group, len(mats)), len(mats),
                         time.perf_counter() - t0)
        edited = [m.name for m in mats]
        info = {"name": spec.name, "kind": spec.kind, "k": spec.k, "layers": spec.layers,
                "matrices": list(spec.matrices), "edited": edited, "device": device, **(provenance or {})}
        (tmp / "rlheals_edit.json").write_text(json.dumps(info, indent=2) + "\n")
    log.info("edit %s: %d matrices (%s, k=%d) on %s", spec.name, len(edited), spec.kind, spec.k, device)
    return edited
