"""Batched generation with the KV cache, greedy or seeded sampling.

Evaluation generates one reply per pending hand and attempt. Prompts are batched
(left padding, as decoder-only generation needs), sorted by length so that a batch
wastes little padding, and decoded back into the caller's order. `model.generate`
keeps the KV cache, so each new token costs one forward step over the batch.

Sampling is reproducible: the torch seed is set from (seed, attempt, batch index)
before each batch, so a rerun with the same seed gives the same replies regardless of
which batches ran before.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence, Union

import torch

Prompt = Union[str, list]  # a plain string (compact style) or a chat message list


@dataclass
class DecodingOptions:
    """How replies are generated (config section `evaluation`)."""

    max_new_tokens: int = field(default=48, metadata={"help": "tokens generated per reply"})
    batch_size: int = field(default=64, metadata={"help": "prompts per generate() call"})
    decoding: str = field(default="greedy", metadata={"help": "greedy or sample"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass"})
    seed: int = field(default=0, metadata={"help": "seed of sampled decoding"})

    def __post_init__(self) -> None:
        if self.decoding not in ("greedy", "sample"):
            raise ValueError(f"decoding {self.decoding!r}: expected 'greedy' or 'sample'")
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise ValueError(
                f"batch_size ({self.batch_size}) and max_new_tokens ({self.max_new_tokens}) must be >= 1"
            )


def render(prompt: Prompt, tokenizer) -> str:
    """Text fed to the model: a string as is, a message list through the chat template."""
    if isinstance(prompt, str):
        return prompt
    return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)


def _encode(texts: list[str], tokenizer, chat: bool) -> dict:
    # A chat template already writes the BOS token; adding it again would double it.
    return tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=not chat)


@torch.no_grad()
def generate(model, tokenizer, prompts: Sequence[Prompt], opts: DecodingOptions, attempt: int = 0) -> list[str]:
    """One reply per prompt, in the prompts' order."""
    if not prompts:
        return []
    chat = not isinstance(prompts[0], str)
    texts = [render(p, tokenizer) for p in prompts]
    lengths = [len(tokenizer(t, add_special_tokens=not chat)["input_ids"]) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: (lengths[i], i))
    replies: list[str] = [""] * len(texts)
    device = next(model.parameters()).device
    gen_kwargs = dict(
        max_new_tokens=opts.max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    if opts.decoding == "greedy":
        gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    else:
        gen_kwargs.update(do_sample=True, temperature=opts.temperature, top_p=opts.top_p, top_k=None)
    for b, start in enumerate(range(0, len(order), opts.batch_size)):
        idx = order[start : start + opts.batch_size]
        batch = _encode([texts[i] for i in idx], tokenizer, chat)
        batch = {k: v.to(device) for k, v in batch.items()}
        if opts.decoding == "sample":
            torch.manual_seed(opts.seed * 1_000_003 + attempt * 10_007 + b)
        out = model.generate(**batch, **gen_kwargs)
        new = out[:, batch["input_ids"].shape[1] :]
        for i, text in zip(idx, tokenizer.batch_decode(new, skip_special_tokens=True)):
            replies[i] = text
    return replies
