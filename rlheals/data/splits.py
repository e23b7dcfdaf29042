"""The prepared data sets: SFT examples, held-out SFT sets, RL prompts, evaluation sets.

Every set is a list of JSON-ready records with an `id`, the hand (`cards`), its `rule`
and `numbers`, and the `prompt` in the configured style (a string for "compact", a
chat message list for "chat", i.e. TRL's conversational format). SFT and held-out
records add the `completion` (the solver-written answer) and its `formula`; evaluation
records add a reference `solution`.

Each set draws from its own seed stream, derived from the master seed and the set's
name, so resizing one set leaves the hands of the others unchanged where possible.
Evaluation hands are distinct; held-out hands are distinct and disjoint from the
evaluation hands; SFT and RL hands avoid both (compared as card multisets), under both
rules by default (`exclude_ood_hands`). Only 1,236 of the 1,820 card multisets are
solvable under the ID rule, so with the default sizes about 590 distinct hands remain
for SFT (each appears several times, with the same answer under "simplest").

SFT answers: `answer="simplest"` (default) uses `solver.best_solution`, one fixed
answer per hand, easy for a small model to learn; `answer="random"` picks one of the
hand's solutions from a seeded generator per example (closer to the paper's data, which
listed every solution).
"""
from __future__ import annotations

import hashlib
import logging
import random
from typing import Iterable

from rlheals.task.cards import hand_key, hand_numbers, make_hands
from rlheals.task.prompts import build_answer, build_prompt, check_style
from rlheals.task.solver import best_solution, solve

log = logging.getLogger(__name__)
SET_NAMES = ("sft_train", "sft_heldout_id", "sft_heldout_ood", "rl_prompts", "eval_id", "eval_ood")
ANSWERS = ("simplest", "random")


def derive_seed(seed: int, name: str) -> int:
    """A seed for one named stream, fixed by the master seed (stable across Python runs)."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _base(name: str, i: int, cards: list[str], rule: str, style: str) -> dict:
    return {
        "id": f"{name}-{i:05d}",
        "cards": cards,
        "rule": rule,
        "numbers": hand_numbers(cards, rule),
        "prompt": build_prompt(cards, rule, style),
    }


def _answered(name: str, hands: list[list[str]], rule: str, style: str, answer: str, seed: int) -> list[dict]:
    if answer not in ANSWERS:
        raise ValueError(f"unknown SFT answer choice {answer!r}; expected one of {', '.join(ANSWERS)}")
    rng = random.Random(derive_seed(seed, name + ":answers"))
    records = []
    for i, cards in enumerate(hands):
        numbers = hand_numbers(cards, rule)
        formula = best_solution(numbers) if answer == "simplest" else rng.choice(solve(numbers))
        rec = _base(name, i, cards, rule, style)
        rec["formula"] = formula
        rec["completion"] = build_answer(cards, rule, formula, style)
        records.append(rec)
    return records


def eval_records(n: int, rule: str, seed: int, style: str) -> list[dict]:
    """`n` distinct evaluation hands under `rule`, with a reference solution each."""
    name = f"eval_{rule}"
    hands = make_hands(n, rule, derive_seed(seed, name), unique=True)
    records = [_base(name, i, cards, rule, check_style(style)) for i, cards in enumerate(hands)]
    for rec in records:
        rec["solution"] = best_solution(rec["numbers"])
    return records


def heldout_records(
    n: int, rule: str, seed: int, style: str, exclude: Iterable = (), answer: str = "simplest"
) -> list[dict]:
    """`n` distinct answered hands under `rule` for the SFT held-out loss (not trained on)."""
    name = f"sft_heldout_{rule}"
    hands = make_hands(n, rule, derive_seed(seed, name), exclude=frozenset(exclude), unique=True)
    return _answered(name, hands, rule, check_style(style), answer, seed)


def sft_records(n: int, seed: int, style: str, exclude: Iterable = (), answer: str = "simplest") -> list[dict]:
    """`n` SFT examples under the ID rule (hands may repeat; excluded hands never appear)."""
    hands = make_hands(n, "id", derive_seed(seed, "sft_train"), exclude=frozenset(exclude))
    return _answered("sft_train", hands, "id", check_style(style), answer, seed)


def rl_records(n: int, seed: int, style: str, exclude: Iterable = ()) -> list[dict]:
    """`n` RL prompts under the ID rule (hands may repeat; excluded hands never appear)."""
    hands = make_hands(n, "id", derive_seed(seed, "rl_prompts"), exclude=frozenset(exclude))
    return [_base("rl_prompts", i, cards, "id", check_style(style)) for i, cards in enumerate(hands)]


def build_all(data: dict, seed: int, style: str) -> dict[str, list[dict]]:
    """All six sets from the config's `data` section, with the disjointness rules applied."""
    answer = data.get("sft_answer", "simplest")
    sets: dict[str, list[dict]] = {}
    for rule in ("id", "ood"):
        sets[f"eval_{rule}"] = eval_records(data["eval_size"], rule, seed, style)
    eval_keys = {hand_key(r["cards"]) for rule in ("id", "ood") for r in sets[f"eval_{rule}"]}
    for rule in ("id", "ood"):
        sets[f"sft_heldout_{rule}"] = heldout_records(data["heldout_size"], rule, seed, style, eval_keys, answer)
    # ID evaluation and held-out hands never reach training; OOD ones (different numbers
    # under the ID rule, but the same cards) are kept out too unless exclude_ood_hands is off.
    rules_out = ("id", "ood") if data.get("exclude_ood_hands", True) else ("id",)
    keep_out = {hand_key(r["cards"]) for rule in rules_out for kind in ("eval", "sft_heldout") for r in sets[f"{kind}_{rule}"]}
    sets["sft_train"] = sft_records(data["sft_size"], seed, style, keep_out, answer)
    sets["rl_prompts"] = rl_records(data["rl_size"], seed, style, keep_out)
    for name in SET_NAMES:
        distinct = len({hand_key(r["cards"]) for r in sets[name]})
        log.info("%s: %d records, %d distinct hands", name, len(sets[name]), distinct)
    return {name: sets[name] for name in SET_NAMES}


def write_all(paths: dict[str, str], data: dict, seed: int, style: str) -> None:
    """Build every set and write each to its JSONL path (atomically)."""
    from rlheals.atomic import write_jsonl

    missing = [n for n in SET_NAMES if n not in paths]
    if missing:
        raise ValueError(f"no output path for data set(s) {missing}; expected paths for {list(SET_NAMES)}")
    for name, records in build_all(data, seed, style).items():
        write_jsonl(paths[name], records)
