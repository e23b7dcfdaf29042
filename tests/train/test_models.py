"""Tokenizer and model plumbing: lossless tokenizer, build/save/load round trip."""
from __future__ import annotations

import string

import pytest
import torch

from rlheals.train.models import build_tiny_model, count_parameters, load_model, resolve_device, save_model
from rlheals.task.prompts import build_answer, build_prompt
from rlheals.data.tokenizer import build_tokenizer

TINY = {"hidden_size": 32, "intermediate_size": 64, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1}


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


@pytest.mark.parametrize(
    "text",
    [
        string.printable.replace("\r", "").replace("\x0b", "").replace("\x0c", ""),
        "numbers: 10 13 100 7 formula: (13-1)*(100/50)=24",
        "Cards:Cards: isn't  12345 , ;\n\tJ=11",
        "",
    ],
)
def test_round_trip_any_ascii(tok, text):
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.decode(ids) == text


def test_task_text_round_trips_and_is_short(tok):
    cards = ["K", "2", "2", "A"]
    for rule in ("id", "ood"):
        text = build_prompt(cards, rule, "compact") + build_answer(cards, rule, "(10+2)*2*1", "compact")
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
        # Numbers 1..13 and 24 are single tokens; far shorter than one token per character.
        assert len(ids) < 0.5 * len(text), (len(ids), len(text))
    assert len(tok(" 13", add_special_tokens=False)["input_ids"]) == 1


def test_build_save_load_round_trip(tok, tmp_path):
    model = build_tiny_model(TINY, tok, seed=3)
    assert 5_000 < count_parameters(model) < 100_000
    again = build_tiny_model(TINY, tok, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))
    save_model(model, tok, tmp_path / "m")
    loaded, ltok = load_model(tmp_path / "m", device="cpu")
    assert ltok.padding_side == "left" and ltok.pad_token_id == tok.pad_token_id
    assert next(loaded.parameters()).dtype == torch.float32
    x = torch.tensor([tok("Rule: J=11 Q=12 K=13.")["input_ids"]])
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(x).logits, loaded(x).logits)
    text = "Cards: K 2 2 A. Make 24."
    assert ltok.decode(ltok(text)["input_ids"]) == text
    # Batched greedy generation with left padding works on the loaded pair.
    enc = ltok(["Cards: K", "Rule: J=10 Q=10 K=10. Cards: 2"], return_tensors="pt", padding=True)
    out = loaded.generate(**enc, max_new_tokens=3, do_sample=False)
    assert out.shape == (2, enc["input_ids"].shape[1] + 3)


def test_load_model_rejects_a_folder_without_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model(tmp_path)


def test_resolve_device():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda")
    with pytest.raises(ValueError, match="expected auto, cpu or cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            resolve_device("cuda")
