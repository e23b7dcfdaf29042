"""Safe verifier and reward of GeneralPoints replies.

A reply is parsed for its formula (JSON first, then a `"formula": "..."` pattern, then
the compact `formula: ...` form; everything from '=' on is dropped). The formula is
tokenised (only digits, + - * / ( ) and spaces), checked for syntax and for using exactly
the hand's numbers, and evaluated with exact fractions by a small recursive-descent
parser; Python's `eval` is never used, so a reply cannot run code, and the length cap
bounds the work.

Rewards follow the paper's environment (penalties add up):

    correct +5 | partial +1 | wrong value -1 | per number problem -2 | per syntax problem -3

A number problem is using a number the hand does not hold or more often than it holds
it (-2), and, separately, leaving a card's number unused (-2 more). `partial` means the
formula is unfinished (open bracket or trailing operator), uses the right numbers, and is
a proper prefix of a solver solution (or becomes correct by closing its brackets). Unlike
the paper's float `eval`, exact arithmetic makes 8/(3-8/3) correct.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass
from enum import Enum
from fractions import Fraction
from typing import Any, Callable

from rlheals.task.cards import hand_numbers
from rlheals.task.solver import solve

MAX_REPLY_CHARS = 20_000  # longer replies are cut before parsing (bounds regex work)
MAX_FORMULA_CHARS = 200  # longer formulas are illegal
REWARDS = {"correct": 5.0, "partial": 1.0, "wrong_value": -1.0, "number": -2.0, "syntax": -3.0, "format_error": -3.0}


class Outcome(str, Enum):
    """What a reply achieved, from best to worst."""

    CORRECT = "correct"
    PARTIAL = "partial"
    WRONG_VALUE = "wrong_value"
    WRONG_NUMBERS = "wrong_numbers"
    ILLEGAL_FORMULA = "illegal_formula"
    FORMAT_ERROR = "format_error"


@dataclass(frozen=True)
class Verdict:
    """The verifier's judgement of one reply.

    `reward` is the paper's (accumulated) reward, `binary_reward` 1/0; `reason` is the
    human text used in the retry feedback ("You failed this trial because {reason}").
    """

    outcome: Outcome
    reward: float
    binary_reward: float
    formula: str | None
    reason: str
    value: str | None = None  # exact value of a complete formula, e.g. "47/2"

    @property
    def correct(self) -> bool:
        return self.outcome is Outcome.CORRECT

    def to_dict(self) -> dict:
        d = asdict(self)
        d["outcome"] = self.outcome.value
        return d


# ---------------------------------------------------------------- reply parsing
_QUOTED = re.compile(r"""["']formula["']\s*:\s*["']([^"'\n]*)""")
# `formula`, optionally marked up (`**Formula**:`, `Formula:**`), then the rest of the line.
# A lookahead, so that every label on a line is found ("a formula that works: formula: 1+2").
_COMPACT = re.compile(r"\bformula\b(?=[*_`\t ]*:?[*_`\t ]*([^\n]*))", re.IGNORECASE)


def _unmark(text: str) -> str:
    """Markdown/LaTeX around a formula (`**`, backticks, `$`), never the `*` inside it."""
    text = text.strip().lstrip("*`$ \t").rstrip("`$ \t")
    return text[:-2].rstrip() if text.endswith("**") else text


# Prose around a stated formula: "the formula is (10+2)*2*1." A link word before it and a
# sentence end after it (a '.', ',', ';', '!' or '?' followed by a space or the end) are not
# part of the formula; anything else (a decimal point, a letter inside it) still is, so the
# strict checks on the formula itself are unchanged.
_LINK = re.compile(r"^(?:(?:is|was|would be|will be|could be|can be|should be|becomes|reads|here)\b[:\s]*)+",
                   re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.,;!?](?=\s|$)")


def _unprose(text: str) -> str:
    """A stated formula without the prose around it (see _LINK, _SENTENCE_END)."""
    text = _unmark(_LINK.sub("", text.strip()))
    end = _SENTENCE_END.search(text)
    return _unmark(text[: end.start()]) if end else text


def _labelled(text: str) -> str | None:
    """The text after a `formula` label. Chat models also use the word in prose ("Here is a
    formula that ...") before the labelled line, so the first label followed by something that
    starts like a formula (a digit or a bracket) wins; failing that, the first label at all.
    A plain statement ("I think the formula is (10+2)*2*1.") is read as the formula it states."""
    found = [_unprose(_unmark(m.group(1))) for m in _COMPACT.finditer(text)]
    for cand in found:
        if cand[:1].isdigit() or cand[:1] == "(":
            return cand
    return found[0] if found else None


def _from_json(text: str) -> str | None:
    candidates = [text.strip()]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for cand in candidates:
        try:
            obj = json.loads(cand)
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict) and isinstance(obj.get("formula"), str):
            return obj["formula"]
    return None


def extract_formula(reply: str) -> str | None:
    """The formula of a reply with everything from '=' on dropped, or None if there is none."""
    text = str(reply)[:MAX_REPLY_CHARS]
    formula = _from_json(text)
    if formula is None:
        m = _QUOTED.search(text)
        formula = m.group(1) if m else _labelled(text)
    if formula is None:
        return None
    return formula.split("=")[0].strip()


# ---------------------------------------------------------------- tokens and syntax
_TOKEN = re.compile(r"[0-9]+|[-+*/()]|[ \t]+")
_OPS = "+-*/"


def tokenize(formula: str) -> tuple[list[str], list[str]]:
    """(tokens, illegal characters). Spaces separate tokens and are dropped."""
    tokens, illegal, pos = [], [], 0
    while pos < len(formula):
        m = _TOKEN.match(formula, pos)
        if m is None:
            illegal.append(formula[pos])
            pos += 1
            continue
        if not m.group().isspace():
            tokens.append(m.group())
        pos = m.end()
    return tokens, illegal


def syntax_problems(tokens: list[str]) -> tuple[list[str], bool]:
    """(problems, complete). Each problem costs -3; an unfinished formula is not a problem."""
    problems: list[str] = []
    depth, want_operand = 0, True
    for tok in tokens:
        if want_operand:
            if tok.isdigit():
                want_operand = False
            elif tok == "(":
                depth += 1
            elif tok == ")" and depth > 0:  # '()' or '(1+)': count it, close the group
                problems.append("')' where a number or '(' was expected")
                depth, want_operand = depth - 1, False
            else:
                problems.append(f"'{tok}' where a number or '(' was expected")
        else:
            if tok in _OPS:
                want_operand = True
            elif tok == ")" and depth > 0:
                depth -= 1
            elif tok == ")":
                problems.append("an unmatched ')'")
            else:
                problems.append(f"'{tok}' right after a number (missing operator)")
    return problems, not want_operand and depth == 0


# ---------------------------------------------------------------- exact evaluation
class _Parser:
    """expr := term (('+'|'-') term)* ; term := atom (('*'|'/') atom)* ; atom := NUM | '(' expr ')'."""

    def __init__(self, tokens: list[str]):
        self.tokens, self.pos = tokens, 0

    def parse(self) -> Fraction:
        value = self.expr()
        if self.pos != len(self.tokens):
            raise SyntaxError("trailing tokens")
        return value

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def expr(self) -> Fraction:
        value = self.term()
        while self._peek() in ("+", "-"):
            op = self.tokens[self.pos]
            self.pos += 1
            rhs = self.term()
            value = value + rhs if op == "+" else value - rhs
        return value

    def term(self) -> Fraction:
        value = self.atom()
        while self._peek() in ("*", "/"):
            op = self.tokens[self.pos]
            self.pos += 1
            rhs = self.atom()
            value = value * rhs if op == "*" else value / rhs  # ZeroDivisionError on x/0
        return value

    def atom(self) -> Fraction:
        tok = self._peek()
        self.pos += 1
        if tok is not None and tok.isdigit():
            return Fraction(int(tok))
        if tok == "(":
            value = self.expr()
            if self._peek() != ")":
                raise SyntaxError("missing ')'")
            self.pos += 1
            return value
        raise SyntaxError(f"unexpected {tok!r}")


def evaluate(formula: str) -> Fraction:
    """Exact value of a legal formula; SyntaxError if illegal, ZeroDivisionError on x/0."""
    if len(formula) > MAX_FORMULA_CHARS:
        raise SyntaxError(f"formula longer than {MAX_FORMULA_CHARS} characters")
    tokens, illegal = tokenize(formula)
    if illegal or not tokens:
        raise SyntaxError(f"illegal characters: {illegal}" if illegal else "empty formula")
    return _Parser(tokens).parse()


def _fmt(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


# ---------------------------------------------------------------- verdicts
def _verdict(outcome: Outcome, reward: float, formula: str | None, reason: str, value: str | None = None) -> Verdict:
    return Verdict(outcome, float(reward), 1.0 if outcome is Outcome.CORRECT else 0.0, formula, reason, value)


def number_problems(used: list[int], hand: list[int]) -> list[str]:
    """Each problem costs -2: invalid or over-used numbers, and unused card numbers."""
    have, got = Counter(hand), Counter(used)
    problems = []
    extra = got - have
    invalid = sorted(n for n in extra.elements() if n not in have)
    too_often = sorted(n for n in extra if n in have)
    if invalid or too_often:
        parts = [f"you used invalid numbers: {invalid}"] if invalid else []
        parts += [f"you used numbers more often than the cards allow: {too_often}"] if too_often else []
        problems.append(" and ".join(parts))
    unused = sorted((have - got).elements())
    if unused:
        problems.append(f"you did not use all the cards' numbers: {unused} unused")
    return problems


def _is_partial(tokens: list[str], numbers: list[int], target: int) -> bool:
    """Unfinished formula that is a proper prefix of a solution, or is one once closed."""
    text = "".join(tokens)
    if any(sol.startswith(text) and sol != text for sol in solve(numbers, target)):
        return True
    depth = tokens.count("(") - tokens.count(")")
    if tokens and tokens[-1] not in _OPS and tokens[-1] != "(" and depth > 0:
        try:
            return _Parser(tokens + [")"] * depth).parse() == target
        except (SyntaxError, ZeroDivisionError):
            return False
    return False


def verify_formula(formula: str | None, cards: list[str], rule: str, target: int = 24) -> Verdict:
    """Judge an already extracted formula against a hand (see the module docstring)."""
    return verify_numbers(formula, hand_numbers(cards, rule), target)


def verify_numbers(formula: str | None, numbers: list[int], target: int = 24) -> Verdict:
    """Judge a formula against the hand's numbers themselves (its cards read under the rule):
    what `verify_formula` does once the cards are numbers; the pretraining corpus's retry
    documents take their feedback from it, so it is worded as evaluation words it."""
    if formula is None or not formula.strip():
        return _verdict(Outcome.FORMAT_ERROR, REWARDS["format_error"], formula, "no formula was found in your answer")
    if len(formula) > MAX_FORMULA_CHARS:
        reason = f"the formula is longer than {MAX_FORMULA_CHARS} characters"
        return _verdict(Outcome.ILLEGAL_FORMULA, REWARDS["syntax"], formula[:MAX_FORMULA_CHARS], reason)
    tokens, illegal = tokenize(formula)
    if illegal:
        shown = sorted(set(illegal))[:10]
        return _verdict(Outcome.ILLEGAL_FORMULA, REWARDS["syntax"], formula, f"the formula has illegal characters: {shown}")
    numbers = list(numbers)
    syntax, complete = syntax_problems(tokens)
    wrong = number_problems([int(t) for t in tokens if t.isdigit()], numbers)
    penalty = REWARDS["syntax"] * len(syntax) + REWARDS["number"] * len(wrong)
    if syntax:
        return _verdict(Outcome.ILLEGAL_FORMULA, penalty, formula, "the formula is not legal: " + "; ".join(syntax + wrong))
    if wrong:
        return _verdict(Outcome.WRONG_NUMBERS, penalty, formula, "; ".join(wrong))
    if not complete:
        if _is_partial(tokens, numbers, target):
            return _verdict(Outcome.PARTIAL, REWARDS["partial"], formula, "the formula is a correct start but unfinished")
        return _verdict(Outcome.WRONG_VALUE, REWARDS["wrong_value"], formula, "the formula is unfinished")
    try:
        value = _Parser(tokens).parse()
    except ZeroDivisionError:
        return _verdict(Outcome.ILLEGAL_FORMULA, REWARDS["syntax"], formula, "the formula divides by zero")
    if value == target:
        return _verdict(Outcome.CORRECT, REWARDS["correct"], formula, f"the formula equals {target}", _fmt(value))
    reason = f"the formula evaluates to {_fmt(value)} instead of {target}"
    return _verdict(Outcome.WRONG_VALUE, REWARDS["wrong_value"], formula, reason, _fmt(value))


def verify(reply: str, cards: list[str], rule: str, target: int = 24) -> Verdict:
    """Judge a model's reply (any text) for a hand of `cards` under `rule`.

    >>> verify('{"formula": "8/(3-8/3)=24"}', ["3", "3", "8", "8"], "id").outcome.value
    'correct'
    >>> verify('formula: 11*2+1*1', ["J", "2", "A", "A"], "id").reason
    "you used invalid numbers: [11]; you did not use all the cards' numbers: [10] unused"
    """
    return verify_formula(extract_formula(reply), list(cards), rule, target)


# ---------------------------------------------------------------- rewards for trainers
def reward(verdict: Verdict, kind: str = "paper") -> float:
    """The paper's reward (+5/+1/-1/-2/-3, accumulated) or the binary 1/0 reward."""
    if kind == "paper":
        return verdict.reward
    if kind == "binary":
        return verdict.binary_reward
    raise ValueError(f"unknown reward kind {kind!r}; expected 'paper' or 'binary'")


def completion_text(completion: Any) -> str:
    """Text of a completion: a string, or a chat message list (the assistant turns joined)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    if isinstance(completion, (list, tuple)):
        parts = [m.get("content", "") for m in completion if isinstance(m, dict) and m.get("role", "assistant") == "assistant"]
        return "\n".join(str(p) for p in parts)
    return str(completion)


def make_reward_fn(kind: str = "paper") -> Callable[..., list[float]]:
    """A TRL-style reward function `fn(completions, cards, rule, **kwargs) -> list[float]`.

    `cards` and `rule` are the dataset columns of the same name (one entry per
    completion), so the RL prompt set needs those columns.

    >>> fn = make_reward_fn("paper")
    >>> fn(["formula: (10+2)*2*1=24", "formula: 10+2+2+1"], cards=[["K", "2", "2", "A"]] * 2, rule=["id", "id"])
    [5.0, -1.0]
    """
    reward(_verdict(Outcome.CORRECT, 5, "", ""), kind)  # reject a bad kind now, not mid-training

    def gp_reward(completions: list, cards: list, rule: list, **kwargs: Any) -> list[float]:
        targets = kwargs.get("target") or [24] * len(completions)
        return [
            reward(verify(completion_text(c), h, r, int(t)), kind)
            for c, h, r, t in zip(completions, cards, rule, targets)
        ]

    gp_reward.__name__ = f"gp_{kind}_reward"
    return gp_reward
