"""Batched generation with the KV cache, greedy or seeded sampling.

Evaluation generates one reply per pending hand and attempt. Prompts are batched
(left padding, as decoder-only generation needs), sorted by length so that a batch
wastes little padding, and decoded back into the caller's order. `model.generate`
keeps the KV cache, so each new token costs one forward step over the batch.

Sampling is seeded per hand: every hand (its key: split and id in evaluation, else its
prompt) has its own random generator, seeded from (seed, attempt, key), and draws one
vector of Gumbel noise per generated token from it; the next token is the argmax of the
processed logits (temperature, top-p) plus that noise, which is a sample from the
softmax (the Gumbel-max trick). A hand's t-th token therefore sees the same noise
whether it is generated alone or in a batch, so its reply does not depend on
`evaluation.batch_size`, on the other hands in its batch or on their padding.

A reply ends at any of the model's stop tokens (`stop_token_ids`): the generation
config's end-of-sequence ids, the tokenizer's, and the end-of-turn token that a chat
template closes turns with (`<|im_end|>`, `<|eot_id|>`, `<end_of_turn>`, ...), because
instruct models end a turn with a token that is often not the tokenizer's EOS. Batches
hold at most `batch_size` prompts and, when `batch_tokens` is set, at most that many
tokens (prompt plus `max_new_tokens`, padded), so long chat prompts do not blow up memory.

Finished replies leave the batch (`drop_finished`, the default): a decoding loop of our
own keeps the KV cache and drops a row from it as soon as the row ends, so each step
costs a forward over the rows still running, where `model.generate` carries every row
to the end of the batch's longest reply. On a CPU, where a step's cost is proportional to
the rows in it, that is most of the evaluation time once a few replies in a batch run
long (format errors run to `max_new_tokens`). The replies are the same (tested against
`model.generate`); `drop_finished: false` uses `model.generate`.

A model too large for one GPU loads with a `device_map` (`evaluation.device_map: auto`:
accelerate spreads its layers over the job's GPUs, then CPU memory, then disk); the loop
keeps its own tensors on the first GPU and each layer's KV cache where the layer runs.
With `evaluation.backend: vllm` the same prompts (token ids, rendered as here), stop
tokens and stop strings go to vLLM instead (rlheals.evaluation.vllm_backend).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Sequence, Union

import torch
from transformers import DynamicCache, LogitsProcessor, LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

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
    batch_tokens: int | None = field(
        default=None, metadata={"help": "most tokens (prompt + new, padded) per generate() call; None: no limit"})
    stop_strings: tuple[str, ...] = field(default=(), metadata={"help": "texts that also end a reply"})
    drop_finished: bool = field(
        default=True, metadata={"help": "finished rows leave the batch (own loop); False: model.generate"})

    def __post_init__(self) -> None:
        if self.decoding not in ("greedy", "sample"):
            raise ValueError(f"decoding {self.decoding!r}: expected 'greedy' or 'sample'")
        if self.batch_tokens is not None and self.batch_tokens < 1:
            raise ValueError(f"batch_tokens must be >= 1 or None, got {self.batch_tokens}")
        self.stop_strings = tuple(self.stop_strings)
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise ValueError(
                f"batch_size ({self.batch_size}) and max_new_tokens ({self.max_new_tokens}) must be >= 1"
            )


def render(prompt: Prompt, tokenizer) -> str:
    """Text fed to the model: a string as is, a message list through the chat template
    (`rlheals.task.episode.render_prompt`, shared with multi-turn RL)."""
    from rlheals.task.episode import render_prompt

    return render_prompt(prompt, tokenizer)


def _encode(texts: list[str], tokenizer, chat: bool) -> dict:
    # A chat template already writes the BOS token; adding it again would double it.
    return tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=not chat)


# The stop tokens are shared with multi-turn RL episodes (rlheals.task.episode).
from rlheals.task.episode import END_OF_TURN, stop_token_ids  # noqa: E402,F401


def batches(order: Sequence[int], lengths: Sequence[int], opts: DecodingOptions) -> list[list[int]]:
    """Consecutive runs of `order` (prompts sorted by length) that fit `batch_size` prompts
    and `batch_tokens` tokens (rows x (longest prompt + max_new_tokens)); a prompt too long
    for the budget on its own still gets a batch of one."""
    out: list[list[int]] = []
    cur: list[int] = []
    longest = 0
    for i in order:
        width = max(longest, lengths[i]) + opts.max_new_tokens
        full = len(cur) >= opts.batch_size or (
            opts.batch_tokens is not None and cur and (len(cur) + 1) * width > opts.batch_tokens)
        if full:
            out.append(cur)
            cur, longest = [], 0
        cur.append(i)
        longest = max(longest, lengths[i])
    if cur:
        out.append(cur)
    return out


def hand_seed(seed: int, attempt: int, key: object) -> int:
    """The sampling seed of one hand's attempt (a stable hash, the same in every process)."""
    digest = hashlib.sha256(f"{seed}/{attempt}/{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


class PerHandGumbel(LogitsProcessor):
    """Adds Gumbel noise drawn from one generator per row, so that the argmax samples
    from the softmax with noise that belongs to the hand, not to the batch."""

    def __init__(self, generators: list[torch.Generator]):
        self.generators = generators

    def select(self, rows: list[int]) -> None:
        """Keep the generators of these rows (rows that finished left the batch)."""
        self.generators = [self.generators[r] for r in rows]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        vocab = scores.shape[-1]
        u = torch.stack([torch.rand(vocab, generator=g, device=g.device) for g in self.generators])
        gumbel = -torch.log(-torch.log(u.clamp_min(torch.finfo(u.dtype).tiny)))
        return scores.float() + gumbel.to(scores.device)


def input_device(model) -> torch.device:
    """Where a batch's tensors go: the model's device, or with a `device_map` (a model
    split over GPUs, CPU and disk by accelerate) the first GPU it uses, else the CPU.
    Accelerate's hooks move each layer's inputs to that layer's device."""
    dmap = getattr(model, "hf_device_map", None)
    if dmap:
        for dev in dmap.values():
            if dev not in ("cpu", "disk"):
                return torch.device(f"cuda:{dev}" if isinstance(dev, int) else dev)
        return torch.device("cpu")
    return next(model.parameters()).device


@torch.no_grad()
def generate(model, tokenizer, prompts: Sequence[Prompt], opts: DecodingOptions, attempt: int = 0,
             keys: Sequence[object] | None = None) -> list[str]:
    """One reply per prompt, in the prompts' order. `keys` name the hands (default: their
    prompts); sampled replies are seeded by (opts.seed, attempt, key)."""
    if not prompts:
        return []
    chat = not isinstance(prompts[0], str)
    texts = [render(p, tokenizer) for p in prompts]
    if keys is None:
        keys = texts
    if len(keys) != len(texts):
        raise ValueError(f"{len(keys)} keys for {len(texts)} prompts")
    prompt_ids = [tokenizer(t, add_special_tokens=not chat)["input_ids"] for t in texts]
    stops = stop_token_ids(model, tokenizer)
    if getattr(model, "is_vllm", False):  # rlheals.evaluation.vllm_backend.VLLMModel
        seeds = [hand_seed(opts.seed, attempt, key) for key in keys]
        return [_cut(r, opts.stop_strings) for r in model.replies(prompt_ids, seeds, opts, stops)]
    lengths = [len(ids) for ids in prompt_ids]
    order = sorted(range(len(texts)), key=lambda i: (lengths[i], i))
    replies: list[str] = [""] * len(texts)
    device = input_device(model)
    gen_kwargs = dict(
        max_new_tokens=opts.max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=stops,
        # sampling is the argmax over logits + per-hand noise (see the module docstring)
        do_sample=False, temperature=None, top_p=None, top_k=None,
    )
    if opts.stop_strings:
        gen_kwargs.update(stop_strings=list(opts.stop_strings), tokenizer=tokenizer)
    for idx in batches(order, lengths, opts):
        batch = _encode([texts[i] for i in idx], tokenizer, chat)
        batch = {k: v.to(device) for k, v in batch.items()}
        processors = LogitsProcessorList()
        if opts.decoding == "sample":
            if opts.temperature != 1.0:
                processors.append(TemperatureLogitsWarper(opts.temperature))
            if opts.top_p < 1.0:
                processors.append(TopPLogitsWarper(opts.top_p))
            gens = [torch.Generator(device=device).manual_seed(hand_seed(opts.seed, attempt, keys[i])) for i in idx]
            processors.append(PerHandGumbel(gens))
        if opts.drop_finished:
            new_ids = _decode_dropping(model, batch, processors, stops, opts, tokenizer)
            texts_out = tokenizer.batch_decode(new_ids, skip_special_tokens=True)
        else:
            out = model.generate(**batch, **gen_kwargs, logits_processor=processors)
            texts_out = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        for i, text in zip(idx, texts_out):
            replies[i] = _cut(text, opts.stop_strings)
    return replies


def _decode_dropping(model, batch: dict, processors: LogitsProcessorList, stop_ids: list[int],
                     opts: DecodingOptions, tokenizer) -> list[list[int]]:
    """Greedy decoding over processed logits (as `model.generate` with do_sample=False),
    where a row leaves the batch, and its KV cache, as soon as it ends: at a stop token, at
    a stop string, or at max_new_tokens. Returns each row's new tokens, stop token included
    (decoding with skip_special_tokens drops it, as for `model.generate`'s output)."""
    ids, mask = batch["input_ids"], batch["attention_mask"]
    n = ids.shape[0]
    # Left padding: positions count real tokens only, as `model.generate` computes them.
    pos = (mask.long().cumsum(-1) - 1).clamp_min(0)
    cache = DynamicCache(config=model.config)
    # logits_to_keep=1: the LM head over the last prompt position only, as generate does
    # logits come back to the batch's device: with a device_map the LM head may sit elsewhere
    logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache,
                   use_cache=True, logits_to_keep=1).logits[:, -1, :].to(ids.device)
    stops = torch.tensor(sorted(set(stop_ids)), device=ids.device, dtype=torch.long)
    alive = list(range(n))
    new: list[list[int]] = [[] for _ in range(n)]
    seqs = ids
    next_pos = pos[:, -1] + 1
    for t in range(opts.max_new_tokens):
        tok = processors(seqs, logits.float()).argmax(-1)
        done = torch.isin(tok, stops) if stops.numel() else torch.zeros_like(tok, dtype=torch.bool)
        for j, (row, token) in enumerate(zip(alive, tok.tolist())):
            new[row].append(token)
            if opts.stop_strings and not done[j]:
                text = tokenizer.decode(new[row], skip_special_tokens=True)
                done[j] = any(s in text for s in opts.stop_strings)
        if t == opts.max_new_tokens - 1 or bool(done.all()):
            break
        if bool(done.any()):
            keep = (~done).nonzero().squeeze(1)
            cache.batch_select_indices(keep.cpu())  # a CPU index serves cache layers on any device
            rows = keep.tolist()
            alive = [alive[j] for j in rows]
            for p in processors:  # processors with per-row state (PerHandGumbel) follow the rows
                if hasattr(p, "select"):
                    p.select(rows)
            mask, seqs, next_pos, tok = mask[keep], seqs[keep], next_pos[keep], tok[keep]
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        seqs = torch.cat([seqs, tok[:, None]], dim=1)
        logits = model(input_ids=tok[:, None], attention_mask=mask, position_ids=next_pos[:, None],
                       past_key_values=cache, use_cache=True).logits[:, -1, :].to(ids.device)
        next_pos = next_pos + 1
    return new


def _cut(text: str, stops: Sequence[str]) -> str:
    """A reply up to and including its first stop string (generate stops at the token that
    completes one, which can run past it)."""
    ends = [text.find(s) + len(s) for s in stops if s and s in text]
    return text[: min(ends)] if ends else text
