"""Multi-turn RL episodes on token ids: reply, verifier feedback, reply ... (as evaluation does).

An episode starts from a hand's prompt; the model replies (sampled at the RL temperature),
the verifier judges the reply, and unless it is correct or the last attempt is used up,
the environment appends the same feedback text evaluation shows
(`rlheals.task.episode.feedback_segment`) and the model replies again. Episodes run in
batches: every attempt is one batched `generate` over the episodes still going.

Token layout of an episode (what trl's `rollout_func` returns, and what PPO trains on):
`prompt_ids`, then `completion_ids` = reply_1, feedback_1, reply_2, ..., reply_k with
`env_mask` 1 on the model's tokens and 0 on the feedback. A reply that is followed by
feedback loses its end-of-sequence token, because evaluation's next prompt is the reply's
*text* followed by the feedback (in chat style the template's end-of-turn token is part of
the feedback segment); the last reply keeps it, so the model still learns to stop.
Sampling uses torch's global generator, which the trainers seed (trl: its saved RNG
state; PPO: a seed per update), so a resumed run draws the same episodes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from rlheals.task.episode import episode_return, feedback_segment, render_prompt, stop_token_ids
from rlheals.task.verifier import Verdict, reward, verify


@dataclass
class EpisodeOptions:
    """How episodes are played (config `rl`: attempts, temperature, max_completion_length,
    reward, gamma; `model.prompt_style`)."""

    attempts: int = 1
    style: str = "compact"
    temperature: float = 1.0
    max_new_tokens: int = 48
    reward: str = "paper"
    gamma: float = 0.9
    batch_size: int = 64  # episodes per generate call

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"rl.attempts must be >= 1, got {self.attempts}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"rl.gamma must be in [0, 1], got {self.gamma}")


@dataclass
class Turn:
    """One attempt: the tokens it was generated from, the model's tokens, and the verdict."""

    context_ids: list[int]
    reply_ids: list[int]
    logprobs: list[float]
    reply: str
    verdict: Verdict
    reward: float
    feedback_ids: list[int] = field(default_factory=list)  # environment tokens after this reply

    @property
    def correct(self) -> bool:
        return self.verdict.correct


@dataclass
class Episode:
    """A hand's whole episode."""

    prompt: Any
    cards: list[str]
    rule: str
    prompt_ids: list[int]
    turns: list[Turn] = field(default_factory=list)

    @property
    def solved(self) -> bool:
        return bool(self.turns) and self.turns[-1].correct

    @property
    def first_correct(self) -> bool:
        return bool(self.turns) and self.turns[0].correct

    @property
    def rewards(self) -> list[float]:
        return [t.reward for t in self.turns]

    def ret(self, gamma: float) -> float:
        return episode_return(self.rewards, gamma)

    def completion(self) -> tuple[list[int], list[int], list[float]]:
        """(completion_ids, env_mask, logprobs) after the prompt: replies and feedback in order."""
        ids: list[int] = []
        mask: list[int] = []
        logps: list[float] = []
        for t in self.turns:
            ids += t.reply_ids
            mask += [1] * len(t.reply_ids)
            logps += t.logprobs
            ids += t.feedback_ids
            mask += [0] * len(t.feedback_ids)
            logps += [0.0] * len(t.feedback_ids)
        return ids, mask, logps


def _encode(tokenizer, text: str, chat: bool) -> list[int]:
    # As evaluation encodes a prompt: a chat template already writes the BOS token.
    return list(tokenizer(text, add_special_tokens=not chat)["input_ids"])


def _stop_ids(model, tokenizer) -> set[int]:
    """The tokens that end a reply: evaluation's (`stop_token_ids`), plus padding."""
    ids = set(stop_token_ids(model, tokenizer))
    if tokenizer.pad_token_id is not None:
        ids.add(tokenizer.pad_token_id)
    return ids


@torch.no_grad()
def _sample(model, tokenizer, contexts: list[list[int]], opts: EpisodeOptions) -> list[tuple[list[int], list[float]]]:
    """One sampled reply per context: (token ids up to and including the first stop token,
    their log-probabilities under the sampling distribution)."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stop = _stop_ids(model, tokenizer)
    out: list[tuple[list[int], list[float]]] = []
    for start in range(0, len(contexts), opts.batch_size):
        chunk = contexts[start : start + opts.batch_size]
        width = max(len(c) for c in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        att = torch.zeros((len(chunk), width), dtype=torch.long)
        for i, c in enumerate(chunk):  # left padding
            ids[i, width - len(c) :] = torch.tensor(c, dtype=torch.long)
            att[i, width - len(c) :] = 1
        gen = model.generate(
            input_ids=ids.to(device), attention_mask=att.to(device), max_new_tokens=opts.max_new_tokens,
            do_sample=True, temperature=opts.temperature, top_p=1.0, top_k=None,
            pad_token_id=pad, eos_token_id=stop_token_ids(model, tokenizer),
            output_scores=True, return_dict_in_generate=True,
        )
        new = gen.sequences[:, width:].cpu()
        logp = torch.stack([torch.log_softmax(s.float(), dim=-1) for s in gen.scores], dim=1).cpu()
        for i in range(len(chunk)):
            toks, lps = [], []
            for j, tok in enumerate(new[i].tolist()):
                toks.append(tok)
                lps.append(float(logp[i, j, tok]))
                if tok in stop:
                    break
            out.append((toks, lps))
    return out


def run_episodes(model, tokenizer, prompts: Sequence[Any], hands: Sequence[tuple[list[str], str]],
                 opts: EpisodeOptions) -> list[Episode]:
    """Play one episode per prompt (hands[i] = (cards, rule) of prompts[i])."""
    chat = not isinstance(prompts[0], str)
    stop = _stop_ids(model, tokenizer)
    episodes = []
    for p, (cards, rule) in zip(prompts, hands):
        episodes.append(Episode(p, list(cards), rule, _encode(tokenizer, render_prompt(p, tokenizer), chat)))
    pending = list(range(len(episodes)))
    contexts = {i: list(episodes[i].prompt_ids) for i in pending}
    for attempt in range(opts.attempts):
        if not pending:
            break
        samples = _sample(model, tokenizer, [contexts[i] for i in pending], opts)
        still = []
        for i, (toks, lps) in zip(pending, samples):
            ep = episodes[i]
            text = tokenizer.decode(toks, skip_special_tokens=True)
            verdict = verify(text, ep.cards, ep.rule)
            turn = Turn(list(contexts[i]), toks, lps, text, verdict, reward(verdict, opts.reward))
            last = verdict.correct or attempt == opts.attempts - 1
            if not last:
                if turn.reply_ids and turn.reply_ids[-1] in stop:  # evaluation continues from the text
                    turn.reply_ids, turn.logprobs = turn.reply_ids[:-1], turn.logprobs[:-1]
                history = [(t.reply, t.verdict) for t in ep.turns]
                seg = feedback_segment(ep.prompt, history, text, verdict, opts.style, tokenizer)
                turn.feedback_ids = list(tokenizer(seg, add_special_tokens=False)["input_ids"])
                contexts[i] = contexts[i] + turn.reply_ids + turn.feedback_ids
                still.append(i)
            ep.turns.append(turn)
        pending = still
    return episodes


def prompt_key(prompt: Any) -> str:
    """A hashable key of a prompt (a string or a chat message list)."""
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True)


def make_trl_rollout(hands: dict[str, tuple[list[str], str]], opts: EpisodeOptions) -> Callable:
    """trl's `rollout_func(prompts, trainer)` for multi-turn episodes.

    `hands` maps `prompt_key(prompt)` to (cards, rule): trl passes only the prompts, and
    a prompt names its hand. Besides the ids, log-probs and env_mask, the result carries
    `episode_return`, `episode_success`, `first_success` and `attempts_used`, which trl
    hands to the reward functions (`episode_reward_fns`).
    """

    def rollout_func(prompts: list, trainer) -> dict:
        model = trainer.accelerator.unwrap_model(trainer.model)
        tok = trainer.processing_class
        episodes = run_episodes(model, tok, prompts, [hands[prompt_key(p)] for p in prompts], opts)
        out: dict[str, list] = {k: [] for k in ("prompt_ids", "completion_ids", "logprobs", "env_mask")}
        for ep in episodes:
            ids, mask, logps = ep.completion()
            out["prompt_ids"].append(ep.prompt_ids)
            out["completion_ids"].append(ids)
            out["logprobs"].append(logps)
            out["env_mask"].append(mask)
        out["episode_return"] = [ep.ret(opts.gamma) for ep in episodes]
        out["episode_success"] = [1.0 if ep.solved else 0.0 for ep in episodes]
        out["first_success"] = [1.0 if ep.first_correct else 0.0 for ep in episodes]
        out["attempts_used"] = [len(ep.turns) for ep in episodes]
        return out

    return rollout_func


def episode_reward_fns(kind: str) -> list[Callable[..., list[float]]]:
    """Reward functions for trl that read the rollout's episode fields: the episode's
    return (weight 1), success within the attempts and success at attempt 1 (weight 0, logged)."""

    def ret(completions: list, episode_return: list, **kwargs: Any) -> list[float]:
        used = kwargs.get("attempts_used")
        if used and kwargs.get("log_metric"):
            kwargs["log_metric"]("episode/attempts_mean", sum(used) / len(used))
        return [float(r) for r in episode_return]

    def success(completions: list, episode_success: list, **kwargs: Any) -> list[float]:
        return [float(r) for r in episode_success]

    def first(completions: list, first_success: list, **kwargs: Any) -> list[float]:
        return [float(r) for r in first_success]

    ret.__name__ = f"gp_{kind}_return"
    success.__name__ = "gp_binary_reward"
    first.__name__ = "gp_first_attempt_reward"
    return [ret, success, first]
