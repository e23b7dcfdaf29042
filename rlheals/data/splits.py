"""The prepared data sets: SFT examples, held-out SFT sets, RL prompts, validation and
evaluation sets, kept apart by the *problem* the model sees.

Every set is a list of JSON-ready records with an `id`, the hand (`cards`), its `rule`
and `numbers`, and the `prompt` in the configured style (a string for "compact", a
chat message list for "chat", i.e. TRL's conversational format). SFT, held-out and test
records add the `completion` (the solver-written answer) and its `formula`; validation
and evaluation records add a reference `solution` and `seen` (whether a training hand,
SFT or RL, has the same numbers).

**Problems, not cards.** Under the ID rule J, Q, K and 10 are all 10, so "K 2 2 A" and
"10 2 2 A" are the same problem with the same simplest answer. Sets are therefore kept
apart by the multiset of numbers under the set's rule (`problem`), not by cards:

- `val_*` (every choice the workflow makes: sft_best, rl_best, edit donors) and
  `sft_heldout_*` (the loss curves) share no problem with any SFT or RL hand;
- `val_id` shares no problem with `eval_id` either (a choice made on validation hands
  must not be a choice made on the reported problems);
- `eval_id` is drawn like the paper's (random solvable hands); a seeded fraction
  `data.eval_unseen` of its problems is kept out of training (unseen), the others may
  appear in SFT and RL, as the paper's ID hands did (its SFT data covered the hands it
  evaluated on), so ID success is reported on unseen and on seen problems apart;
- `sft_heldout_id` draws only problems reserved already (validation's and the unseen
  evaluation ones), so the loss curves cost SFT no further problems; its cards differ
  from the evaluation hands' (it may repeat a validation hand: neither set reports);
- `sft_test_id` is the paper's "test loss" set: random solvable ID hands drawn like the
  paper's test set, from the whole ID distribution, so most of its problems are in SFT
  (the paper's SFT data covered every solvable ID hand); nothing is kept out of SFT for
  it, while validation's problems stay out of it (the validation hands stay the only
  ones choices are made on) and so do the OOD sets' cards, as they do of training. Each
  record carries `in_sft` (an SFT hand has its numbers); `build_all` logs the share. Its
  loss picks finding 1's lowest-loss checkpoint (rlheals.report.scorecard), with
  `sft_heldout_id`'s (unseen problems only) the stricter one beside it;
- OOD hands always hold a face card worth 11-13, so no OOD problem can equal a training
  (ID) problem; their cards (as card multisets) are kept out of training too unless
  `exclude_ood_hands` is off, and the OOD sets are kept apart from each other by cards.

Only 566 of the 715 ID number multisets are solvable, so every reserved problem is one
SFT cannot teach; `build_all` logs how many distinct problems remain for SFT.

Each set draws from its own seed stream, derived from the master seed and the set's
name, so resizing one set leaves the hands of the others unchanged where possible.

SFT answers: `answer="simplest"` (default) uses `solver.best_solution`, one fixed
answer per problem, easy for a small model to learn; `answer="random"` picks one of the
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
SET_NAMES = (
    "sft_train", "sft_heldout_id", "sft_heldout_ood", "sft_test_id", "rl_prompts", "val_id", "val_ood", "eval_id",
    "eval_ood",
)
ANSWERS = ("simplest", "random")
Problem = tuple[int, ...]


def derive_seed(seed: int, name: str) -> int:
    """A seed for one named stream, fixed by the master seed (stable across Python runs)."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def problem(cards: Iterable[str], rule: str) -> Problem:
    """What the model is asked to solve: the hand's numbers under `rule`, sorted."""
    return tuple(sorted(hand_numbers(cards, rule)))


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


def _solved(name: str, hands: list[list[str]], rule: str, style: str) -> list[dict]:
    records = [_base(name, i, cards, rule, style) for i, cards in enumerate(hands)]
    for rec in records:
        rec["solution"] = best_solution(rec["numbers"])
    return records


def _avoiding(problems: Iterable[Problem], rule: str, cards: Iterable = ()):
    """A reject predicate: the hand's problem under `rule` is in `problems`, or its cards
    (as a card multiset) are in `cards`."""
    problems, cards = frozenset(problems), frozenset(cards)
    return lambda hand: problem(hand, rule) in problems or hand_key(hand) in cards


def eval_records(n: int, rule: str, seed: int, style: str) -> list[dict]:
    """`n` distinct evaluation hands under `rule` (random, as the paper drew them), with a
    reference solution each."""
    name = f"eval_{rule}"
    hands = make_hands(n, rule, derive_seed(seed, name), unique=True)
    return _solved(name, hands, rule, check_style(style))


def val_records(n: int, rule: str, seed: int, style: str, avoid: Iterable[Problem] = (), exclude: Iterable = ()) -> list[dict]:
    """`n` distinct validation hands under `rule`, none with a problem in `avoid` or cards
    in `exclude`; they decide every choice of the workflow and report nothing."""
    name = f"val_{rule}"
    hands = make_hands(n, rule, derive_seed(seed, name), unique=True, reject=_avoiding(avoid, rule, exclude))
    return _solved(name, hands, rule, check_style(style))


def heldout_records(
    n: int, rule: str, seed: int, style: str, exclude: Iterable = (), answer: str = "simplest",
    allow: Iterable[Problem] | None = None,
) -> list[dict]:
    """`n` distinct answered hands under `rule` for the SFT held-out loss (never trained on):
    no cards in `exclude` (card multisets); with `allow`, only hands of those problems."""
    name = f"sft_heldout_{rule}"
    allowed = None if allow is None else frozenset(allow)
    exclude = frozenset(exclude)

    def reject(hand: list[str]) -> bool:
        return hand_key(hand) in exclude or (allowed is not None and problem(hand, rule) not in allowed)

    hands = make_hands(n, rule, derive_seed(seed, name), unique=True, reject=reject)
    return _answered(name, hands, rule, check_style(style), answer, seed)


def paper_test_records(
    n: int, seed: int, style: str, exclude: Iterable = (), answer: str = "simplest", avoid: Iterable[Problem] = ()
) -> list[dict]:
    """`n` distinct answered ID hands for the paper's test loss: random solvable hands from the
    whole ID distribution, trained-on problems included (the paper's test hands were in its
    SFT data), so its loss is the one the paper reads; no problem in `avoid` (validation's)
    and no cards in `exclude` (the OOD sets' cards, which training keeps out too)."""
    name = "sft_test_id"
    hands = make_hands(n, "id", derive_seed(seed, name), unique=True, reject=_avoiding(avoid, "id", exclude))
    return _answered(name, hands, "id", check_style(style), answer, seed)


def sft_records(
    n: int, seed: int, style: str, exclude: Iterable = (), answer: str = "simplest", avoid: Iterable[Problem] = ()
) -> list[dict]:
    """`n` SFT examples under the ID rule (hands may repeat; no excluded cards, no problem in `avoid`)."""
    hands = make_hands(n, "id", derive_seed(seed, "sft_train"), reject=_avoiding(avoid, "id", exclude))
    return _answered("sft_train", hands, "id", check_style(style), answer, seed)


def rl_records(n: int, seed: int, style: str, exclude: Iterable = (), avoid: Iterable[Problem] = ()) -> list[dict]:
    """`n` RL prompts under the ID rule (hands may repeat; no excluded cards, no problem in `avoid`)."""
    hands = make_hands(n, "id", derive_seed(seed, "rl_prompts"), reject=_avoiding(avoid, "id", exclude))
    return [_base("rl_prompts", i, cards, "id", check_style(style)) for i, cards in enumerate(hands)]


def seen_share(records: list[dict]) -> float:
    """Share of `sft_test_id`'s hands whose problem an SFT hand has (its `in_sft`; nan if empty)."""
    return sum(r["in_sft"] for r in records) / len(records) if records else float("nan")


def unseen_eval_problems(records: list[dict], fraction: float, seed: int) -> set[Problem]:
    """The evaluation problems kept out of training: a seeded `fraction` of the distinct
    problems of `records` (rounded to the nearest count)."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"data.eval_unseen must be within [0, 1], got {fraction}")
    problems = sorted({problem(r["cards"], r["rule"]) for r in records})
    random.Random(derive_seed(seed, "eval_id:unseen")).shuffle(problems)
    return set(problems[: round(fraction * len(problems))])


def build_all(data: dict, seed: int, style: str) -> dict[str, list[dict]]:
    """All sets from the config's `data` section, kept apart as the module docstring says."""
    answer = data.get("sft_answer", "simplest")
    val_size = data.get("val_size", data["eval_size"])
    sets: dict[str, list[dict]] = {}
    for rule in ("id", "ood"):
        sets[f"eval_{rule}"] = eval_records(data["eval_size"], rule, seed, style)
    eval_problems = {problem(r["cards"], "id") for r in sets["eval_id"]}
    unseen = unseen_eval_problems(sets["eval_id"], data.get("eval_unseen", 0.5), seed)
    seen_eval = eval_problems - unseen
    cards = {name: {hand_key(r["cards"]) for r in recs} for name, recs in sets.items()}

    # Validation: its own problems (none of the evaluation's), cards apart from evaluation.
    sets["val_id"] = val_records(val_size, "id", seed, style, avoid=eval_problems)
    sets["val_ood"] = val_records(val_size, "ood", seed, style, exclude=cards["eval_ood"])
    # Held-out loss sets: only problems already reserved (validation's or the unseen
    # evaluation ones; they cost SFT nothing more), cards apart from evaluation; the OOD
    # one apart from validation's cards too (OOD problems are never trained anyway).
    cards["val_id"] = {hand_key(r["cards"]) for r in sets["val_id"]}
    cards["val_ood"] = {hand_key(r["cards"]) for r in sets["val_ood"]}
    reserved = unseen | {problem(r["cards"], "id") for r in sets["val_id"]}
    sets["sft_heldout_id"] = heldout_records(
        data["heldout_size"], "id", seed, style, cards["eval_id"], answer, allow=reserved)
    sets["sft_heldout_ood"] = heldout_records(
        data["heldout_size"], "ood", seed, style, cards["eval_ood"] | cards["val_ood"], answer)
    cards["sft_heldout_ood"] = {hand_key(r["cards"]) for r in sets["sft_heldout_ood"]}

    # Training (SFT, RL; ID rule): no reserved problem; OOD hands' cards stay out too
    # unless exclude_ood_hands is off (their ID numbers differ, but the cards are the same).
    keep_out = set()
    if data.get("exclude_ood_hands", True):
        keep_out = {k for name in ("eval_ood", "val_ood", "sft_heldout_ood") for k in cards[name]}
    sets["sft_train"] = sft_records(data["sft_size"], seed, style, keep_out, answer, avoid=reserved)
    sets["rl_prompts"] = rl_records(data["rl_size"], seed, style, keep_out, avoid=reserved)

    # The paper's test set: drawn from the whole ID distribution after the others (its own
    # seed stream, so it changes no other set), seen problems included; validation's
    # problems and the OOD sets' cards stay out, as they do of training.
    sft_problems = {problem(r["cards"], "id") for r in sets["sft_train"]}
    sets["sft_test_id"] = paper_test_records(
        data["heldout_size"], seed, style, keep_out, answer, avoid={problem(r["cards"], "id") for r in sets["val_id"]})
    for rec in sets["sft_test_id"]:
        rec["in_sft"] = problem(rec["cards"], "id") in sft_problems

    trained = {problem(r["cards"], "id") for name in ("sft_train", "rl_prompts") for r in sets[name]}
    for name in ("val_id", "val_ood", "eval_id", "eval_ood"):
        for rec in sets[name]:
            rec["seen"] = problem(rec["cards"], rec["rule"]) in trained
    for name in SET_NAMES:
        recs = sets[name]
        n_problems = len({problem(r["cards"], r["rule"]) for r in recs})
        extra = f", {sum(r['seen'] for r in recs)} on seen problems" if recs and "seen" in recs[0] else ""
        if recs and "in_sft" in recs[0]:
            extra = f", {sum(r['in_sft'] for r in recs)} on problems in sft_train"
        log.info("%s: %d records, %d distinct hands, %d distinct problems%s", name, len(recs),
                 len({hand_key(r["cards"]) for r in recs}), n_problems, extra)
    log.info("%d of the ID problems are reserved (never in SFT or RL); SFT covers %d distinct problems",
             len(reserved), len(sft_problems))
    log.info("sft_test_id (the paper's test loss): %.1f%% of its hands are on problems in sft_train "
             "(sft_heldout_id: 0%%; eval_id: %.1f%% seen in SFT or RL)", 100 * seen_share(sets["sft_test_id"]),
             100 * sum(r["seen"] for r in sets["eval_id"]) / max(1, len(sets["eval_id"])))
    return {name: sets[name] for name in SET_NAMES}


def write_all(paths: dict[str, str], data: dict, seed: int, style: str) -> None:
    """Build every set and write each to its JSONL path (atomically)."""
    from rlheals.atomic import write_jsonl

    missing = [n for n in SET_NAMES if n not in paths]
    if missing:
        raise ValueError(f"no output path for data set(s) {missing}; expected paths for {list(SET_NAMES)}")
    for name, records in build_all(data, seed, style).items():
        write_jsonl(paths[name], records)
