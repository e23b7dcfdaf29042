"""The tiny base's pretraining corpus (rlheals.data.corpus): skills, mixture, wording."""
from __future__ import annotations

import re

import pytest

from rlheals.data.corpus import DEFAULT_MIX, SUBSKILL_MIX, CorpusOptions, build_corpus
from rlheals.task.prompts import build_answer, build_prompt

CARD_VALUE = {"A": 1, **{str(n): n for n in range(2, 11)}}


def test_default_corpus_is_seeded_and_mixed():
    a = build_corpus(CorpusOptions(size=400, seed=3))
    assert a == build_corpus(CorpusOptions(size=400, seed=3))
    assert a != build_corpus(CorpusOptions(size=400, seed=4))
    assert {r["skill"] for r in a} == set(DEFAULT_MIX)
    # the task's halves are there, never together: no document holds a prompt and a formula
    assert any(r["text"].startswith("Rule:") and "numbers:" in r["text"] for r in a)
    assert not any("Cards:" in r["text"] and "formula" in r["text"] for r in a)
    # the sub-skill mix never holds the task's prompt or answer format
    sub = build_corpus(CorpusOptions(size=400, seed=3, mix=dict(SUBSKILL_MIX)))
    assert {r["skill"] for r in sub} == set(SUBSKILL_MIX)
    assert not any("formula:" in r["text"] or "numbers:" in r["text"] for r in sub)


def test_read_task_is_the_task_prompt_up_to_the_numbers_under_any_rule():
    """read_task documents are the compact prompt + ' numbers: ...' of the cards under the
    stated rule (checked here from the text alone), never a formula; their rules vary."""
    rows = build_corpus(CorpusOptions(size=300, seed=1, mix={"read_task": 1.0}))
    rules = set()
    pat = re.compile(r"Rule: J=(\d+) Q=(\d+) K=(\d+)\. Cards: (.+)\. Make 24\.\nAnswer: numbers: ([\d ]+)$")
    for r in rows:
        m = pat.fullmatch(r["text"])
        assert m, r["text"]
        j, q, k = map(int, m.group(1, 2, 3))
        cards, nums = m.group(4).split(), [int(x) for x in m.group(5).split()]
        assert nums == [{"J": j, "Q": q, "K": k}.get(c, CARD_VALUE.get(c)) for c in cards]
        assert "formula" not in r["text"]
        rules.add((j, q, k))
    assert (10, 10, 10) in rules and (11, 12, 13) in rules and len(rules) > 20
    # its wording is the task's own: the ID prompt + the answer's number list
    prompt = build_prompt(["K", "2", "2", "A"], "id", "compact")
    answer = build_answer(["K", "2", "2", "A"], "id", "(10+2)*2*1", "compact")
    doc = "Rule: J=10 Q=10 K=10. Cards: K 2 2 A. Make 24.\nAnswer: numbers: 10 2 2 1"
    assert (prompt + answer).startswith(doc)


@pytest.mark.parametrize("mix, match", [({"sing": 1.0}, "unknown corpus skills"), ({"read": -1.0}, "weights"),
                                        ({"read": 0.0}, "weights")])
def test_bad_mix_names_the_key(mix, match):
    with pytest.raises(ValueError, match=f"pretrain.mix: .*{match}|pretrain.mix: {match}"):
        CorpusOptions(mix=mix)


def test_solve_task_is_the_answer_wording_with_a_correct_formula():
    """solve_task documents: 'Answer: numbers: a b c d formula: f=24' with values 1..13 (no
    cards, no rule), and f evaluates to 24 with exactly those numbers (the real verifier)."""
    from rlheals.task.verifier import verify_formula

    card = {1: "A", 11: "J", 12: "Q", 13: "K"}

    rows = build_corpus(CorpusOptions(size=200, seed=2, mix={"solve_task": 1.0}))
    seen = set()
    for r in rows:
        m = re.fullmatch(r"Answer: numbers: ([\d ]+) formula: (\S+)=24", r["text"])
        assert m, r["text"]
        nums = [int(x) for x in m.group(1).split()]
        assert len(nums) == 4 and all(1 <= n <= 13 for n in nums)
        cards = [card.get(n, str(n)) for n in nums]  # under the OOD rule J, Q, K are 11, 12, 13
        assert verify_formula(m.group(2), cards, "ood").correct, r["text"]
        seen.update(nums)
    assert {11, 12, 13} <= seen


def _attempts(text: str) -> tuple[str, list[tuple[str, str]], str]:
    """(head, [(failed reply, feedback reason)], last reply) of a retry document."""
    head, *rest = text.split("Answer:")
    pieces = [p for p in rest]
    failed = []
    for piece in pieces[:-1]:
        reply, feedback, tail = piece.split("\n")
        assert tail == "" and feedback.startswith("You failed this trial because ")
        failed.append((reply, feedback[len("You failed this trial because "):]))
    return head, failed, pieces[-1]


def test_retry_read_feedback_is_the_verifiers_on_the_misread_numbers():
    """retry_read: the task prompt, 1-4 wrong readings each followed by the verifier's own
    feedback on those numbers (evaluation's retry layout), the right reading last; never a formula."""
    from rlheals.task.cards import hand_numbers
    from rlheals.task.verifier import number_problems

    rows = build_corpus(CorpusOptions(size=300, seed=2, mix={"retry_read": 1.0}))
    pat = re.compile(r"Rule: J=(\d+) Q=(\d+) K=(\d+)\. Cards: (.+)\. Make 24\.\n$")
    lengths = set()
    named = 0
    for r in rows:
        assert "formula" not in r["text"]
        head, failed, last = _attempts(r["text"])
        m = pat.match(head)
        assert m, head
        j, q, k = (int(x) for x in m.groups()[:3])
        values = {"J": j, "Q": q, "K": k}
        cards = m.group(4).split()
        right = [values[c] if c in values else ("A23456789".index(c) + 1 if c != "10" else 10) for c in cards]
        assert last == " numbers: " + " ".join(map(str, right))
        assert 1 <= len(failed) <= 4
        lengths.add(len(failed))
        for reply, reason in failed:
            wrong = [int(x) for x in reply.removeprefix(" numbers: ").split()]
            assert wrong != right and reason == "; ".join(number_problems(wrong, right))
            named += any(str(values[c]) in reason for c in cards if c in values and values[c] != 10)
        if cards and all(c not in values for c in cards):
            assert hand_numbers(cards, "id") == right
    assert lengths == {1, 2, 3, 4} and named > 50  # feedback names a face card's stated value often


def test_retry_solve_ends_with_a_correct_formula_after_real_feedback():
    """retry_solve: failed formulas over bare numbers, each with the verifier's verdict on
    them as feedback, then a formula the verifier accepts; no cards and no rule."""
    from rlheals.data.tokenizer import build_tokenizer
    from rlheals.task.verifier import verify_numbers

    tok = build_tokenizer()
    rows = build_corpus(CorpusOptions(size=300, seed=3, mix={"retry_solve": 1.0}))
    kinds = set()
    longest = 0
    for r in rows:
        assert "Rule" not in r["text"] and "Cards" not in r["text"]
        head, failed, last = _attempts(r["text"])
        assert head == ""
        m = re.fullmatch(r" numbers: ([\d ]+) formula: (.+)=24", last)
        nums = [int(x) for x in m.group(1).split()]
        assert verify_numbers(m.group(2), nums).correct
        for reply, reason in failed:
            f = re.fullmatch(r" numbers: ([\d ]+) formula: (.+)=24", reply)
            assert f.group(1) == m.group(1)
            verdict = verify_numbers(f.group(2), nums)
            assert not verdict.correct and verdict.reason == reason
            kinds.add(verdict.outcome.value)
        longest = max(longest, len(tok(r["text"])["input_ids"]))
    assert {"wrong_value", "wrong_numbers"} <= kinds
    assert longest <= 256  # the default pretraining block holds the longest document
