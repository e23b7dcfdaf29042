"""The vLLM backend's side of the contract, without vLLM (a GPU-only package): what
`generate()` hands the engine (token ids as the HF path encodes them, one seed per hand,
the stop tokens and strings) and what it does with the replies. The engine here is a
stand-in that decodes greedily with the same tiny model, so the two paths must agree
reply for reply; vLLM itself is exercised only where it is installed (a GPU machine)."""
from __future__ import annotations

import sys
import types

import pytest
import torch

from rlheals.data.tokenizer import build_tokenizer
from rlheals.evaluation import vllm_backend
from rlheals.evaluation.generation import DecodingOptions, generate, hand_seed, stop_token_ids
from rlheals.task.cards import make_hands
from rlheals.task.prompts import build_prompt
from rlheals.train.models import build_tiny_model

torch.set_num_threads(1)
TINY = {"hidden_size": 32, "intermediate_size": 64, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1}


class _Params:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class _Engine:
    """vllm.LLM's generate(): greedy decoding of token-id prompts with a transformers model,
    ending at stop_token_ids, max_tokens or a stop string (kept, as include_stop_str_in_output)."""

    def __init__(self, model, tok):
        self.model, self.tok, self.calls = model, tok, []

    def generate(self, prompts, params, use_tqdm=True):
        self.calls.append((prompts, params))
        outs = []
        for prompt, p in zip(prompts, params):
            ids = list(prompt["prompt_token_ids"])
            new: list[int] = []
            for _ in range(p.max_tokens):
                with torch.no_grad():
                    logits = self.model(input_ids=torch.tensor([ids + new])).logits[0, -1]
                tok = int(logits.argmax())
                if tok in p.stop_token_ids:
                    break
                new.append(tok)
                text = self.tok.decode(new, skip_special_tokens=True)
                if p.stop and any(s in text for s in p.stop):
                    break
            text = self.tok.decode(new, skip_special_tokens=True)
            outs.append(types.SimpleNamespace(outputs=[types.SimpleNamespace(text=text)]))
        return outs


@pytest.fixture()
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.SamplingParams = _Params
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module


@pytest.fixture(scope="module")
def model_tok():
    tok = build_tokenizer()
    tok.padding_side = "left"
    return build_tiny_model(TINY, tok, seed=1).eval(), tok


def _prompts() -> list[str]:
    return [build_prompt(h, "id", "compact") + " Again." * (i % 3) for i, h in enumerate(make_hands(5, "id", seed=4))]


@pytest.mark.parametrize("stops", [(), ("=",)])
def test_greedy_replies_through_the_engine_are_the_hf_replies(fake_vllm, model_tok, stops):
    model, tok = model_tok
    opts = DecodingOptions(max_new_tokens=10, batch_size=2, stop_strings=stops)
    engine = _Engine(model, tok)
    served = vllm_backend.VLLMModel(engine, model.generation_config)
    replies = generate(served, tok, _prompts(), opts)
    assert replies == generate(model, tok, _prompts(), opts)
    prompts, params = engine.calls[0]
    assert [p["prompt_token_ids"] for p in prompts] == [tok(t)["input_ids"] for t in _prompts()]
    assert all(p.temperature == 0.0 and p.seed is None for p in params)
    assert all(p.stop_token_ids == stop_token_ids(model, tok) for p in params)
    assert all(p.include_stop_str_in_output for p in params)


def test_sampled_hands_get_their_own_seeds(fake_vllm, model_tok):
    model, tok = model_tok
    opts = DecodingOptions(max_new_tokens=4, decoding="sample", temperature=0.7, top_p=0.9, seed=11)
    engine = _Engine(model, tok)
    keys = [f"ood/{i}" for i in range(5)]
    generate(vllm_backend.VLLMModel(engine, model.generation_config), tok, _prompts(), opts, attempt=2, keys=keys)
    params = engine.calls[0][1]
    assert [p.seed for p in params] == [hand_seed(11, 2, k) for k in keys]
    assert len({p.seed for p in params}) == 5
    assert all(p.temperature == 0.7 and p.top_p == 0.9 and p.max_tokens == 4 for p in params)


def test_loading_without_vllm_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setattr(vllm_backend, "vllm_available", lambda: False)
    with pytest.raises(RuntimeError, match=r"pip install '\.\[vllm\]'"):
        vllm_backend.load_vllm(tmp_path)


def test_loading_on_a_machine_without_gpus_is_refused(tmp_path, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    monkeypatch.setattr(vllm_backend, "vllm_available", lambda: True)
    with pytest.raises(RuntimeError, match="CUDA GPUs only"):
        vllm_backend.load_vllm(tmp_path, device="auto")
