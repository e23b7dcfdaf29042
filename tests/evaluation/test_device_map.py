"""A model placed by accelerate (`evaluation.device_map`) gives the replies of the model
loaded whole. Here, without GPUs, the placement is CPU memory plus disk: a `max_memory`
too small for the model sends most layers to `offload_folder`, and accelerate's hooks
load them per forward, the path a model larger than its GPUs takes."""
from __future__ import annotations

import pytest
import torch

from rlheals.data.tokenizer import build_tokenizer
from rlheals.evaluation.evaluate import EvalOptions, evaluate_checkpoint
from rlheals.evaluation.generation import DecodingOptions, generate, input_device
from rlheals.task.cards import make_hands
from rlheals.task.prompts import build_prompt
from rlheals.train.models import build_tiny_model, load_model, save_model

torch.set_num_threads(1)
TINY = {"hidden_size": 32, "intermediate_size": 64, "num_layers": 4, "num_heads": 2, "num_kv_heads": 1}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    tok = build_tokenizer()
    model = build_tiny_model(TINY, tok, seed=1).eval()
    out = tmp_path_factory.mktemp("m") / "model"
    save_model(model, tok, out)
    return out


def _prompts() -> list[str]:
    return [build_prompt(h, "ood", "compact") + " x" * (i % 3) for i, h in enumerate(make_hands(6, "ood", seed=2))]


@pytest.mark.parametrize("decoding", ["greedy", "sample"])
@pytest.mark.parametrize("drop_finished", [True, False])
def test_replies_of_a_model_offloaded_to_disk_are_those_of_the_whole_model(model_dir, tmp_path, decoding,
                                                                           drop_finished):
    whole, tok = load_model(model_dir, device="cpu")
    placed, tok2 = load_model(model_dir, device="cpu", device_map="auto", max_memory={"cpu": 40_000},
                              offload_folder=tmp_path / "offload")
    assert "disk" in set(placed.hf_device_map.values()), placed.hf_device_map  # really split
    assert input_device(placed) == torch.device("cpu")
    opts = DecodingOptions(max_new_tokens=12, batch_size=4, decoding=decoding, seed=5, drop_finished=drop_finished)
    prompts = _prompts()
    expected = generate(whole, tok, prompts, opts)
    assert len(set(expected)) > 1
    assert generate(placed, tok2, prompts, opts) == expected


def test_device_map_single_and_cpu_without_a_budget_load_the_model_whole(model_dir):
    for dmap in ("single", "auto"):
        model, _ = load_model(model_dir, device="cpu", device_map=dmap)
        assert not getattr(model, "hf_device_map", None)
        assert input_device(model) == torch.device("cpu")


def test_an_unknown_device_map_is_refused_by_name(model_dir):
    with pytest.raises(ValueError, match="evaluation.device_map 'everywhere'"):
        load_model(model_dir, device="cpu", device_map="everywhere")


def test_evaluation_takes_the_device_map_from_its_options(model_dir, tmp_path):
    import json

    hands = make_hands(4, "id", seed=3)
    data = tmp_path / "id.jsonl"
    data.write_text("".join(json.dumps({"id": i, "cards": h, "rule": "id"}) + "\n" for i, h in enumerate(hands)))
    cfg = {"attempts": 1, "max_new_tokens": 8, "batch_size": 4, "decoding": "greedy", "temperature": 1.0,
           "top_p": 1.0, "device_map": "auto"}
    opts = EvalOptions.from_config(cfg, "compact", seed=0)
    assert opts.device_map == "auto" and opts.backend == "hf"
    a = evaluate_checkpoint(model_dir, {"id": data}, opts, tmp_path / "a.csv", tmp_path / "a.jsonl", device="cpu")
    cfg["device_map"] = "single"
    b = evaluate_checkpoint(model_dir, {"id": data}, EvalOptions.from_config(cfg, "compact", seed=0),
                            tmp_path / "b.csv", tmp_path / "b.jsonl", device="cpu")
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()
    assert a.equals(b)
