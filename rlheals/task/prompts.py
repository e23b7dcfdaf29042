"""Prompts, answers and retry feedback for GeneralPoints, in two styles.

- "chat": the paper's prompt (`Q_GeneralPoint_EQN_L`, doubled punctuation '.,' kept as in
  the paper's environment) as a chat message list for instruct models; the answer is a
  JSON object {"cards", "number", "formula"}.
- "compact": a short ASCII prompt for the tiny character-level model, e.g.
  `Rule: J=10 Q=10 K=10. Cards: K 2 2 A. Make 24.\\nAnswer:` with the answer
  ` numbers: 10 2 2 1 formula: (10+2)*2*1=24`. The rule is always stated, so an OOD
  prompt differs from an ID prompt only in the rule text (and its cards).

After a failed attempt the model is told why ("You failed this trial because ...") and
tries again; `retry_prompt` builds that continued prompt.
"""
from __future__ import annotations

import json
from typing import Iterable, Union

from rlheals.task.cards import check_rule, hand_numbers

STYLES = ("compact", "chat")
Messages = list[dict]
Prompt = Union[str, Messages]

FACE_CARD_MSG = {
    "id": "'J', 'Q', and 'K' count as '10'.",
    "ood": "'J', 'Q', and 'K' count as '11', '12', and '13' respectively.",
}
COMPACT_RULE = {"id": "J=10 Q=10 K=10", "ood": "J=11 Q=12 K=13"}

Q_GENERALPOINT_EQN_L = """[Task Description]
You are an expert {target_number} points card game player. You will receive a set of 4 cards.
Note that {face_card_msg}, and each card must be used once.
Your goal is to output a formula that evaluates to {target_number} using numbers from the cards and operators such as '+', '-', '*', '/', '(', ')', and '='.

[Input]
Cards: {cards}

[Output]
{{
  "cards": [x, y, z, w], where {face_card_msg},
  "number": [a, b, c, d], where a, b, c, and d are the numbers on the cards,
  "formula": 'an equation that equals {target_number}',
}}"""

FEEDBACK = "You failed this trial because {reason}"


def check_style(style: str) -> str:
    if style not in STYLES:
        raise ValueError(f"unknown prompt style {style!r}; expected one of {', '.join(STYLES)}")
    return style


def build_prompt(cards: Iterable[str], rule: str, style: str, target: int = 24) -> Prompt:
    """The prompt for one hand: a string (compact) or a one-message user list (chat)."""
    cards, rule = list(cards), check_rule(rule)
    if check_style(style) == "compact":
        return f"Rule: {COMPACT_RULE[rule]}. Cards: {' '.join(cards)}. Make {target}.\nAnswer:"
    text = Q_GENERALPOINT_EQN_L.format(target_number=target, face_card_msg=FACE_CARD_MSG[rule], cards=repr(cards))
    return [{"role": "user", "content": text}]


def _with_target(formula: str, target: int) -> str:
    return formula if "=" in formula else f"{formula}={target}"


def build_answer(cards: Iterable[str], rule: str, formula: str, style: str, target: int = 24) -> Prompt:
    """The reply a perfect model gives: a string (compact) or a one-message assistant list (chat)."""
    cards = list(cards)
    numbers = hand_numbers(cards, rule)
    formula = _with_target(formula, target)
    if check_style(style) == "compact":
        return f" numbers: {' '.join(map(str, numbers))} formula: {formula}"
    text = "{\n" + f'  "cards": {json.dumps(cards)},\n  "number": {json.dumps(numbers)},\n  "formula": {json.dumps(formula)}\n' + "}"
    return [{"role": "assistant", "content": text}]


def feedback_message(verdict) -> str:
    """The user turn after a failed attempt, e.g. 'You failed this trial because you used invalid numbers: [11]'."""
    return FEEDBACK.format(reason=verdict.reason)


def retry_prompt(prompt: Prompt, attempts: list[tuple[str, object]], style: str) -> Prompt:
    """The prompt for the next attempt: the first prompt, then each (reply, verdict) and its feedback.

    compact: one string, `prompt + reply + "\\n" + feedback + "\\nAnswer:"` per attempt;
    chat: the message list with an assistant turn and a user feedback turn per attempt.
    """
    if check_style(style) == "compact":
        if not isinstance(prompt, str):
            raise TypeError("a compact prompt is a string")
        text = prompt
        for reply, verdict in attempts:
            text += f"{reply}\n{feedback_message(verdict)}\nAnswer:"
        return text
    if isinstance(prompt, str):
        raise TypeError("a chat prompt is a list of messages")
    messages = [dict(m) for m in prompt]
    for reply, verdict in attempts:
        messages.append({"role": "assistant", "content": reply})
        messages.append({"role": "user", "content": feedback_message(verdict)})
    return messages
