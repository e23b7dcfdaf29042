"""`rlheals` command line: solve hands and verify replies, for people and scripts.

    rlheals solve 3 3 8 8 --rule ood         one JSON object per hand
    rlheals solve - < hands.txt              one hand per line (cards or numbers)
    rlheals verify K 2 2 A --formula "(10+2)*2*1" --rule id
    echo '{"formula": "13*2-2"}' | rlheals verify K 2 2 A --rule ood

It imports only the task modules (no torch), so it answers at once. A bad card or
rule prints a message naming it and exits with status 2. Every --help names the page
of docs/ to read on (DOCS).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Iterable, TextIO

from rlheals.task.cards import RULES, hand_numbers, parse_card
from rlheals.task.solver import solve
from rlheals.task.verifier import verify, verify_formula


def _solve_hand(cards: list[str], rule: str, target: int) -> dict:
    numbers = hand_numbers(cards, rule)
    solutions = solve(numbers, target)
    return {"cards": cards, "rule": rule, "numbers": numbers, "solvable": bool(solutions), "solutions": solutions}


def _hand_lines(stream: TextIO) -> Iterable[tuple[int, list[str]]]:
    for lineno, line in enumerate(stream, 1):
        tokens = [t for t in re.split(r"[\s,]+", line.strip()) if t]
        if tokens:
            yield lineno, tokens


def cmd_solve(args: argparse.Namespace, out: TextIO) -> int:
    if args.cards == ["-"]:
        for lineno, tokens in _hand_lines(sys.stdin):
            try:
                cards = [parse_card(t) for t in tokens]
            except ValueError as exc:
                raise ValueError(f"stdin line {lineno}: {exc}") from exc
            out.write(json.dumps(_solve_hand(cards, args.rule, args.target)) + "\n")
        return 0
    if not args.cards:
        raise ValueError("no cards given; pass the cards (e.g. 3 3 8 8) or '-' to read hands from stdin")
    cards = [parse_card(t) for t in args.cards]
    out.write(json.dumps(_solve_hand(cards, args.rule, args.target)) + "\n")
    return 0


def cmd_verify(args: argparse.Namespace, out: TextIO) -> int:
    cards = [parse_card(t) for t in args.cards]
    if args.formula is not None:
        verdict = verify_formula(args.formula.split("=")[0].strip(), cards, args.rule, args.target)
    else:
        verdict = verify(sys.stdin.read(), cards, args.rule, args.target)
    d = verdict.to_dict()
    out.write(json.dumps({k: d[k] for k in ("outcome", "reward", "binary_reward", "formula", "reason")}) + "\n")
    return 0


#: the docs page each command's --help names (relative to the repository root)
DOCS = {
    None: "docs/task.md#the-command-line",
    "solve": "docs/task.md#the-command-line",
    "verify": "docs/task.md#verifier",
}


def _epilog(command: str | None) -> str:
    more = "" if command else " (the workflow itself: README.md)"
    return f"Read more: {DOCS[command]}{more}."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlheals", description="GeneralPoints (24 game) tools: solve hands, verify replies.",
                                     epilog=_epilog(None))
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--rule", choices=RULES, default="id", help="id: J, Q, K = 10; ood: J, Q, K = 11, 12, 13 (default id)")
    common.add_argument("--target", type=int, default=24, help="number to reach (default 24)")
    p = sub.add_parser("solve", parents=[common], help="list every solution of a hand (JSON per hand)",
                       description="List every solution of a hand, one JSON object per hand.", epilog=_epilog("solve"))
    p.add_argument("cards", nargs="*", help="cards A, 2..10, J, Q, K or numbers 1..13; '-' reads one hand per line from stdin")
    p.set_defaults(func=cmd_solve)
    p = sub.add_parser("verify", parents=[common], help="judge a formula or a reply (read from stdin) for a hand",
                       description="Judge a formula, or a model's reply read from stdin, for a hand: outcome, reward, reason.",
                       epilog=_epilog("verify"))
    p.add_argument("cards", nargs="+", help="the hand's cards")
    p.add_argument("--formula", help="the formula to check; without it the reply text is read from stdin")
    p.set_defaults(func=cmd_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args, sys.stdout)
    except ValueError as exc:
        print(f"rlheals {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
