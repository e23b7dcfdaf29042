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
vectors cancels. The SVD runs in float64 (rlheals.svd.linalg) and the result is cast back to
the stored dtype. Only the attention and MLP projections are edited (embeddings and the
LM head are left to the target), optionally restricted to a layer range and matrix types.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

KINDS = ("directions", "values", "triplets_top", "triplets_bottom")
MATRIX_TYPES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_NAME = re.compile(r"layers\.(\d+)\.(?:self_attn|mlp)\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)\.weight$")


def matrix_info(name: str) -> tuple[int, str] | None:
    """(layer, matrix type) of an attention/MLP projection weight name, else None."""
    m = _NAME.search(name)
    return (int(m.group(1)), m.group(2)) if m else None


def edit_matrix(w_target: np.ndarray, w_donor: np.ndarray, kind: str, k: int) -> np.ndarray:
    """The edited matrix (float64) for one pair of same-shape matrices (see the module doc)."""
    from rlheals.svd.linalg import svd

    if kind not in KINDS:
        raise ValueError(f"edit kind {kind!r}: expected one of {', '.join(KINDS)}")
    if w_target.shape != w_donor.shape or w_target.ndim != 2:
        raise ValueError(f"target {w_target.shape} and donor {w_donor.shape} must be matrices of the same shape")
    rank = min(w_target.shape)
    if not 0 <= k <= rank:
        raise ValueError(f"k={k} is outside 0..{rank} (the rank of a {w_target.shape[0]}x{w_target.shape[1]} matrix)")
    t64 = np.asarray(w_target, dtype=np.float64)
    if k == 0:
        return t64.copy()
    d64 = np.asarray(w_donor, dtype=np.float64)
    (u_t, s_t, vt_t), (u_d, s_d, vt_d) = (svd(t64), svd(d64))
    if kind == "directions":
        u = np.concatenate([u_d[:, :k], u_t[:, k:]], axis=1)
        vt = np.concatenate([vt_d[:k], vt_t[k:]], axis=0)
        return (u * s_t) @ vt
    if kind == "values":
        s = np.concatenate([s_d[:k], s_t[k:]])
        return (u_t * s) @ vt_t
    if kind == "triplets_top":
        return (u_d[:, :k] * s_d[:k]) @ vt_d[:k] + (u_t[:, k:] * s_t[k:]) @ vt_t[k:]
    cut = rank - k  # triplets_bottom
    return (u_t[:, :cut] * s_t[:cut]) @ vt_t[:cut] + (u_d[:, cut:] * s_d[cut:]) @ vt_d[cut:]


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
        if info is None:
            return False
        layer, mtype = info
        in_range = self.layers is None or self.layers[0] <= layer <= self.layers[1]
        return in_range and mtype in self.matrices


def weight_files(model_dir: str | os.PathLike) -> list[Path]:
    """The safetensors files of an HF model directory (single file or shards)."""
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"'{model_dir}' holds no *.safetensors weights (save the model with safetensors)")
    return files


def load_tensors(model_dir: str | os.PathLike, names=None) -> dict:
    """{name: torch tensor} of every (or the selected) weight in a model directory."""
    from safetensors import safe_open

    out = {}
    for path in weight_files(model_dir):
        with safe_open(str(path), framework="pt") as fh:
            for name in fh.keys():
                if names is None or name in names:
                    out[name] = fh.get_tensor(name)
    return out


def build_edited_model(target_dir, donor_dir, out_dir, spec: EditSpec, provenance: dict | None = None) -> list[str]:
    """Copy the target's HF directory to `out_dir` (atomically) with the selected matrices
    replaced by their edit; returns the edited weight names."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    from rlheals.atomic import atomic_path

    donor = load_tensors(donor_dir)
    edited: list[str] = []
    with atomic_path(out_dir, is_dir=True) as tmp:
        shutil.copytree(target_dir, tmp, dirs_exist_ok=True)
        for path in weight_files(target_dir):
            with safe_open(str(path), framework="pt") as fh:
                metadata = fh.metadata() or {"format": "pt"}
                tensors = {name: fh.get_tensor(name) for name in fh.keys()}
            for name, w_t in tensors.items():
                if not spec.selects(name):
                    continue
                if name not in donor:
                    raise KeyError(f"donor '{donor_dir}' has no weight '{name}' (donor and target must share an architecture)")
                w_d = donor[name]
                new = edit_matrix(w_t.float().numpy(), w_d.float().numpy(), spec.kind, spec.k)
                tensors[name] = torch.from_numpy(new).to(w_t.dtype).contiguous()
                edited.append(name)
            save_file(tensors, str(Path(tmp) / path.name), metadata=metadata)
        if not edited:
            raise ValueError(f"edit '{spec.name}' selects no weight matrix (layers {spec.layers}, matrices {spec.matrices})")
        info = {"name": spec.name, "kind": spec.kind, "k": spec.k, "layers": spec.layers,
                "matrices": list(spec.matrices), "edited": edited, **(provenance or {})}
        (Path(tmp) / "rlheals_edit.json").write_text(json.dumps(info, indent=2) + "\n")
    log.info("edit %s: %d matrices (%s, k=%d)", spec.name, len(edited), spec.kind, spec.k)
    return edited
