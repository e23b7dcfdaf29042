"""How a reply reads the face cards: the graded OOD skill beside success.

Success at the floor (a tiny or weak model solves almost no OOD hand) says nothing about
whether SFT made the model stop reading the stated rule. Every answer format lists the
cards' numbers before the formula (`numbers: 13 2 2 1` compact, `"number": [13, 2, 2, 1]`
chat), so for each J, Q or K of the hand we can check which number the reply wrote for it:
the value the prompt's rule gives (11, 12, 13 under the OOD rule) or 10 (the ID rule's
value, the shortcut SFT teaches). Under the ID rule both are 10, so the measure only
separates the two on OOD hands.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Iterable

from rlheals.task.cards import FACES, HAND_SIZE, hand_numbers

_LIST = re.compile(r"""["']?\bnumbers?\b["']?[ \t]*[:=][ \t]*\[?([\d \t,'"]*)""", re.IGNORECASE)
_INT = re.compile(r"\d+")


@dataclass(frozen=True)
class Reading:
    """Face cards of one hand and how one reply wrote their numbers."""

    faces: int       # J, Q, K in the hand
    as_rule: int     # written with the value the stated rule gives
    as_ten: int      # written as 10
    listed: bool     # the reply listed one number per card

    def __add__(self, other: "Reading") -> "Reading":
        return Reading(self.faces + other.faces, self.as_rule + other.as_rule, self.as_ten + other.as_ten,
                       self.listed and other.listed)


def listed_numbers(reply: str, size: int = HAND_SIZE) -> list[int] | None:
    """The numbers a reply lists for the cards, in card order, or None if it lists no `size` of them."""
    text = str(reply)
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        try:
            obj = json.loads(text[start : end + 1])
        except (ValueError, RecursionError):
            obj = None
        if isinstance(obj, dict) and isinstance(obj.get("number"), list):
            vals = [str(v) for v in obj["number"]]
            if len(vals) == size and all(v.strip().isdigit() for v in vals):
                return [int(v) for v in vals]
    for m in _LIST.finditer(text):
        vals = [int(v) for v in _INT.findall(m.group(1))[:size]]
        if len(vals) == size:
            return vals
    return None


def read_faces(reply: str, cards: Iterable[str], rule: str) -> Reading:
    """How `reply` wrote the numbers of the hand's face cards under `rule`.

    >>> read_faces(" numbers: 13 2 2 1 formula: 13*2-2*1=24", ["K", "2", "2", "A"], "ood")
    Reading(faces=1, as_rule=1, as_ten=0, listed=True)
    >>> read_faces(" numbers: 10 2 2 1 formula: (10+2)*2*1=24", ["K", "2", "2", "A"], "ood")
    Reading(faces=1, as_rule=0, as_ten=1, listed=True)
    """
    cards = list(cards)
    want = hand_numbers(cards, rule)
    faces = [i for i, c in enumerate(cards) if c in FACES]
    got = listed_numbers(reply, len(cards))
    if got is None:
        return Reading(len(faces), 0, 0, False)
    return Reading(len(faces), sum(got[i] == want[i] for i in faces), sum(got[i] == 10 for i in faces), True)
