"""Sampled replies are seeded per hand: a hand's reply does not depend on the batch size,
on which other hands share its batch, or on how much left padding its batch needs."""
from __future__ import annotations

import pytest
import torch

from rlheals.data.tokenizer import build_tokenizer
from rlheals.evaluation.evaluate import EvalOptions, evaluate_split
from rlheals.evaluation.generation import DecodingOptions, generate
from rlheals.task.cards import make_hands
from rlheals.task.prompts import build_prompt
from rlheals.train.models import build_tiny_model

torch.set_num_threads(1)
TINY = {"hidden_size": 32, "intermediate_size": 64, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1}


@pytest.fixture(scope="module")
def model_tok():
    tok = build_tokenizer()
    tok.padding_side = "left"
    model = build_tiny_model(TINY, tok, seed=1).eval()  # untrained: sampled replies differ a lot
    return model, tok


def _prompts() -> list[str]:
    hands = make_hands(10, "id", seed=7)
    # different lengths, so that batches need different amounts of left padding
    return [build_prompt(h, "id", "compact") + " Again." * (i % 4) for i, h in enumerate(hands)]


def _sample(batch_size: int, seed: int = 3) -> DecodingOptions:
    return DecodingOptions(max_new_tokens=10, batch_size=batch_size, decoding="sample", temperature=1.0, seed=seed)


def test_a_hands_sampled_reply_does_not_depend_on_the_batch_size(model_tok):
    model, tok = model_tok
    prompts = _prompts()
    alone = generate(model, tok, prompts, _sample(1))
    assert len(set(alone)) > 5, "the replies are too alike for this test to mean anything"
    for bs in (3, 4, 10):
        assert generate(model, tok, prompts, _sample(bs)) == alone, f"batch size {bs} changed the replies"


def test_a_hands_sampled_reply_does_not_depend_on_its_batch_mates(model_tok):
    model, tok = model_tok
    prompts = _prompts()
    full = generate(model, tok, prompts, _sample(4))
    sub = [1, 8, 3, 6]
    part = generate(model, tok, [prompts[i] for i in sub], _sample(4))
    assert part == [full[i] for i in sub]
    assert generate(model, tok, prompts, _sample(4, seed=4)) != full  # the seed still matters


def test_evaluation_replies_do_not_depend_on_evaluation_batch_size(model_tok):
    model, tok = model_tok
    records = [{"id": i, "cards": h, "rule": "id"} for i, h in enumerate(make_hands(9, "id", seed=11))]

    def run(bs):
        opts = EvalOptions(attempts=2, decoding=_sample(bs))
        _, rows = evaluate_split(model, tok, records, opts, "id")
        return sorted((r["id"], r["attempt"], r["reply"]) for r in rows)

    assert run(2) == run(9)


def test_the_per_hand_noise_samples_from_the_softmax():
    """argmax(logits + Gumbel noise) is a draw from softmax(logits): frequencies within 4 sigma."""
    from rlheals.evaluation.generation import PerHandGumbel, hand_seed

    logits = torch.tensor([[0.0, 1.0, 2.0, -1.0]])
    p = torch.softmax(logits[0], -1)
    n = 4000
    counts = torch.zeros(4)
    for i in range(n):
        proc = PerHandGumbel([torch.Generator().manual_seed(hand_seed(0, 0, i))])
        counts[int(proc(None, logits).argmax())] += 1
    sigma = (n * p * (1 - p)).sqrt()
    assert ((counts - n * p).abs() < 4 * sigma).all(), (counts / n, p)
