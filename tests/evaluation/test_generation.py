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


def _ragged(model, tok):
    """The untrained model ends a reply at frequent characters, so that rows in a batch end
    at different steps and leave it one by one."""
    ends = [tok.convert_tokens_to_ids(c) for c in ("7", "+", "k", ".")]
    model.generation_config.eos_token_id = [tok.eos_token_id] + ends
    return model


@pytest.mark.parametrize("decoding", ["greedy", "sample"])
def test_dropping_finished_rows_gives_the_replies_of_model_generate(model_tok, decoding):
    model, tok = model_tok
    old = model.generation_config.eos_token_id
    try:
        _ragged(model, tok)
        prompts = _prompts()
        kw = dict(max_new_tokens=12, batch_size=4, decoding=decoding, temperature=1.0, seed=3)
        hf = generate(model, tok, prompts, DecodingOptions(drop_finished=False, **kw))
        rows: list[int] = []
        hook = model.get_input_embeddings().register_forward_hook(lambda m, a, out: rows.append(out.shape[0]))
        try:
            own = generate(model, tok, prompts, DecodingOptions(drop_finished=True, **kw))
        finally:
            hook.remove()
        assert any(b < a for a, b in zip(rows, rows[1:]) if b <= a), f"no row left its batch: {rows}"
        lengths = {len(r) for r in own}
        # greedy: the untrained model repeats "...." (ends at once) or "Answer:" (runs on)
        assert len(lengths) >= (2 if decoding == "greedy" else 4), f"replies end too alike ({lengths})"
        assert own == hf
    finally:
        model.generation_config.eos_token_id = old


def test_dropping_finished_rows_honours_stop_strings(model_tok):
    model, tok = model_tok
    prompts = _prompts()
    kw = dict(max_new_tokens=12, batch_size=5, stop_strings=("1", "="), decoding="sample", seed=2)
    hf = generate(model, tok, prompts, DecodingOptions(drop_finished=False, **kw))
    own = generate(model, tok, prompts, DecodingOptions(drop_finished=True, **kw))
    assert any(r.endswith(("1", "=")) for r in own)
    assert own == hf
