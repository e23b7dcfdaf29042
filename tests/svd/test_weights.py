"""Weight matching by module type and shape, and the header-based safetensors reader/writer."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from rlheals.svd import weights
from rlheals.svd.analysis import analyze
from rlheals.svd.edits import EditSpec, build_edited_model, edit_matrix

CFG = {"hidden_size": 16, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 24}
SHAPES = {"q_proj": (16, 16), "k_proj": (8, 16), "v_proj": (8, 16), "o_proj": (16, 16),
          "gate_proj": (24, 16), "up_proj": (24, 16), "down_proj": (16, 24)}


def _layer_tensors(gen, layers=2, scale=1.0):
    out = {}
    for i in range(layers):
        for t, shape in SHAPES.items():
            part = "self_attn" if t in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
            out[f"model.layers.{i}.{part}.{t}.weight"] = scale * torch.randn(shape, generator=gen)
        out[f"model.layers.{i}.input_layernorm.weight"] = torch.ones(16)
    out["model.embed_tokens.weight"] = torch.randn(40, 16, generator=gen)
    return out


def _save(root, tensors, cfg=CFG, shards=1):
    root.mkdir(parents=True, exist_ok=True)
    names = sorted(tensors)
    for s in range(shards):
        part = {n: tensors[n].contiguous() for n in names[s::shards]}
        save_file(part, str(root / f"model-{s:05d}-of-{shards:05d}.safetensors"), metadata={"format": "pt"})
    if cfg is not None:
        (root / "config.json").write_text(json.dumps(cfg))
    return root


def _fuse(tensors):
    out = {}
    for n, w in tensors.items():
        if ".q_proj." in n:
            k, v = tensors[n.replace("q_proj", "k_proj")], tensors[n.replace("q_proj", "v_proj")]
            out[n.replace("q_proj", "qkv_proj")] = torch.cat([w, k, v])
        elif ".gate_proj." in n:
            out[n.replace("gate_proj", "gate_up_proj")] = torch.cat([w, tensors[n.replace("gate_proj", "up_proj")]])
        elif not any(f".{t}." in n for t in ("k_proj", "v_proj", "up_proj")):
            out[n] = w
    return out


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    gen = torch.Generator().manual_seed(0)
    ref = _layer_tensors(gen)
    ckpt = {n: w + 0.01 * torch.randn(w.shape, generator=gen) for n, w in ref.items()}
    return root, ref, ckpt


def test_plan_orders_layers_and_types(pair, tmp_path):
    root, ref, _ = pair
    d = _save(tmp_path / "m", ref, shards=3)  # shards: the plan spans files
    mats = weights.plan(d)
    assert [(m.layer, m.mtype) for m in mats] == [(i, t) for i in range(2) for t in weights.MATRIX_TYPES]
    index = weights.tensor_index(d)
    for m in mats:
        np.testing.assert_array_equal(weights.read_matrix(index, m), ref[m.name].numpy())


def test_fused_layout_is_split_by_the_config(pair, tmp_path):
    root, ref, ckpt = pair
    plain_r, plain_c = _save(tmp_path / "r", ref), _save(tmp_path / "c", ckpt)
    fused_r, fused_c = _save(tmp_path / "fr", _fuse(ref)), _save(tmp_path / "fc", _fuse(ckpt))
    mats = weights.plan(fused_r)
    assert [m.name for m in mats] == [m.name for m in weights.plan(plain_r)]
    q = next(m for m in mats if m.mtype == "k_proj")
    assert q.tensor.endswith("self_attn.qkv_proj.weight") and (q.row0, q.rows) == (16, 8)
    plain = analyze(plain_c, plain_r, 4, weights.MATRIX_TYPES)
    fused = analyze(fused_c, fused_r, 4, weights.MATRIX_TYPES)
    cols = ["angle_left_mean", "angle_right_max", "sigma_rel_change_mean", "rotation_energy", "spectral_gap"]
    np.testing.assert_allclose(fused[cols].to_numpy(), plain[cols].to_numpy(), rtol=1e-10)
    assert list(fused["name"]) == list(plain["name"])


def test_fused_without_config_or_with_wrong_sizes_is_named(pair, tmp_path):
    _, ref, _ = pair
    d = _save(tmp_path / "nocfg", _fuse(ref), cfg=None)
    with pytest.raises(ValueError, match=r"model.layers.0.(self_attn.qkv_proj|mlp.gate_up_proj).weight.*is a fused.*config.json"):
        weights.plan(d)
    bad = dict(CFG, num_key_value_heads=1)
    d = _save(tmp_path / "badcfg", _fuse(ref), cfg=bad)
    with pytest.raises(ValueError, match=r"qkv_proj.weight': 32 rows, but the config"):
        weights.plan(d)


def test_shape_against_config_and_moe_stop_with_the_tensor_name(pair, tmp_path):
    _, ref, _ = pair
    d = _save(tmp_path / "shape", ref, cfg=dict(CFG, intermediate_size=32))
    with pytest.raises(ValueError, match=r"layers.0.mlp.down_proj.weight': shape \[16, 24\] but the model's config.json implies \[16, 32\]"):
        weights.plan(d)
    moe = dict(ref)
    moe["model.layers.1.mlp.experts.3.gate_proj.weight"] = torch.zeros(24, 16)
    d = _save(tmp_path / "moe", moe)
    with pytest.raises(ValueError, match=r"model.layers.1.mlp.experts.3.gate_proj.weight.*mixture-of-experts"):
        weights.plan(d)
    odd = dict(ref)
    odd["model.layers.0.self_attn.q_a_proj.weight"] = torch.zeros(4, 16)
    d = _save(tmp_path / "odd", odd)
    with pytest.raises(ValueError, match=r"q_a_proj.weight.*matches no known projection"):
        weights.plan(d)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32, torch.float64])
def test_read_and_write_match_torch(dtype, tmp_path):
    gen = torch.Generator().manual_seed(3)
    t = {"model.layers.0.self_attn.q_proj.weight": torch.randn(16, 16, generator=gen).to(dtype)}
    d = _save(tmp_path / "m", t, cfg=dict(CFG))
    index = weights.tensor_index(d)
    (m,) = weights.plan(d, ["q_proj"])
    got = weights.read_matrix(index, m, np.float64)
    np.testing.assert_array_equal(got, t[m.name].double().numpy())
    new = np.random.default_rng(0).standard_normal((16, 16)) * 3.7
    weights.write_matrix(index, m, new, d)
    back = load_file(str(next(d.glob("*.safetensors"))))[m.name]
    assert back.dtype == dtype
    torch.testing.assert_close(back, torch.from_numpy(new).to(dtype), rtol=0, atol=0)  # torch's own rounding


def test_bf16_model_edit_streams_and_keeps_dtype(pair, tmp_path):
    _, ref, ckpt = pair
    t = _save(tmp_path / "t", {n: w.to(torch.bfloat16) for n, w in ref.items()})
    dn = _save(tmp_path / "d", {n: w.to(torch.bfloat16) for n, w in ckpt.items()})
    spec = EditSpec("e", "directions", 3, layers=(1, 1))
    edited = build_edited_model(t, dn, tmp_path / "out", spec)
    assert len(edited) == 7 and all(".layers.1." in n for n in edited)
    new = load_file(str(next((tmp_path / "out").glob("*.safetensors"))))
    old_t, old_d = load_file(str(next(t.glob("*.safetensors")))), load_file(str(next(dn.glob("*.safetensors"))))
    for name, w in new.items():
        assert w.dtype == old_t[name].dtype
        if name in edited:
            want = edit_matrix(old_t[name].double().numpy(), old_d[name].double().numpy(), "directions", 3)
            torch.testing.assert_close(w, torch.from_numpy(want).to(torch.bfloat16), rtol=0, atol=0)
        else:
            assert torch.equal(w, old_t[name]), name


def test_job_memory_grows_with_the_matrix_and_the_workers():
    small = weights.job_mem_mb((4864, 896), "analyze", 2)
    big = weights.job_mem_mb((18944, 3584), "analyze", 2)
    assert 700 < small < big < 10_000  # a 7B layer's MLP pair on 2 workers: a few GB, not the model
    assert weights.job_mem_mb((18944, 3584), "analyze", 4) > big
    assert weights.job_mem_mb((18944, 3584), "edit", 2) > weights.job_mem_mb((18944, 3584), "reference", 2)
    assert weights.largest_matrix({"hidden_size": 3584, "num_attention_heads": 28, "num_key_value_heads": 4,
                                   "intermediate_size": 18944}) == (18944, 3584)
