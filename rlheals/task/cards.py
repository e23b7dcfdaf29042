"""Cards, rules and seeded hands of the GeneralPoints task.

A hand is four card strings ('A', '2'..'10', 'J', 'Q', 'K'). The rule decides what a
face card is worth: under the in-distribution rule "id" J, Q and K count as 10; under
the out-of-distribution rule "ood" they count as 11, 12 and 13 and every hand holds at
least one face card (as in the paper's environment). Hands that cannot reach 24 under
their rule are redrawn, so every generated hand is solvable.
"""
from __future__ import annotations

import random
from typing import Callable, Iterable

RANKS = ["A", "2", "3", "4", "5", "6", "7", "8", "9", "10", "J", "Q", "K"]
FACES = ["J", "Q", "K"]
RULES = ("id", "ood")
HAND_SIZE = 4
_RANK_INDEX = {r: i for i, r in enumerate(RANKS)}


def check_rule(rule: str) -> str:
    """Return `rule` if it is 'id' or 'ood'; raise ValueError naming it otherwise."""
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; expected 'id' (J, Q, K = 10) or 'ood' (J, Q, K = 11, 12, 13)")
    return rule


def parse_card(s: str | int) -> str:
    """Card string from a user's spelling: A, 2..10, J, Q, K (any case) or a number 1..13."""
    text = str(s).strip().upper()
    if text in _RANK_INDEX:
        return text
    if text.isdigit() and text.isascii() and 1 <= int(text) <= 13:
        return RANKS[int(text) - 1]
    raise ValueError(f"bad card {s!r}; expected A, 2..10, J, Q, K or a number 1..13")


def card_value(card: str, rule: str) -> int:
    """Number a card stands for under `rule` (A = 1; J/Q/K = 10 under id, 11/12/13 under ood)."""
    check_rule(rule)
    index = _RANK_INDEX.get(card)
    if index is None:
        raise ValueError(f"bad card {card!r}; expected one of {' '.join(RANKS)}")
    value = index + 1
    return min(value, 10) if rule == "id" else value


def hand_numbers(cards: Iterable[str], rule: str) -> list[int]:
    """Numbers of a hand under `rule`, in the hand's order."""
    return [card_value(c, rule) for c in cards]


def hand_key(cards: Iterable[str]) -> tuple[str, ...]:
    """Order-free identity of a hand: its cards sorted by rank (used to keep sets disjoint)."""
    return tuple(sorted(cards, key=_RANK_INDEX.__getitem__))


def _draw_raw(rng: random.Random, rule: str) -> list[str]:
    if rule == "id":
        return [RANKS[rng.randrange(13)] for _ in range(HAND_SIZE)]
    # The paper's OOD generator: three uniform ranks and one uniform face card, shuffled.
    cards = [RANKS[rng.randrange(13)] for _ in range(HAND_SIZE - 1)] + [FACES[rng.randrange(3)]]
    rng.shuffle(cards)
    return cards


def draw_hand(rng: random.Random, rule: str) -> list[str]:
    """One solvable hand under `rule`; unsolvable draws are discarded and redrawn."""
    from rlheals.task.solver import is_solvable

    check_rule(rule)
    while True:
        cards = _draw_raw(rng, rule)
        if is_solvable(hand_numbers(cards, rule)):
            return cards


def make_hands(
    n: int,
    rule: str,
    seed: int,
    exclude: frozenset | set = frozenset(),
    unique: bool = False,
    reject: Callable[[list[str]], bool] | None = None,
) -> list[list[str]]:
    """`n` solvable hands from a generator seeded with `seed` (same seed, same hands).

    `exclude` holds `hand_key` tuples that must not be drawn (e.g. the evaluation hands,
    kept out of training); `reject(cards)` returning True discards a draw too (e.g. a
    hand whose numbers are reserved). With `unique`, no hand (as a multiset of cards)
    repeats; a request for more distinct hands than exist raises ValueError.
    """
    check_rule(rule)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    hands: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    misses = 0
    while len(hands) < n:
        cards = draw_hand(rng, rule)
        key = hand_key(cards)
        if key in exclude or (unique and key in seen) or (reject is not None and reject(cards)):
            misses += 1
            if misses > 20_000:  # in a row: the allowed pool is (nearly) used up
                raise ValueError(
                    f"cannot draw {n} {'distinct ' if unique else ''}hands under rule {rule!r} "
                    f"outside the {len(exclude)} excluded ones (got {len(hands)}); ask for fewer"
                )
            continue
        misses = 0
        seen.add(key)
        hands.append(cards)
    return hands
