"""Pretraining corpus and a few steps of pretraining on a tiny model (resumed exactly)."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from rlheals.atomic import write_jsonl
from rlheals.data.corpus import CorpusOptions, build_corpus, value
from rlheals.train.pretrain import PretrainOptions, pretrain
from rlheals.task.solver import is_solvable
from rlheals.data.tokenizer import build_tokenizer
from rlheals.train.common import set_threads

TINY = {"hidden_size": 32, "intermediate_size": 64, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    write_jsonl(path, build_corpus(CorpusOptions(size=300, seed=1)))
    return path


def test_corpus_is_seeded_covers_every_skill_and_never_holds_the_whole_task():
    """The default corpus has every skill of its mix and the task's two halves in the task's
    wording, never a prompt with its formula; the sub-skill mix never the task's format at
    all; the tokenizer round-trips every document."""
    from rlheals.data.corpus import DEFAULT_MIX, SUBSKILL_MIX

    a = build_corpus(CorpusOptions(size=400, seed=5))
    assert a == build_corpus(CorpusOptions(size=400, seed=5))
    assert a != build_corpus(CorpusOptions(size=400, seed=6))
    assert {r["skill"] for r in a} == set(DEFAULT_MIX)
    tok = build_tokenizer()
    for r in a:
        assert not ("Cards:" in r["text"] and "formula" in r["text"])
        assert tok.decode(tok(r["text"], add_special_tokens=False)["input_ids"]) == r["text"]
    for r in build_corpus(CorpusOptions(size=400, seed=5, mix=dict(SUBSKILL_MIX))):
        assert "Answer:" not in r["text"] and "formula:" not in r["text"]
    rules = {r["text"].split("J=")[1][:2] for r in a if "J=" in r["text"]}
    assert len(rules) > 3  # ID, OOD and random face-card rules


def test_corpus_formulas_are_correct():
    import re
    from fractions import Fraction

    from rlheals.task.verifier import evaluate

    for r in build_corpus(CorpusOptions(size=200, seed=2, mix={"solve": 1.0})):
        formula = re.search(r"([0-9()+\-*/]+) = 24$", r["text"]).group(1)
        assert evaluate(formula) == Fraction(24)
    assert value("K", {"J": 1, "Q": 2, "K": 3}) == 3 and value("7", {"J": 1, "Q": 2, "K": 3}) == 7
    assert is_solvable([1, 2, 3, 4])


def test_pretraining_learns_and_resumes_exactly(corpus, tmp_path):
    set_threads(1)
    opts = PretrainOptions(steps=6, batch_size=8, lr=3e-3, warmup_steps=2, max_length=32, threads=1,
                           device="cpu", save_every=3, log_every=1, eval_every=3)
    pretrain(TINY, str(corpus), str(tmp_path / "a"), str(tmp_path / "a.csv"), str(tmp_path / "runs"), opts)
    table = pd.read_csv(tmp_path / "a.csv")
    assert list(table["step"]) == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(v) for v in table["train_loss"])
    assert table["train_loss"].iloc[-1] < table["train_loss"].iloc[0]
    fresh = load_file(tmp_path / "a" / "model.safetensors")
    # A second call finds the state saved at step 3 (as after a crash) and resumes from it.
    pretrain(TINY, str(corpus), str(tmp_path / "b"), str(tmp_path / "b.csv"), str(tmp_path / "runs"), opts)
    resumed = load_file(tmp_path / "b" / "model.safetensors")
    assert all(torch.equal(fresh[k], resumed[k]) for k in fresh)
    assert pd.read_csv(tmp_path / "b.csv")["train_loss"].tolist() == pytest.approx(table["train_loss"].tolist())
