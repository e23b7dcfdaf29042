"""SVD edits: each kind does what its name says at k = 0, at full rank and in between."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tolerances import EPS32, svd_vector_tol

from rlheals.svd.edits import EditSpec, build_edited_model, edit_matrix, load_tensors, matrix_info

torch.set_num_threads(1)
KINDS = ["directions", "values", "triplets_top", "triplets_bottom"]


def _pair(shape=(12, 7), seed=0):
    rng = np.random.default_rng(seed)
    target = rng.standard_normal(shape)
    donor = target + 0.5 * rng.standard_normal(shape)
    return target, donor


def _svd(w):
    return np.linalg.svd(w, full_matrices=False)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [(12, 7), (7, 12), (9, 9)])
def test_k0_is_identity(kind, shape):
    target, donor = _pair(shape)
    np.testing.assert_array_equal(edit_matrix(target, donor, kind, 0), target)


@pytest.mark.parametrize("shape", [(12, 7), (7, 12)])
def test_full_rank_directions_keep_target_values(shape):
    """Direction-only restore at full rank is U_D diag(s_T) V_Dᵀ, not a copy of W_D."""
    target, donor = _pair(shape)
    (ut, st, vt), (ud, sd, vd) = _svd(target), _svd(donor)
    out = edit_matrix(target, donor, "directions", min(shape))
    np.testing.assert_allclose(out, (ud * st) @ vd, atol=svd_vector_tol(target, donor))
    np.testing.assert_allclose(np.linalg.svd(out, compute_uv=False), st, atol=svd_vector_tol(target, donor))
    assert not np.allclose(out, donor)


@pytest.mark.parametrize("shape", [(12, 7), (7, 12)])
def test_full_rank_values_keep_target_vectors(shape):
    target, donor = _pair(shape)
    (ut, st, vt), (ud, sd, vd) = _svd(target), _svd(donor)
    out = edit_matrix(target, donor, "values", min(shape))
    np.testing.assert_allclose(out, (ut * sd) @ vt, atol=svd_vector_tol(target, donor))
    np.testing.assert_allclose(np.linalg.svd(out, compute_uv=False), sd, atol=svd_vector_tol(target, donor))


@pytest.mark.parametrize("kind", ["triplets_top", "triplets_bottom"])
def test_full_rank_triplet_swap_is_the_donor(kind):
    target, donor = _pair()
    np.testing.assert_allclose(edit_matrix(target, donor, kind, 7), donor, atol=svd_vector_tol(target, donor))


def test_partial_k_matches_definitions():
    target, donor = _pair((10, 6))
    (ut, st, vt), (ud, sd, vd) = _svd(target), _svd(donor)
    k = 2
    u = np.concatenate([ud[:, :k], ut[:, k:]], axis=1)
    v = np.concatenate([vd[:k], vt[k:]])
    np.testing.assert_allclose(edit_matrix(target, donor, "directions", k), (u * st) @ v, atol=svd_vector_tol(target, donor))
    s = np.concatenate([sd[:k], st[k:]])
    values = edit_matrix(target, donor, "values", k)
    np.testing.assert_allclose(values, (ut * s) @ vt, atol=svd_vector_tol(target, donor))
    np.testing.assert_allclose(np.sort(np.linalg.svd(values, compute_uv=False)), np.sort(s), atol=svd_vector_tol(target, donor))
    top = (ud[:, :k] * sd[:k]) @ vd[:k] + (ut[:, k:] * st[k:]) @ vt[k:]
    np.testing.assert_allclose(edit_matrix(target, donor, "triplets_top", k), top, atol=svd_vector_tol(target, donor))
    bottom = (ut[:, :4] * st[:4]) @ vt[:4] + (ud[:, 4:] * sd[4:]) @ vd[4:]
    np.testing.assert_allclose(edit_matrix(target, donor, "triplets_bottom", k), bottom, atol=svd_vector_tol(target, donor))


def test_bad_arguments_name_the_problem():
    target, donor = _pair()
    with pytest.raises(ValueError, match="outside 0..7"):
        edit_matrix(target, donor, "directions", 8)
    with pytest.raises(ValueError, match="same shape"):
        edit_matrix(target, donor.T, "values", 1)
    with pytest.raises(ValueError, match="kind"):
        edit_matrix(target, donor, "rotate", 1)


def test_matrix_info():
    assert matrix_info("model.layers.3.self_attn.k_proj.weight") == (3, "k_proj")
    assert matrix_info("model.layers.0.mlp.down_proj.weight") == (0, "down_proj")
    assert matrix_info("model.embed_tokens.weight") is None
    assert matrix_info("model.layers.0.input_layernorm.weight") is None


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    from rlheals.train.models import build_tiny_model, save_model
    from rlheals.data.tokenizer import build_tokenizer

    tok = build_tokenizer()
    tiny = {"hidden_size": 16, "intermediate_size": 24, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1}
    root = tmp_path_factory.mktemp("edit_models")
    for name, seed in (("target", 0), ("donor", 1)):
        save_model(build_tiny_model(tiny, tok, seed), tok, root / name)
    return root


def test_edited_model_replaces_only_the_selected_matrices(two_models, tmp_path):
    from rlheals.train.models import load_model

    spec = EditSpec("dirs", "directions", 16, layers=(1, 1), matrices=("q_proj", "down_proj"))
    out = tmp_path / "edit-dirs"
    edited = build_edited_model(two_models / "target", two_models / "donor", out, spec, {"target": "t"})
    assert sorted(edited) == ["model.layers.1.mlp.down_proj.weight", "model.layers.1.self_attn.q_proj.weight"]
    target, donor, new = (load_tensors(p) for p in (two_models / "target", two_models / "donor", out))
    assert set(new) == set(target)
    for name, w in new.items():
        if name in edited:
            (_, st, _), (ud, _, vd) = _svd(target[name].double().numpy()), _svd(donor[name].double().numpy())
            want = (ud * st) @ vd  # float64; the model stores it rounded to float32
            np.testing.assert_allclose(w.double().numpy(), want, rtol=0, atol=2 * EPS32 * float(np.abs(want).max()))
        else:
            assert torch.equal(w, target[name]), name
    model, tok = load_model(out, device="cpu")  # a normal HF directory
    assert (out / "rlheals_edit.json").is_file() and (out / "tokenizer.json").is_file()


def test_edit_that_selects_nothing_fails(two_models, tmp_path):
    spec = EditSpec("none", "values", 1, layers=(5, 6))
    with pytest.raises(ValueError, match="selects no weight"):
        build_edited_model(two_models / "target", two_models / "donor", tmp_path / "x", spec)
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------- k as a share of the rank, layer thirds
def test_share_of_the_rank_is_per_matrix():
    from rlheals.svd.edits import k_for_rank

    assert [k_for_rank(0.75, r) for r in (128, 64, 7)] == [96, 48, 5]  # 5.25 -> 5
    assert k_for_rank(0.125, 128) == 16 and k_for_rank(1.0, 64) == 64 and k_for_rank(16, 128) == 16
    assert k_for_rank(0.5, 7) == 4  # 3.5 rounds half up, the same on every machine
    for bad in (0.0, 1.5, -0.25):
        with pytest.raises(ValueError, match=r"share of the rank must be in \(0, 1\]"):
            k_for_rank(bad, 64)
    with pytest.raises(ValueError, match="outside 0..64"):
        k_for_rank(65, 64)


@pytest.mark.parametrize("shape", [(12, 7), (7, 12)])
def test_share_edits_the_same_triplets_as_the_count(shape):
    target, donor = _pair(shape)
    for kind in KINDS:
        np.testing.assert_array_equal(edit_matrix(target, donor, kind, 0.5), edit_matrix(target, donor, kind, 4))


def test_layer_thirds():
    from rlheals.svd.edits import layer_range

    assert [layer_range(t, 4) for t in ("bottom", "middle", "top")] == [(0, 1), (2, 2), (3, 3)]
    assert [layer_range(t, 28) for t in ("bottom", "middle", "top")] == [(0, 9), (10, 18), (19, 27)]
    assert layer_range(None, 4) is None and layer_range([1, 2], 4) == (1, 2)
    with pytest.raises(ValueError, match="at least 3 layers"):
        layer_range("top", 2)
    with pytest.raises(ValueError, match="expected \\[first, last\\] or one of bottom, middle, top"):
        layer_range("upper", 4)
    assert EditSpec("t", "directions", 0.75, "top").resolved(4).layers == (3, 3)
    with pytest.raises(ValueError, match="resolved against the model"):
        EditSpec("t", "directions", 0.75, "top").selects_matrix(3, "q_proj")


def test_full_rank_triplet_edit_is_a_weight_copy(two_models, tmp_path):
    """A share of 1.0 is legal; the triplet swap at full rank copies the donor's matrices byte
    for byte (no SVD round trip), the rest stays the target's."""
    spec = EditSpec("copy", "triplets_top", 1.0)
    out = tmp_path / "edit-copy"
    edited = build_edited_model(two_models / "target", two_models / "donor", out, spec)
    target, donor, new = (load_tensors(p) for p in (two_models / "target", two_models / "donor", out))
    assert len(edited) == 14  # 2 layers x 7 projections
    for name, w in new.items():
        assert torch.equal(w, donor[name] if name in edited else target[name]), name
    import json

    info = json.loads((out / "rlheals_edit.json").read_text())
    assert info["k_frac"] == 1.0 and info["k"] == 1.0


def test_share_and_third_in_a_model(two_models, tmp_path):
    """layers: top on a 2-layer model is refused; on [1, 1] a share edits k = round(share * rank)
    of each matrix, recorded per matrix and as the mean share."""
    import json

    with pytest.raises(ValueError, match="at least 3 layers"):
        build_edited_model(two_models / "target", two_models / "donor", tmp_path / "x",
                           EditSpec("t", "directions", 0.5, "top"))
    assert not (tmp_path / "x").exists()
    out = tmp_path / "edit-half"
    build_edited_model(two_models / "target", two_models / "donor", out, EditSpec("half", "values", 0.5, (1, 1)))
    info = json.loads((out / "rlheals_edit.json").read_text())
    # hidden 16, MLP 24, one KV head of 8: ranks 16 (q, o, gate, up, down) and 8 (k, v)
    assert info["k_per_matrix"]["model.layers.1.self_attn.q_proj.weight"] == 8
    assert info["k_per_matrix"]["model.layers.1.self_attn.k_proj.weight"] == 4
    assert info["k_frac"] == 0.5 and info["layer_range"] == [1, 1]
    target, new = load_tensors(two_models / "target"), load_tensors(out)
    w = new["model.layers.1.self_attn.q_proj.weight"].double().numpy()
    t = target["model.layers.1.self_attn.q_proj.weight"].double().numpy()
    assert not np.allclose(w, t)
    assert torch.equal(new["model.layers.0.self_attn.q_proj.weight"], target["model.layers.0.self_attn.q_proj.weight"])
