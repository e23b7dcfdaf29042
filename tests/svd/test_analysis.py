"""SVD analysis table against plain numpy/scipy on a small saved model."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import torch

from tolerances import identical_bounds

from rlheals.svd.analysis import METRICS, NULL_COLUMNS, aggregate, analyze, load_matrices, save_reference

torch.set_num_threads(1)
TYPES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A reference model and a fine-tuned-like copy (small perturbation of every weight)."""
    from rlheals.train.models import build_tiny_model, save_model
    from rlheals.data.tokenizer import build_tokenizer

    tok = build_tokenizer()
    tiny = {"hidden_size": 16, "intermediate_size": 24, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1}
    root = tmp_path_factory.mktemp("analysis_models")
    ref = build_tiny_model(tiny, tok, seed=0)
    save_model(ref, tok, root / "ref")
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.05 * p.abs().mean() * torch.randn(p.shape, generator=gen))
    save_model(ref, tok, root / "ckpt")
    return root


def _numpy_row(w0, w, k):
    u0, s0, vh0 = np.linalg.svd(w0.astype(np.float64), full_matrices=False)
    u, s, vh = np.linalg.svd(w.astype(np.float64), full_matrices=False)
    k = min(k, s.size)
    rel = np.abs(s - s0) / s0
    left = scipy.linalg.subspace_angles(u0[:, :k], u[:, :k])
    right = scipy.linalg.subspace_angles(vh0[:k].T, vh[:k].T)
    p_left = np.linalg.norm(u0[:, :k] @ u0[:, :k].T - u[:, :k] @ u[:, :k].T)
    m = u0[:, :k].T @ (w.astype(np.float64) - w0.astype(np.float64)) @ vh0[:k].T
    diag = float(np.sum(np.diag(m) ** 2))
    return {
        "sigma_rel_change_mean": rel.mean(), "sigma_rel_change_max": rel.max(),
        "angle_left_mean": left.mean(), "angle_left_max": left.max(),
        "angle_right_mean": right.mean(), "angle_right_max": right.max(),
        "proj_dist_left": p_left, "scaling_energy": diag, "rotation_energy": float(np.sum(m**2)) - diag,
    }


@pytest.mark.parametrize("use_cache", [False, True, "top_k"])
def test_analysis_table_matches_numpy(models, tmp_path, use_cache):
    cache = None
    if use_cache:
        cache = tmp_path / "ref.npz"
        save_reference(models / "ref", TYPES, cache, top_k=4 if use_cache == "top_k" else None)
        with np.load(cache) as npz:  # top_k: matrices of rank >= 8 keep only their top 4 vectors
            assert npz["model.layers.0.mlp.gate_proj.weight/basis"].shape == ((16, 4) if use_cache == "top_k" else (16, 16))
            assert npz["model.layers.0.self_attn.k_proj.weight/basis"].shape == ((8, 4) if use_cache == "top_k" else (8, 8))
    labels = {"checkpoint": "sft-10", "reference": "base", "reference_ckpt": "base"}
    table = analyze(models / "ckpt", models / "ref", 4, TYPES, labels, cache=cache)
    assert len(table) == 2 * 7  # layers x matrix types
    assert set(table["matrix"]) == set(TYPES) and sorted(set(table["layer"])) == [0, 1]
    assert (table["checkpoint"] == "sft-10").all() and (table["k"] == 4).all()
    ref, cur = load_matrices(models / "ref", TYPES), load_matrices(models / "ckpt", TYPES)
    eps = np.finfo(np.float64).eps
    for row in table.itertuples():
        want = _numpy_row(ref[row.name], cur[row.name], 4)
        # both sides run in float64 on the same float32 weights: they agree to rounding, relative to
        # each quantity's scale (energies are in units of ||W||^2, angles and sigma changes have none)
        w2 = float(np.linalg.norm(ref[row.name].astype(np.float64)) ** 2)
        for key, value in want.items():
            scale = w2 if key.endswith("energy") else 1.0
            assert getattr(row, key) == pytest.approx(value, rel=1e-8, abs=64 * eps * scale), (row.name, key)
    assert table[METRICS].notna().all().all()
    # the same-size random null rides along, one row per matrix
    assert table[NULL_COLUMNS].notna().all().all()
    for row in table.itertuples():
        assert row.delta_fro == pytest.approx(np.linalg.norm(cur[row.name].astype(np.float64) - ref[row.name]), rel=1e-12)
        assert 0 < row.spectral_gap <= 1 and row.null_angle_mean > 0


def test_rows_are_written_as_they_come_and_match_the_table(models, tmp_path):
    out = tmp_path / "sub" / "c--base.csv"
    out.parent.mkdir()
    labels = {"checkpoint": "c", "reference": "base", "reference_ckpt": "base"}
    table = analyze(models / "ckpt", models / "ref", 4, TYPES, labels, out=out)
    written = pd.read_csv(out)
    assert list(written.columns) == list(table.columns)
    pd.testing.assert_frame_equal(written, table, check_dtype=False)
    assert {"spectral_gap", "spectral_gap_ckpt", "delta_fro", "delta_spec", "gap_warning"} <= set(table.columns)
    ref, cur = load_matrices(models / "ref", TYPES), load_matrices(models / "ckpt", TYPES)
    for row in table.itertuples():
        s0 = np.linalg.svd(ref[row.name].astype(np.float64), compute_uv=False)
        assert row.spectral_gap == pytest.approx((s0[3] - s0[4]) / s0[3], rel=1e-9)
        assert row.delta_fro == pytest.approx(np.linalg.norm(cur[row.name] - ref[row.name]), rel=1e-6)
    assert not list(tmp_path.glob("sub/*tmp*"))  # no temporary left behind


def test_cpu_backend_is_forced_and_cuda_insists(models):
    from rlheals.svd import linalg

    assert linalg.job_device("cpu") == "cpu"
    if not linalg.backends()["cuda"]:
        assert linalg.job_device("auto") == "cpu"
        with pytest.raises(RuntimeError, match="no GPU"):
            analyze(models / "ckpt", models / "ref", 2, ["q_proj"], backend="cuda")


def test_identical_models_have_no_drift(models):
    table = analyze(models / "ref", models / "ref", 3, ["q_proj", "down_proj"])
    assert len(table) == 4
    weights = load_matrices(models / "ref", ["q_proj", "down_proj"])
    for row in table.itertuples():
        bound = identical_bounds(weights[row.name], 3)
        assert row.sigma_rel_change_max <= bound["sigma_rel"], row.name
        assert row.proj_dist_left <= bound["proj_dist"] and row.proj_dist_right <= bound["proj_dist"], row.name
        assert row.rotation_energy <= bound["energy"] and row.scaling_energy <= bound["energy"], row.name


def test_aggregate_stacks_tables(models, tmp_path):
    paths = []
    for ref in ("base", "sft_best"):
        t = analyze(models / "ckpt", models / "ref", 2, ["v_proj"], {"checkpoint": "c", "reference": ref})
        p = tmp_path / f"c--{ref}.csv"
        t.to_csv(p, index=False)
        paths.append(p)
    out = aggregate(paths)
    assert len(out) == 4 and list(out["reference"].unique()) == ["base", "sft_best"]
    assert isinstance(out, pd.DataFrame)


def test_missing_matrices_are_named(models):
    with pytest.raises(ValueError, match="no weights named"):
        load_matrices(models / "ref", ["w_proj"])
