"""The pretraining corpus of the tiny base model: the task's sub-skills, not the task.

A from-scratch model has nothing to forget. To make SFT's forgetting measurable, the base
is pretrained on the skills the OOD task leans on, each in its own wording:

* ``solve``: bare numbers 1..13 to a formula that makes 24 (several phrasings);
* ``read``: card reading under a rule stated in the text (A=1, 2..10, J/Q/K as stated);
* ``arith``: single arithmetic facts over card values (a op b = c);
* ``compose``: a stated rule + cards -> their numbers -> a formula, worded unlike the
  task's prompt and answer, so the base can solve OOD hands but not in the SFT format;
* ``read_task`` (off by default, `pretrain.mix`): card reading in the compact task
  prompt's own wording under any stated rule, up to the numbers and never the formula,
  e.g. ``Rule: J=7 Q=12 K=3. Cards: K 2 Q A. Make 24.\nAnswer: numbers: 3 2 12 1``. A
  pretrained chat model reads the rule stated in its prompt; this gives the tiny base
  that habit in the very place SFT later trains the ID rule only, so SFT can wear it down
  (the formula is still learned in SFT, so the base does not solve the task zero-shot);
* ``solve_task`` (off by default): bare numbers 1..13 to a formula in the answer's own
  wording, ``Answer: numbers: 11 2 2 1 formula: 11*2+2*1=24`` (no cards, no rule): the
  solving half of the answer, over the numbers SFT never shows (11..13) as well.

Face-card rules: 25% the ID rule (10, 10, 10), 25% the OOD rule (11, 12, 13) and 50%
random values 1..13 per face card, so "copy the stated rule" is a skill of its own that
SFT (which only ever sees the ID rule) can wear down. Hands are solvable under their
rule. Everything is drawn from one seeded generator: same seed, same corpus.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from rlheals.task.cards import FACES, RANKS
from rlheals.task.solver import is_solvable, solve

#: Skills and their share of the corpus (the default config's `pretrain.mix`): both halves
#: of the task in the task's wording (read_task, solve_task), never together, beside the
#: sub-skills in their own wording.
DEFAULT_MIX = {"solve": 0.2, "read": 0.1, "arith": 0.1, "compose": 0.1, "read_task": 0.25, "solve_task": 0.25,
               "retry_read": 0.1, "retry_solve": 0.1}
#: The same without the retry documents (the feedback ablation): the base has never read feedback.
NO_RETRY_MIX = {k: v for k, v in DEFAULT_MIX.items() if not k.startswith("retry_")}
#: The sub-skills in their own wording only (earlier default): SFT's format is new to the
#: base, and SFT teaches the tiny model to write 10 for every face card.
SUBSKILL_MIX = {"solve": 0.35, "read": 0.3, "arith": 0.15, "compose": 0.2}


@dataclass
class CorpusOptions:
    """Size, seed and skill mixture of the corpus."""

    size: int = 20000
    seed: int = 0
    mix: dict = field(default_factory=lambda: dict(DEFAULT_MIX))

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"corpus size must be >= 1, got {self.size}")
        unknown = set(self.mix) - set(SKILLS)
        if unknown:
            raise ValueError(f"pretrain.mix: unknown corpus skills {sorted(unknown)}; expected some of {sorted(SKILLS)}")
        bad = {k: v for k, v in self.mix.items() if not isinstance(v, (int, float)) or v < 0}
        if bad or not any(v > 0 for v in self.mix.values()):
            raise ValueError(f"pretrain.mix: weights must be >= 0 and not all 0, got {self.mix}")


def draw_rule(rng: random.Random) -> dict[str, int]:
    """Face-card values: ID rule, OOD rule, or random values 1..13."""
    u = rng.random()
    if u < 0.25:
        return {"J": 10, "Q": 10, "K": 10}
    if u < 0.5:
        return {"J": 11, "Q": 12, "K": 13}
    return {f: rng.randint(1, 13) for f in FACES}


def value(card: str, rule: dict[str, int]) -> int:
    return rule[card] if card in rule else RANKS.index(card) + 1


def state_rule(rng: random.Random, rule: dict[str, int]) -> str:
    """The rule in one of several wordings."""
    j, q, k = rule["J"], rule["Q"], rule["K"]
    forms = [
        f"J is {j} , Q is {q} , K is {k} .",
        f"J = {j}, Q = {q}, K = {k}.",
        f"Rule: J={j} Q={q} K={k}.",
        f"Rule: J counts as {j}, Q counts as {q}, K counts as {k}.",
        f"In this game J, Q and K count as {j}, {q} and {k}.",
    ]
    if j == q == k:
        forms.append(f"J, Q and K count as {j}.")
    return rng.choice(forms)


def solvable_cards(rng: random.Random, rule: dict[str, int]) -> list[str]:
    """Four cards whose values under `rule` can make 24."""
    while True:
        cards = [RANKS[rng.randrange(13)] for _ in range(4)]
        if rng.random() < 0.5:  # half the hands hold a face card, as OOD hands do
            cards[rng.randrange(4)] = rng.choice(FACES)
        if is_solvable([value(c, rule) for c in cards]):
            return cards


def solvable_numbers(rng: random.Random) -> list[int]:
    while True:
        nums = [rng.randint(1, 13) for _ in range(4)]
        if is_solvable(nums):
            return nums


def _join(xs) -> str:
    return " ".join(str(x) for x in xs)


def skill_solve(rng: random.Random) -> str:
    nums = solvable_numbers(rng)
    f = rng.choice(solve(nums))
    return rng.choice(
        [
            f"numbers {_join(nums)} make 24 : {f} = 24",
            f"Make 24 with {_join(nums)} . {f} = 24",
            f"{_join(nums)} -> {f} = 24",
            f"Use {_join(nums)} once each: {f} = 24",
        ]
    )


def _reading_hand(rng: random.Random) -> tuple[dict[str, int], list[str], list[int]]:
    """A rule, four cards (60% with a face card, solvable or not) and their numbers under it."""
    rule = draw_rule(rng)
    cards = [RANKS[rng.randrange(13)] for _ in range(4)]
    if rng.random() < 0.6:
        cards[rng.randrange(4)] = rng.choice(FACES)
    return rule, cards, [value(c, rule) for c in cards]


def skill_read(rng: random.Random) -> str:
    rule, cards, nums = _reading_hand(rng)
    return rng.choice(
        [
            f"{state_rule(rng, rule)} Cards {_join(cards)} are numbers {_join(nums)}",
            f"{state_rule(rng, rule)} Hand : {_join(cards)} | values {_join(nums)}",
            f"With {_join(cards)} and {state_rule(rng, rule)} we have {_join(nums)}",
        ]
    )


def skill_arith(rng: random.Random) -> str:
    a, b = rng.randint(1, 13), rng.randint(1, 13)
    op = rng.choice("+-*/")
    if op == "/":
        a = a * b  # exact division only
    c = {"+": a + b, "-": a - b, "*": a * b, "/": a // b}[op]
    return f"{a} {op} {b} = {c}"


def skill_read_task(rng: random.Random) -> str:
    rule, cards, nums = _reading_hand(rng)
    return (f"Rule: J={rule['J']} Q={rule['Q']} K={rule['K']}. Cards: {_join(cards)}. Make 24.\n"
            f"Answer: numbers: {_join(nums)}")


def skill_solve_task(rng: random.Random) -> str:
    nums = solvable_numbers(rng)
    return f"Answer: numbers: {_join(nums)} formula: {rng.choice(solve(nums))}=24"


def skill_compose(rng: random.Random) -> str:
    rule = draw_rule(rng)
    cards = solvable_cards(rng, rule)
    nums = [value(c, rule) for c in cards]
    f = rng.choice(solve(nums))
    return rng.choice(
        [
            f"{state_rule(rng, rule)} Hand : {_join(cards)} | values {_join(nums)} | {f} = 24",
            f"{state_rule(rng, rule)} With {_join(cards)} we have {_join(nums)} so {f} = 24",
        ]
    )


# ---------------------------------------------------------------- retry after feedback
#: Failed attempts before the corrected one in a retry document: 1 to 4, fewer more often,
#: so the longest documents are as long as a 5-attempt episode (about 220 tokens).
RETRY_FAILURES = (1, 2, 3, 4)
RETRY_FAILURE_WEIGHTS = (0.45, 0.25, 0.18, 0.12)


def feedback_line(reason: str) -> str:
    """The verifier's feedback exactly as an episode shows it after a failed attempt."""
    from rlheals.task.prompts import FEEDBACK

    return FEEDBACK.format(reason=reason)


def retry_text(first: str, failed: list[tuple[str, str]], correct: str) -> str:
    """`first` (the text up to the first attempt's "Answer:"), then each failed attempt with its
    feedback and a new "Answer:", then the corrected attempt: the layout of
    `prompts.retry_prompt`, so a document reads as an episode's context does."""
    text = first
    for reply, reason in failed:
        text += f"{reply}\n{feedback_line(reason)}\nAnswer:"
    return text + correct


def _misread(rng: random.Random, cards: list[str], rule: dict[str, int], nums: list[int]) -> list[int]:
    """A wrong reading of `cards`: face cards as 10 (the ID rule's habit, where the stated
    rule says otherwise), or one card's number replaced by another value."""
    faces = [i for i, c in enumerate(cards) if c in FACES and rule[c] != 10]
    wrong = list(nums)
    if faces and rng.random() < 0.7:
        for i in faces:
            wrong[i] = 10
        return wrong
    i = rng.randrange(4)
    wrong[i] = rng.choice([v for v in range(1, 14) if v != nums[i]])
    return wrong


def skill_retry_read(rng: random.Random) -> str:
    """Card reading in the task prompt's wording (as read_task), with wrong readings, the
    verifier's feedback on them and the right reading last: the feedback names the values the
    cards have ("you did not use all the cards' numbers: [13] unused"), so reading a value off
    the feedback is a skill of its own. Never a formula: the solving half stays apart."""
    from rlheals.task.verifier import number_problems

    rule, cards, nums = _reading_hand(rng)
    first = f"Rule: J={rule['J']} Q={rule['Q']} K={rule['K']}. Cards: {_join(cards)}. Make 24.\nAnswer:"
    failed = []
    for _ in range(rng.choices(RETRY_FAILURES, RETRY_FAILURE_WEIGHTS)[0]):
        wrong = _misread(rng, cards, rule, nums)
        failed.append((f" numbers: {_join(wrong)}", "; ".join(number_problems(wrong, nums))))
    return retry_text(first, failed, f" numbers: {_join(nums)}")


def _wrong_formula(rng: random.Random, nums: list[int]) -> str:
    """A formula that fails for `nums` the ways a model's does: a right formula for the hand
    with a face value written as 10 (or another number), a number left out or doubled, or
    the right numbers with the wrong value."""
    for _ in range(100):
        kind = rng.random()
        if kind < 0.5:  # one number misread: a solution for the misread numbers
            i = rng.randrange(4)
            wrong = list(nums)
            wrong[i] = 10 if nums[i] != 10 and rng.random() < 0.6 else rng.choice([v for v in range(1, 14) if v != nums[i]])
            sols = solve(wrong)
            if sols:
                return rng.choice(sols)
        elif kind < 0.75:  # the right numbers, the wrong value: one operator changed
            f = rng.choice(solve(nums))
            ops = [j for j, ch in enumerate(f) if ch in "+-*/"]
            j = rng.choice(ops)
            g = f[:j] + rng.choice([o for o in "+-*/" if o != f[j]]) + f[j + 1 :]
            from rlheals.task.verifier import verify_numbers

            if verify_numbers(g, nums).outcome.value == "wrong_value":
                return g
        else:  # a number left out: a solution over three of them, or none
            drop = rng.randrange(4)
            rest = [n for k, n in enumerate(nums) if k != drop]
            a, b, c = rest
            return rng.choice([f"{a}*{b}+{c}", f"({a}+{b})*{c}", f"{a}*{b}*{c}", f"{a}+{b}+{c}"])
    return "+".join(str(n) for n in nums[:3])


def skill_retry_solve(rng: random.Random) -> str:
    """Bare numbers 1..13 to a formula in the answer's wording (as solve_task), with failed
    formulas, the verifier's feedback on each, and a correct formula last: acting on "you used
    invalid numbers: [10]; ... [13] unused" or "evaluates to 23 instead of 24" is learned here,
    over the numbers SFT never shows as well. No cards and no rule: the reading half stays apart."""
    from rlheals.task.verifier import verify_numbers

    nums = solvable_numbers(rng)
    head = f"numbers: {_join(nums)} formula:"
    failed = []
    for _ in range(rng.choices(RETRY_FAILURES, RETRY_FAILURE_WEIGHTS)[0]):
        f = _wrong_formula(rng, nums)
        verdict = verify_numbers(f, nums)
        if verdict.correct:
            continue
        failed.append((f" {head} {f}=24", verdict.reason))
    return retry_text("Answer:", failed, f" {head} {rng.choice(solve(nums))}=24")


SKILLS = {"solve": skill_solve, "read": skill_read, "arith": skill_arith, "compose": skill_compose,
          "read_task": skill_read_task, "solve_task": skill_solve_task,
          "retry_read": skill_retry_read, "retry_solve": skill_retry_solve}


def build_corpus(opts: CorpusOptions) -> list[dict]:
    """`opts.size` records {id, skill, text}, drawn with `opts.seed`."""
    rng = random.Random(opts.seed)
    names = list(opts.mix)
    weights = [opts.mix[n] for n in names]
    rows = []
    for i in range(opts.size):
        skill = rng.choices(names, weights)[0]
        rows.append({"id": i, "skill": skill, "text": SKILLS[skill](rng)})
    return rows
