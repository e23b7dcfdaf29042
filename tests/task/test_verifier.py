"""The verifier on a table of replies: every outcome, every reward, every trick."""
import builtins
import json
import time

import pytest

from rlheals.task.verifier import (
    Outcome,
    evaluate,
    extract_formula,
    make_reward_fn,
    reward,
    verify,
    verify_formula,
)

KING = ["K", "2", "2", "A"]  # id: 10 2 2 1 ; ood: 13 2 2 1
EIGHTS = ["3", "3", "8", "8"]
PAPER_REPLY = """{
  "cards": ['K', '2', '2', 'A'],
  "number": [10, 2, 2, 1],
  "formula": "(10+2)*2*1=24",
}"""

# (reply, cards, rule, outcome, paper reward)
TABLE = [
    # correct, in every reply format
    ('{"cards": ["K", "2", "2", "A"], "number": [10, 2, 2, 1], "formula": "(10+2)*2*1=24"}', KING, "id", "correct", 5),
    (PAPER_REPLY, KING, "id", "correct", 5),  # the paper's pseudo-JSON: regex fallback
    ("```json\n{\"formula\": \"(10 + 2) * 2 * 1 = 24\"}\n```", KING, "id", "correct", 5),
    (" numbers: 10 2 2 1 formula: (10+2)*2*1=24", KING, "id", "correct", 5),  # compact answer
    ("formula (10+2)*2*1", KING, "id", "correct", 5),
    ("Formula: 13*2-2*1 = 24\nRule: junk after the line", KING, "ood", "correct", 5),
    ('"formula": "8/(3-8/3)"', EIGHTS, "id", "correct", 5),  # exact, though float gives 23.999...
    ("formula: 010+2+2+10", ["10", "2", "2", "10"], "id", "correct", 5),
    # partial: unfinished, right numbers, a correct start
    ('"formula": "8/(3-8/3', EIGHTS, "id", "partial", 1),  # truncated reply, proper prefix
    ("formula: (10+2)*(2*1", KING, "id", "partial", 1),  # correct once its bracket is closed
    # wrong value
    ("formula: 10+2+2+1", KING, "id", "wrong_value", -1),
    ("formula: (10+2)*2*1+", KING, "id", "wrong_value", -1),  # unfinished, not a correct start
    ("formula: (10+2)*(2-1", KING, "id", "wrong_value", -1),
    # wrong numbers: -2 per problem, accumulated
    ("formula: (10+2)*2", KING, "id", "wrong_numbers", -2),  # a card unused
    ("formula: 10*2+2+1+1", KING, "id", "wrong_numbers", -2),  # a number used too often
    ("formula: 13*2-2*1", KING, "id", "wrong_numbers", -4),  # invalid 13 and 10 unused
    ("formula: (10+2)*2*1", KING, "ood", "wrong_numbers", -4),  # ID values under the OOD rule
    ("formula: 8+8+8", EIGHTS, "id", "wrong_numbers", -4),
    ("formula: 24=(10+2)*2*1", KING, "id", "wrong_numbers", -4),  # everything from '=' on is dropped
    ("formula: " + "9" * 150, KING, "id", "wrong_numbers", -4),  # huge number, still exact
    # illegal formulas: -3 per syntax problem, number problems added
    ("formula: 10**2+2+1", KING, "id", "illegal_formula", -3),
    ("formula: -10+2*2*1", KING, "id", "illegal_formula", -3),  # no unary minus
    ("formula: 10 2 2 1", KING, "id", "illegal_formula", -9),
    ("formula: 10 2 2", KING, "id", "illegal_formula", -8),  # two syntax (-6) + unused 1 (-2)
    ("formula: (10+2)*2*1)", KING, "id", "illegal_formula", -3),
    ("formula: (10+2)2*1", KING, "id", "illegal_formula", -3),
    ("formula: 10*()2+2+1", KING, "id", "illegal_formula", -6),
    ("formula: 10/(2-2)*1", KING, "id", "illegal_formula", -3),  # division by zero
    ("formula: 10x2+2+1", KING, "id", "illegal_formula", -3),  # names / letters
    ("formula: 10^2+2+1", KING, "id", "illegal_formula", -3),
    ("formula: 10.0*2+2+2", KING, "id", "illegal_formula", -3),
    ("formula: (10+2)×2×1", KING, "id", "illegal_formula", -3),
    ("formula: ١٠+2*2*1", KING, "id", "illegal_formula", -3),  # non-ASCII digits
    ('{"formula": "__import__(\'os\').system(\'touch /tmp/pwned\')"}', KING, "id", "illegal_formula", -3),
    ('{"formula": "eval(\'(10+2)*2*1\')"}', KING, "id", "illegal_formula", -3),
    ("formula: " + "1+" * 5000 + "1", KING, "id", "illegal_formula", -3),  # length cap
    # replies written the way chat models write: the word "formula" in prose before the label
    ("Here is a formula that evaluates to 24:\n**Formula**: (10+2)*2*1 = 24", KING, "id", "correct", 5),
    ("Sure! A formula that works is below.\n\n**Formula:** `(10 + 2) * 2 * 1 = 24`", KING, "id", "correct", 5),
    ("To find a formula, I combine the numbers.\nFormula: (10+2)*2*1", KING, "id", "correct", 5),
    ("The formula uses 10, 2, 2 and 1.\n- formula: $(10+2)*2*1$", KING, "id", "correct", 5),
    # a plain statement is read as the formula it states; the formula itself stays strict
    ("I think the formula is (10+2)*2*1.", KING, "id", "correct", 5),
    ("The formula would be (10+2)*2*1, which makes 24.", KING, "id", "correct", 5),
    ("Here is a formula that works: formula: (10+2)*2*1", KING, "id", "correct", 5),
    ("I think the formula is 10*2+2+1.", KING, "id", "wrong_value", -1),
    ("I think the formula is 10*2+2+2.5.", KING, "id", "illegal_formula", -3),  # a decimal point is not prose
    ("The formula is (10+2)*2*1 so it works", KING, "id", "illegal_formula", -3),  # no sentence end: kept
    ("Let me think about a formula step by step.", KING, "id", "illegal_formula", -3),  # prose only: graded, not parsed as a hit
    # no formula at all
    ("I think the answer is 24.", KING, "id", "format_error", -3),
    ('{"formula": ""}', KING, "id", "format_error", -3),
    ("", KING, "id", "format_error", -3),
    ("x" * 1_000_000, KING, "id", "format_error", -3),  # huge reply
]


@pytest.mark.parametrize("reply, cards, rule, outcome, paper", TABLE)
def test_reply_table(reply, cards, rule, outcome, paper):
    v = verify(reply, cards, rule)
    assert v.outcome == Outcome(outcome), v
    assert v.reward == paper and reward(v, "paper") == paper
    assert v.binary_reward == reward(v, "binary") == (1.0 if outcome == "correct" else 0.0)
    assert v.reason


def test_table_covers_every_outcome():
    assert {row[3] for row in TABLE} == {o.value for o in Outcome}


def test_verifier_never_calls_eval_or_exec(monkeypatch, tmp_path):
    def forbidden(*args, **kwargs):
        raise AssertionError("eval/exec called")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    for reply, cards, rule, outcome, _ in TABLE:
        assert verify(reply, cards, rule).outcome == Outcome(outcome)


def test_huge_inputs_are_fast():
    start = time.perf_counter()
    verify('"formula": "' * 50_000, KING, "id")
    verify("(" * 100_000, KING, "id")
    verify("formula: " + "(" * 99 + "1" + ")" * 99, KING, "id")
    verify("{" * 100_000 + "}" * 100_000, KING, "id")
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize(
    "reply, formula",
    [
        ('{"formula": "1+2=3"}', "1+2"),
        ('text before {"cards": [], "formula": "4*6"} text after', "4*6"),
        ('formula: 1+1\n{"formula": "(10+2)*2*1"}', "(10+2)*2*1"),  # JSON wins over the regex
        ("'formula': '3*8'", "3*8"),
        ('"formula": "3*8", "formula": "1+1"', "3*8"),  # the first match
        ('{"formula": 24}', None),
        ("numbers: 1 2 3 4 formula:   4*3*2*1 =24 ", "4*3*2*1"),
        ("nothing here", None),
    ],
)
def test_extract_formula(reply, formula):
    got = extract_formula(reply)
    if formula is None:
        assert got is None or verify(reply, KING, "id").outcome in (Outcome.FORMAT_ERROR, Outcome.ILLEGAL_FORMULA)
    else:
        assert got == formula


def test_feedback_reasons_name_the_problem():
    assert "you used invalid numbers: [11]" in verify("formula: 11*2+1+1", ["J", "2", "A", "A"], "id").reason
    assert "[13] unused" in verify("formula: (10+2)*2*1", KING, "ood").reason
    assert "illegal characters" in verify("formula: 10x2", KING, "id").reason
    assert "evaluates to 15 instead of 24" in verify("formula: 10+2+2+1", KING, "id").reason
    assert verify("formula: 8/(3+8)+3", EIGHTS, "id").value == "41/11"


def test_evaluate_is_exact():
    assert evaluate("8/(3-8/3)") == 24
    assert evaluate("1/3+1/3+1/3") == 1
    assert evaluate("2*(3+4)-5/5") == 13
    for bad in ("1+", "(1", "1)", "a", "2**3", ""):
        with pytest.raises(SyntaxError):
            evaluate(bad)
    with pytest.raises(ZeroDivisionError):
        evaluate("1/(2-2)")


def test_verify_formula_direct_and_other_targets():
    assert verify_formula("2*3", ["2", "3"], "id", target=6).correct
    assert verify_formula(None, KING, "id").outcome is Outcome.FORMAT_ERROR
    assert verify("formula: 10", ["10"], "id", target=10).correct


def test_verdict_to_dict_is_json():
    d = verify(PAPER_REPLY, KING, "id").to_dict()
    assert json.loads(json.dumps(d))["outcome"] == "correct"


def test_reward_fn_accepts_strings_and_chat_messages():
    fn = make_reward_fn("paper")
    completions = [
        " numbers: 10 2 2 1 formula: (10+2)*2*1=24",
        [{"role": "assistant", "content": '{"formula": "13*2-2*1"}'}],
        [{"role": "assistant", "content": "formula: 10+2+2+1"}],
    ]
    cards = [KING] * 3
    assert fn(completions, cards=cards, rule=["id", "ood", "id"], prompts=["p"] * 3) == [5.0, 5.0, -1.0]
    assert make_reward_fn("binary")(completions, cards=cards, rule=["id", "ood", "id"]) == [1.0, 1.0, 0.0]
    assert fn.__name__ == "gp_paper_reward"
    with pytest.raises(ValueError, match="reward kind"):
        make_reward_fn("dense")


def test_verify_numbers_is_verify_formula_on_read_cards():
    """The corpus's retry documents take their feedback from verify_numbers: the same text."""
    from rlheals.task.verifier import verify_formula, verify_numbers

    for formula in ["(10+2)*2*1", "13*2-2+1", "10*2+2+2", "(10+2", "10x2", "", "1+" * 200 + "1"]:
        for cards, rule in [(KING, "id"), (KING, "ood")]:
            from rlheals.task.cards import hand_numbers

            a, b = verify_formula(formula, cards, rule), verify_numbers(formula, hand_numbers(cards, rule))
            assert a == b
