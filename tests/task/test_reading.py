"""The graded OOD skill: which number a reply wrote for each face card."""
import json

import pytest

from rlheals.task.prompts import build_answer
from rlheals.task.reading import Reading, listed_numbers, read_faces

HAND = ["K", "2", "Q", "A"]  # OOD values 13 2 12 1, ID values 10 2 10 1


@pytest.mark.parametrize("style", ["compact", "chat"])
def test_a_perfect_answer_reads_every_face_card_by_the_rule(style):
    for rule, formula in (("ood", "13+12-2+1"), ("id", "10+10+2*2")):
        ans = build_answer(HAND, rule, formula, style)
        text = ans if isinstance(ans, str) else ans[0]["content"]
        r = read_faces(text, HAND, rule)
        assert r == Reading(faces=2, as_rule=2, as_ten=2 if rule == "id" else 0, listed=True)


@pytest.mark.parametrize("reply, expect", [
    (" numbers: 10 2 10 1 formula: 10+10+2*2", Reading(2, 0, 2, True)),          # the ID shortcut
    (" numbers: 13 2 10 1 formula: 13+10+2-1", Reading(2, 1, 1, True)),          # half and half
    (" numbers: 11 2 13 1 formula: 11+13", Reading(2, 0, 0, True)),              # mixed up K and Q
    ('{"cards": ["K", "2", "Q", "A"], "number": ["13", "2", "12", "1"], "formula": "x"}', Reading(2, 2, 0, True)),
    ("{\n  \"cards\": ['K', '2', 'Q', 'A'],\n  \"number\": [13, 2, 12, 1],\n}", Reading(2, 2, 0, True)),  # pseudo-JSON
    (" formula: 13+12-2+1", Reading(2, 0, 0, False)),                            # no list: neither
    (" numbers: 13 2 formula: 13*2", Reading(2, 0, 0, False)),                    # too short a list
    ("", Reading(2, 0, 0, False)),
])
def test_reading_of_replies(reply, expect):
    assert read_faces(reply, HAND, "ood") == expect


def test_numbers_are_positional_and_a_hand_without_faces_counts_nothing():
    assert listed_numbers(json.dumps({"number": [1, 2, 3, 4]})) == [1, 2, 3, 4]
    assert read_faces(" numbers: 3 4 5 6", ["3", "4", "5", "6"], "ood") == Reading(0, 0, 0, True)
    # positions matter: 13 written for the 2, 2 for the K is not reading the K right
    assert read_faces(" numbers: 2 13 12 1", HAND, "ood").as_rule == 1


def test_docstring_examples():
    import doctest

    import rlheals.task.reading as mod
    assert doctest.testmod(mod).failed == 0
