"""Cards, rules and the seeded hand generators."""
import random

import pytest

from rlheals.task.cards import FACES, RANKS, card_value, draw_hand, hand_key, hand_numbers, make_hands, parse_card
from rlheals.task.solver import is_solvable


@pytest.mark.parametrize(
    "text, card",
    [("A", "A"), ("a", "A"), ("1", "A"), ("2", "2"), ("10", "10"), ("j", "J"), ("Q", "Q"), ("k", "K"),
     ("11", "J"), ("12", "Q"), ("13", "K"), (" 7 ", "7"), (5, "5")],
)
def test_parse_card_accepts_ranks_and_numbers(text, card):
    assert parse_card(text) == card


@pytest.mark.parametrize("text", ["0", "14", "X", "", "1.5", "-3", "T", "٣", "AA"])
def test_parse_card_rejects_bad_cards(text):
    with pytest.raises(ValueError, match="bad card"):
        parse_card(text)


def test_card_values_under_both_rules():
    assert [card_value(c, "id") for c in RANKS] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 10, 10]
    assert [card_value(c, "ood") for c in RANKS] == list(range(1, 14))
    assert hand_numbers(["K", "2", "2", "A"], "id") == [10, 2, 2, 1]
    assert hand_numbers(["K", "2", "2", "A"], "ood") == [13, 2, 2, 1]
    with pytest.raises(ValueError, match="unknown rule"):
        card_value("K", "face10")


def test_id_hands_are_solvable_and_cover_all_ranks():
    rng = random.Random(3)
    hands = [draw_hand(rng, "id") for _ in range(400)]
    assert all(len(h) == 4 and is_solvable(hand_numbers(h, "id")) for h in hands)
    assert {c for h in hands for c in h} == set(RANKS)
    assert any(not set(h) & set(FACES) for h in hands)  # ID hands need no face card


def test_ood_hands_hold_a_face_card_and_are_solvable_under_ood():
    rng = random.Random(4)
    hands = [draw_hand(rng, "ood") for _ in range(400)]
    assert all(set(h) & set(FACES) for h in hands)
    assert all(is_solvable(hand_numbers(h, "ood")) for h in hands)
    # the face card is shuffled in, not always last
    assert len({next(i for i, c in enumerate(h) if c in FACES) for h in hands}) == 4


def test_make_hands_is_deterministic_for_a_seed():
    assert make_hands(50, "ood", seed=7) == make_hands(50, "ood", seed=7)
    assert make_hands(50, "ood", seed=7) != make_hands(50, "ood", seed=8)


def test_make_hands_respects_exclude_and_unique():
    first = make_hands(100, "id", seed=1, unique=True)
    keys = {hand_key(h) for h in first}
    assert len(keys) == 100
    others = make_hands(300, "id", seed=1, exclude=frozenset(keys))
    assert not {hand_key(h) for h in others} & keys


def test_make_hands_reports_impossible_requests():
    with pytest.raises(ValueError, match="distinct"):
        make_hands(2000, "id", seed=0, unique=True)  # only 1,236 solvable ID card multisets


def test_hand_key_ignores_order():
    assert hand_key(["K", "2", "10", "A"]) == hand_key(["A", "10", "K", "2"]) == ("A", "2", "10", "K")
