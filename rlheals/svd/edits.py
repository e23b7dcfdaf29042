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

k is a count (an int) or, as the paper gives it, a share of each matrix's rank (a float in
(0, 1]: k = round(share · r) per matrix, so 0.75 edits 96 of a 128-rank q_proj and 48 of a
64-rank k_proj; the paper's 3072 of 4096). k = 0 returns the target unchanged. At k = r
every edit is still what its name says: ``directions`` gives U_D diag(s_T) V_Dᵀ and
``values`` gives U_T diag(s_D) V_Tᵀ; the triplet swaps at full rank are the donor's matrix,
copied as stored (byte for byte, no SVD round trip). (The paper's code returned W_D whole
whenever k_top + k_tail reached r, so its full-rank "direction-only" edits, and all of its
by-layer edits, were plain copies.)

Layer ranges: [first, last] (inclusive) or a third of the model's layers, ``bottom``,
``middle`` or ``top`` (numpy.array_split of the layer indices into three: 4 layers give
0-1, 2, 3; the paper's 28-layer Qwen 0-9, 10-18, 19-27).

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
import math
import os
import shutil
import time
from dataclasses import dataclass, field

import numpy as np

from rlheals.svd import weights
from rlheals.svd.weights import MATRIX_TYPES, weight_files  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

KINDS = ("directions", "values", "triplets_top", "triplets_bottom")
THIRDS = ("bottom", "middle", "top")


def k_for_rank(k: int | float, rank: int) -> int:
    """Triplets edited in a matrix of rank `rank`: an int k as is (at most the rank), a float
    share of the rank rounded half up (0 < share <= 1)."""
    if isinstance(k, bool) or not isinstance(k, (int, float, np.integer, np.floating)):
        raise ValueError(f"k={k!r}: expected a count (int >= 0) or a share of the rank (float in (0, 1])")
    if isinstance(k, (float, np.floating)):
        if not 0.0 < float(k) <= 1.0:
            raise ValueError(f"k={k}: a share of the rank must be in (0, 1] (write an integer for a count)")
        return min(rank, int(math.floor(float(k) * rank + 0.5)))
    if not 0 <= int(k) <= rank:
        raise ValueError(f"k={k} is outside 0..{rank} (the rank of the matrix)")
    return int(k)


def k_label(k: int | float) -> str:
    """'75%' for a share, '16' for a count (logs, tables, figures)."""
    return f"{100 * float(k):g}%" if isinstance(k, (float, np.floating)) else str(int(k))


def layer_range(layers, num_layers: int) -> tuple[int, int] | None:
    """(first, last) inclusive for a config's `layers`: None (all), [first, last] or a third."""
    if layers is None:
        return None
    if isinstance(layers, str):
        if layers not in THIRDS:
            raise ValueError(f"layers {layers!r}: expected [first, last] or one of {', '.join(THIRDS)}")
        if num_layers < 3:
            raise ValueError(f"layers {layers!r}: thirds need at least 3 layers, the model has {num_layers}")
        part = np.array_split(np.arange(num_layers), 3)[THIRDS.index(layers)]
        return int(part[0]), int(part[-1])
    first, last = (int(x) for x in layers)
    if not 0 <= first <= last:
        raise ValueError(f"layers {list(layers)}: expected [first, last] with 0 <= first <= last")
    return first, last


def matrix_info(name: str) -> tuple[int, str] | None:
    """(layer, matrix type) of an attention/MLP projection weight name, else None."""
    m = weights._LAYER.match(name)
    if m is None:
        return None
    plain = weights._PLAIN.match(m.group(2))
    return (int(m.group(1)), plain.group(2)) if plain else None


def _check(w_target, w_donor, kind: str, k: int | float) -> int:
    """The matrix's k (see k_for_rank) after checking kind and shapes."""
    if kind not in KINDS:
        raise ValueError(f"edit kind {kind!r}: expected one of {', '.join(KINDS)}")
    if tuple(w_target.shape) != tuple(w_donor.shape) or w_target.ndim != 2:
        raise ValueError(f"target {tuple(w_target.shape)} and donor {tuple(w_donor.shape)} must be matrices of the same shape")
    rank = min(w_target.shape)
    try:
        return k_for_rank(k, rank)
    except ValueError as exc:
        raise ValueError(f"{exc} ({w_target.shape[0]}x{w_target.shape[1]} matrix, rank {rank})") from None


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


def is_copy(kind: str, k: int, rank: int) -> bool:
    """Whether the edit of a rank-`rank` matrix is the target (k = 0) or the donor (a full-rank
    triplet swap) whole, with no SVD."""
    return k == 0 or (kind.startswith("triplets") and k == rank)


def edit_matrices(targets: list, donors: list, kind: str, k: int | float, device: str = "cpu") -> list[np.ndarray]:
    """Edited matrices (float64 host arrays) for pairs of same-shape matrices (see the module doc).

    All SVDs go to `linalg.svd` in one call, so every CPU worker (or several GPU streams,
    device='cuda') is busy; the SVDs and the recombination are float64. A pair whose edit is
    a copy (k = 0, or a full-rank triplet swap) returns the target's or donor's matrix as is.
    """
    from rlheals.svd.linalg import svd

    ks = [_check(t, d, kind, k) for t, d in zip(targets, donors)]
    out: list = [None] * len(targets)
    todo = []
    for i, (t, d, ki) in enumerate(zip(targets, donors, ks)):
        if is_copy(kind, ki, min(t.shape)):
            out[i] = np.array(t if ki == 0 else d, dtype=np.float64)
        else:
            todo.append(i)
    if not todo:
        return out
    mats = [np.ascontiguousarray(targets[i], dtype=np.float64) for i in todo]
    mats += [np.ascontiguousarray(donors[i], dtype=np.float64) for i in todo]
    n = len(todo)
    if device == "cuda":
        import torch

        decs = svd([torch.from_numpy(x).to("cuda", non_blocking=True) for x in mats])
        for j, i in enumerate(todo):
            out[i] = _combine(torch, kind, ks[i], decs[j], decs[n + j]).cpu().numpy()
        return out
    decs = svd(mats)
    for j, i in enumerate(todo):
        out[i] = _combine(np, kind, ks[i], decs[j], decs[n + j])
    return out


def edit_matrix(w_target: np.ndarray, w_donor: np.ndarray, kind: str, k: int | float) -> np.ndarray:
    """The edited matrix (float64) for one pair of same-shape matrices (see the module doc)."""
    return edit_matrices([w_target], [w_donor], kind, k)[0]


@dataclass
class EditSpec:
    """One edit from the config's `edits` list (donor/target already resolved to dirs).

    k: a count (int) or a share of each matrix's rank (float in (0, 1]); layers: None (all),
    (first, last) inclusive, or a third ('bottom', 'middle', 'top', resolved against the
    model's layer count by `resolved`)."""

    name: str
    kind: str
    k: int | float
    layers: tuple[int, int] | str | None = None
    matrices: tuple[str, ...] = field(default=MATRIX_TYPES)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"edit '{self.name}': kind {self.kind!r}, expected one of {', '.join(KINDS)}")
        try:
            k_for_rank(self.k, 1 << 30)
            if isinstance(self.layers, str):
                layer_range(self.layers, 3)
            elif self.layers is not None:
                self.layers = layer_range(self.layers, 0)
        except ValueError as exc:
            raise ValueError(f"edit '{self.name}': {exc}") from None
        unknown = sorted(set(self.matrices) - set(MATRIX_TYPES))
        if unknown:
            raise ValueError(f"edit '{self.name}': unknown matrix types {unknown}; expected {MATRIX_TYPES}")

    @classmethod
    def from_config(cls, entry: dict) -> "EditSpec":
        raw = entry.get("layers")
        layers = raw if isinstance(raw, str) else tuple(raw) if raw else None
        k = entry["k"]
        k = float(k) if isinstance(k, float) else int(k)
        return cls(entry["name"], entry["kind"], k, layers, tuple(entry.get("matrices") or MATRIX_TYPES))

    def resolved(self, num_layers: int) -> "EditSpec":
        """This edit with a third of the layers turned into (first, last) for a model of
        `num_layers` layers."""
        if not isinstance(self.layers, str):
            return self
        try:
            rng = layer_range(self.layers, num_layers)
        except ValueError as exc:
            raise ValueError(f"edit '{self.name}': {exc}") from None
        return EditSpec(self.name, self.kind, self.k, rng, self.matrices)

    def selects(self, name: str) -> bool:
        info = matrix_info(name)
        return info is not None and self.selects_matrix(info[0], info[1])

    def selects_matrix(self, layer: int, mtype: str) -> bool:
        if isinstance(self.layers, str):
            raise ValueError(f"edit '{self.name}': layers {self.layers!r} must be resolved against the model first")
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
    every = weights.plan(target_dir, spec.matrices, idx_t)
    asked = spec.layers
    spec = spec.resolved(1 + max((m.layer for m in every), default=-1))
    mats = [m for m in every if spec.selects_matrix(m.layer, m.mtype)]
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
        if spec.k != 0:
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
        ks = {m.name: k_for_rank(spec.k, min(m.shape)) for m in mats}
        info = {"name": spec.name, "kind": spec.kind, "k": spec.k,
                # the share of the rank edited, averaged over the edited matrices (= k for a share)
                "k_frac": float(np.mean([ks[m.name] / min(m.shape) for m in mats])),
                "k_per_matrix": ks, "layers": asked if isinstance(asked, str) else spec.layers,
                "layer_range": list(spec.layers) if spec.layers else None,
                "matrices": list(spec.matrices), "edited": edited, "device": device, **(provenance or {})}
        (tmp / "rlheals_edit.json").write_text(json.dumps(info, indent=2) + "\n")
    log.info("edit %s: %d matrices (%s, k=%s, layers %s) on %s", spec.name, len(edited), spec.kind, k_label(spec.k),
             spec.layers or "all", device)
    return edited
