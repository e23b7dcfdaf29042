"""One hand's episode: the prompt, then reply, feedback, reply ... (the paper's "sequential revision").

Evaluation and multi-turn RL both continue a failed attempt from here, so the model reads
exactly the same text in training and in evaluation: the next attempt's context is
`prompts.retry_prompt` (the first prompt, then each reply and "You failed this trial
because <reason>"), rendered by `render_prompt` (a string as is, a chat message list
through the model's chat template). RL works on token ids and needs the text *between*
two replies (the environment's part, which carries no loss): `feedback_segment` takes it
as the difference of two rendered retry prompts, so it cannot drift from what evaluation
shows.

The episode's return follows the paper's per-attempt rewards (`verifier.reward`: +5
correct, +1 partial, -1 wrong value, -2 per number problem, -3 per syntax problem, or
binary 1/0): an episode ends at the first correct reply or after the last attempt, and its
return is the discounted sum `sum_t gamma**t * r_t` over its attempts (`episode_return`),
which is also what GAE's returns add up to for gamma = the same value and lambda = 1.
"""
from __future__ import annotations

from typing import Any, Sequence

from rlheals.task.prompts import Prompt, retry_prompt


# Tokens that chat templates close a turn with; one counts only if the model's own template uses it.
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|eot|>", "<|end_of_turn|>", "</s>")


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every token id that ends a reply, in evaluation and in RL episodes alike: the
    generation config's EOS (an id or a list), the tokenizer's EOS, and the end-of-turn
    tokens that the chat template writes."""
    ids: list[int] = []

    def add(value) -> None:
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v is not None and int(v) not in ids:
                ids.append(int(v))

    gen_cfg = getattr(model, "generation_config", None)
    add(getattr(gen_cfg, "eos_token_id", None))
    add(tokenizer.eos_token_id)
    template = getattr(tokenizer, "chat_template", None) or ""
    if isinstance(template, dict):
        template = " ".join(template.values())
    vocab = tokenizer.get_vocab()
    for token in END_OF_TURN:
        if token in template and token in vocab:
            add(vocab[token])
    return ids


def render_prompt(prompt: Prompt, tokenizer: Any) -> str:
    """Text fed to the model: a string as is, a message list through the chat template
    (with the assistant's generation prompt)."""
    if isinstance(prompt, str):
        return prompt
    return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)


def next_context(prompt: Prompt, history: Sequence[tuple[str, Any]], style: str) -> Prompt:
    """The context of the next attempt after `history` [(reply, verdict), ...]: the first
    prompt itself when there is no history, else the retry prompt with every feedback."""
    return prompt if not history else retry_prompt(prompt, list(history), style)


def feedback_segment(prompt: Prompt, history: Sequence[tuple[str, Any]], reply: str, verdict: Any,
                     style: str, tokenizer: Any = None) -> str:
    """Text the environment writes after `reply` (answered by `verdict`) and before the next
    attempt: rendered(next context) minus rendered(this context) + reply.

    compact: "\\nYou failed this trial because <reason>\\nAnswer:"; chat: the end of the
    assistant turn, the user's feedback turn and the next assistant header, as the chat
    template writes them. Raises ValueError if the template does not keep the reply
    verbatim (then token-level episodes and evaluation would read different text).
    """
    before = render_prompt(next_context(prompt, history, style), tokenizer) + reply
    after = render_prompt(next_context(prompt, [*history, (reply, verdict)], style), tokenizer)
    if not after.startswith(before):
        raise ValueError(
            "the chat template does not reproduce the model's reply verbatim in the next turn "
            f"(reply {reply!r}); multi-turn episodes need a template that keeps assistant text as is"
        )
    return after[len(before):]


def episode_return(rewards: Sequence[float], gamma: float) -> float:
    """Discounted return of one episode's per-attempt rewards, from its first attempt."""
    total, scale = 0.0, 1.0
    for r in rewards:
        total += scale * float(r)
        scale *= gamma
    return total
