"""The exact solver against known hands, properties, and an independent RPN brute force."""
import itertools
import random
import re
from fractions import Fraction
from functools import lru_cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlheals.task.cards import RANKS, hand_numbers
from rlheals.task.solver import best_solution, is_solvable, solve
from rlheals.task.verifier import verify_formula

# ---------------------------------------------------------------- independent reference
# Postfix (RPN) shapes of four operands: 'n' pushes the next number, 'o' applies an operator.
SHAPES = ["nnonono", "nnonnoo", "nnnoono", "nnnonoo", "nnnnooo"]
PREC = {"+": 1, "-": 1, "*": 2, "/": 2}


_FLOAT_OPS = {"+": float.__add__, "-": float.__sub__, "*": float.__mul__, "/": float.__truediv__}


def _rpn_float(numbers, ops, shape):
    """Quick float value of a postfix expression (a filter; None on x/0)."""
    stack, ni, oi = [], iter(numbers), iter(ops)
    for step in shape:
        if step == "n":
            stack.append(float(next(ni)))
            continue
        b, a, op = stack.pop(), stack.pop(), next(oi)
        if op == "/" and b == 0:
            return None
        stack.append(_FLOAT_OPS[op](a, b))
    return stack[0]


def _rpn(numbers, ops, shape):
    """Exact value and minimal-bracket text of one postfix expression (None on x/0)."""
    stack, ni, oi = [], iter(numbers), iter(ops)
    for step in shape:
        if step == "n":
            n = next(ni)
            stack.append((Fraction(n), str(n), 3))
            continue
        (b, bt, bp), (a, at, ap) = stack.pop(), stack.pop()
        op = next(oi)
        if op == "/" and b == 0:
            return None
        value = {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else None}[op]
        at = f"({at})" if ap < PREC[op] else at
        bt = f"({bt})" if bp < PREC[op] or (bp == PREC[op] and op in "-/") else bt
        stack.append((value, at + op + bt, PREC[op]))
    return stack[0][:2]


@lru_cache(maxsize=None)
def brute_force(ms):
    """Every minimal-bracket formula over the sorted 4-tuple `ms` that equals 24 exactly."""
    found = set()
    for perm in set(itertools.permutations(ms)):
        for ops in itertools.product("+-*/", repeat=3):
            for shape in SHAPES:
                approx = _rpn_float(perm, ops, shape)
                if approx is None or abs(approx - 24) > 1e-6:
                    continue
                res = _rpn(perm, ops, shape)
                if res and res[0] == 24:
                    found.add(res[1])
    return frozenset(found)


def exact_eval(formula):
    """Independent evaluator for trusted test strings: Python arithmetic on Fractions."""
    return eval(re.sub(r"(\d+)", r"Fraction(\1)", formula), {"Fraction": Fraction, "__builtins__": {}})


def _check_against_brute_force(hands):
    for numbers in hands:
        ms = tuple(sorted(numbers))
        ref = brute_force(ms)
        assert is_solvable(numbers) == bool(ref), numbers
        assert set(solve(numbers)) == ref, numbers


# ---------------------------------------------------------------- known hands
def test_known_unsolvable_hands():
    assert solve([1, 1, 1, 1]) == [] and not is_solvable([1, 1, 1, 1])
    assert best_solution([1, 1, 1, 1]) is None


def test_3388_needs_fractions():
    assert solve([3, 3, 8, 8]) == ["8/(3-8/3)"]
    assert 8 / (3 - 8 / 3) != 24  # float arithmetic misses it; exact arithmetic does not
    assert exact_eval("8/(3-8/3)") == 24


def test_order_of_numbers_does_not_matter():
    assert solve([13, 2, 2, 1]) == solve([1, 2, 13, 2])


def test_solutions_are_distinct_and_sorted():
    sols = solve([1, 2, 3, 4])
    assert sols == sorted(set(sols)) and "1*2*3*4" in sols and "(1+2+3)*4" in sols


def test_best_solution_is_deterministic_and_simple():
    assert best_solution([10, 2, 2, 1]) == "(10+2)*2*1"
    assert best_solution([6, 6, 6, 6]) == "6+6+6+6"
    assert best_solution([3, 3, 8, 8]) == "8/(3-8/3)"
    assert best_solution([1, 2, 3, 4]) == best_solution([4, 3, 2, 1])


def test_other_targets_and_sizes():
    assert solve([5], 5) == ["5"] and solve([2, 3], 6) == ["2*3", "3*2"]
    assert is_solvable([1, 5, 5, 5], 24)  # (5-1/5)*5
    assert not is_solvable([2, 2], 5)


# ---------------------------------------------------------------- properties
@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, 13), min_size=4, max_size=4))
def test_every_solution_is_exactly_24_with_the_hands_numbers(numbers):
    for formula in solve(numbers):
        assert exact_eval(formula) == 24
        assert sorted(int(n) for n in re.findall(r"\d+", formula)) == sorted(numbers)
    assert is_solvable(numbers) == bool(solve(numbers))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(RANKS), min_size=4, max_size=4), st.sampled_from(["id", "ood"]))
def test_every_solution_passes_the_verifier(cards, rule):
    for formula in solve(hand_numbers(cards, rule))[:20]:
        assert verify_formula(formula, cards, rule).correct


# ---------------------------------------------------------------- brute force agreement
def _random_hands(n, rule, seed):
    rng = random.Random(seed)
    return [hand_numbers([rng.choice(RANKS) for _ in range(4)], rule) for _ in range(n)]


def test_solver_agrees_with_brute_force_on_random_hands():
    _check_against_brute_force(_random_hands(150, "id", 11) + _random_hands(150, "ood", 12))


@pytest.mark.slow
def test_solver_agrees_with_brute_force_on_thousands_of_hands():
    _check_against_brute_force(_random_hands(3000, "id", 21) + _random_hands(3000, "ood", 22))


@pytest.mark.slow
def test_solver_agrees_with_brute_force_on_every_multiset():
    _check_against_brute_force(list(itertools.combinations_with_replacement(range(1, 14), 4)))
