"""Exact solver of the 24 game: every formula over a hand's numbers that reaches the target.

Arithmetic is exact (`Fraction`), so 8/(3-8/3) counts as 24. Formulas are written with
the fewest brackets that keep their meaning under the usual precedence and left-to-right
evaluation (a+b+c, not ((a+b)+c)); every order of the numbers and every bracketing is
covered, and identical strings are listed once.

Speed: the reachable values of every sub-multiset are computed once and cached
(`lru_cache` on sorted tuples), and formula strings are only built for the splits that
hit the target, so solving thousands of hands takes seconds.
"""
from __future__ import annotations

import re
from collections import Counter
from fractions import Fraction
from functools import lru_cache
from itertools import product
from typing import Iterable

# An expression: its exact value, its text and the precedence of its top operator
# (1 for + -, 2 for * /, 3 for a bare number).
_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}
_LEAF = 3


def _apply(op: str, a: Fraction, b: Fraction) -> Fraction | None:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    return a / b if b != 0 else None


def _render(op: str, left: tuple[str, int], right: tuple[str, int]) -> tuple[str, int]:
    """Join two sub-formulas with the fewest brackets that keep the tree's value."""
    prec = _PREC[op]
    ltext, lprec = left
    rtext, rprec = right
    if lprec < prec:
        ltext = f"({ltext})"
    if rprec < prec or (rprec == prec and op in "-/"):
        rtext = f"({rtext})"
    return f"{ltext}{op}{rtext}", prec


def _splits(ms: tuple[int, ...]) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Every ordered split of a multiset into two non-empty sub-multisets."""
    counts = sorted(Counter(ms).items())
    out = []
    for take in product(*(range(c + 1) for _, c in counts)):
        left = tuple(v for (v, _), k in zip(counts, take) for _ in range(k))
        if 0 < len(left) < len(ms):
            right = list(ms)
            for v in left:
                right.remove(v)
            out.append((left, tuple(right)))
    return out


@lru_cache(maxsize=None)
def _values(ms: tuple[int, ...]) -> frozenset[Fraction]:
    """Every value reachable from the multiset `ms` (sorted tuple) with + - * /."""
    if len(ms) == 1:
        return frozenset({Fraction(ms[0])})
    out: set[Fraction] = set()
    for left, right in _splits(ms):
        for a in _values(left):
            for b in _values(right):
                for op in "+-*/":
                    v = _apply(op, a, b)
                    if v is not None:
                        out.add(v)
    return frozenset(out)


@lru_cache(maxsize=None)
def _formulas(ms: tuple[int, ...], target: Fraction) -> tuple[tuple[str, int], ...]:
    """Every formula (text, precedence) over the multiset `ms` whose value is `target`."""
    if len(ms) == 1:
        return ((str(ms[0]), _LEAF),) if ms[0] == target else ()
    out: set[tuple[str, int]] = set()
    for left, right in _splits(ms):
        rvals = _values(right)
        for a in _values(left):
            for op in "+-*/":
                b = _needed(op, a, target)
                if b is None or b not in rvals:
                    continue
                for lf in _formulas(left, a):
                    for rf in _formulas(right, b):
                        out.add(_render(op, lf, rf))
    return tuple(sorted(out))


def _needed(op: str, a: Fraction, target: Fraction) -> Fraction | None:
    """The right operand b with `a op b == target`, or None if there is none."""
    if op == "+":
        return target - a
    if op == "-":
        return a - target
    if op == "*":
        return target / a if a != 0 else None
    return a / target if target != 0 and a != 0 else None


def _key(numbers: Iterable[int]) -> tuple[int, ...]:
    ms = tuple(sorted(int(n) for n in numbers))
    if not ms:
        raise ValueError("a hand needs at least one number")
    return ms


def solve(numbers: Iterable[int], target: int = 24) -> list[str]:
    """Every distinct formula that uses each number once and equals `target` exactly (sorted)."""
    return list(f for f, _ in _formulas(_key(numbers), Fraction(target)))


def is_solvable(numbers: Iterable[int], target: int = 24) -> bool:
    """True when some formula over `numbers` equals `target` exactly."""
    return Fraction(target) in _values(_key(numbers))


def simplicity(formula: str) -> tuple:
    """Sort key of 'simplest first': fewer brackets, divisions and subtractions, shorter,
    then larger numbers first (10+2)*2*1 before (1*10+2)*2, then the text itself."""
    numbers = tuple(-int(n) for n in re.findall(r"[0-9]+", formula))
    return (formula.count("("), formula.count("/"), formula.count("-"), len(formula), numbers, formula)


def best_solution(numbers: Iterable[int], target: int = 24) -> str | None:
    """The canonical (simplest) solution used as the SFT answer, or None if unsolvable."""
    sols = solve(numbers, target)
    return min(sols, key=simplicity) if sols else None
