"""Prompts, answers, feedback and retry prompts in both styles."""
import pytest

from rlheals.task.cards import make_hands
from rlheals.task.prompts import build_answer, build_prompt, feedback_message, retry_prompt
from rlheals.task.solver import best_solution
from rlheals.task.cards import hand_numbers
from rlheals.task.verifier import verify

KING = ["K", "2", "2", "A"]


def test_chat_prompt_is_the_papers_text():
    msgs = build_prompt(["A", "5", "K", "9"], "id", "chat")
    assert [m["role"] for m in msgs] == ["user"]
    text = msgs[0]["content"]
    assert text.startswith("[Task Description]\nYou are an expert 24 points card game player. You will receive a set of 4 cards.")
    assert "Note that 'J', 'Q', and 'K' count as '10'., and each card must be used once." in text  # '.,' as in the paper
    assert "Cards: ['A', '5', 'K', '9']" in text
    assert "\"formula\": 'an equation that equals 24'," in text
    ood = build_prompt(["A", "5", "K", "9"], "ood", "chat")[0]["content"]
    assert "'J', 'Q', and 'K' count as '11', '12', and '13' respectively., and each" in ood


def test_compact_prompt_and_answer():
    assert build_prompt(KING, "id", "compact") == "Rule: J=10 Q=10 K=10. Cards: K 2 2 A. Make 24.\nAnswer:"
    assert build_answer(KING, "id", "(10+2)*2*1", "compact") == " numbers: 10 2 2 1 formula: (10+2)*2*1=24"
    assert build_answer(KING, "ood", "13*2-2*1=24", "compact") == " numbers: 13 2 2 1 formula: 13*2-2*1=24"


def test_compact_id_and_ood_prompts_differ_only_in_the_rule():
    a, b = build_prompt(KING, "id", "compact"), build_prompt(KING, "ood", "compact")
    assert a.replace("J=10 Q=10 K=10", "RULE") == b.replace("J=11 Q=12 K=13", "RULE")
    assert a.isascii() and b.isascii()


@pytest.mark.parametrize("style", ["compact", "chat"])
@pytest.mark.parametrize("rule", ["id", "ood"])
def test_answers_verify_as_correct(style, rule):
    for cards in make_hands(40, rule, seed=5):
        answer = build_answer(cards, rule, best_solution(hand_numbers(cards, rule)), style)
        text = answer if style == "compact" else answer[0]["content"]
        assert verify(text, cards, rule).correct, (cards, text)


def test_feedback_and_compact_retry():
    prompt = build_prompt(KING, "ood", "compact")
    reply = " numbers: 10 2 2 1 formula: (10+2)*2*1=24"
    v = verify(reply, KING, "ood")
    assert feedback_message(v) == f"You failed this trial because {v.reason}"
    again = retry_prompt(prompt, [(reply, v)], "compact")
    assert again == prompt + reply + "\nYou failed this trial because " + v.reason + "\nAnswer:"
    twice = retry_prompt(prompt, [(reply, v), (" x", verify(" x", KING, "ood"))], "compact")
    assert twice.startswith(again) and twice.endswith("no formula was found in your answer\nAnswer:")


def test_chat_retry_appends_turns():
    prompt = build_prompt(KING, "id", "chat")
    v = verify("formula: 1+1", KING, "id")
    msgs = retry_prompt(prompt, [("formula: 1+1", v)], "chat")
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
    assert msgs[1]["content"] == "formula: 1+1" and msgs[2]["content"].startswith("You failed this trial because ")
    assert len(prompt) == 1  # the first prompt is not changed


def test_bad_style_and_rule():
    with pytest.raises(ValueError, match="prompt style"):
        build_prompt(KING, "id", "fancy")
    with pytest.raises(ValueError, match="rule"):
        build_prompt(KING, "face10", "compact")
    with pytest.raises(TypeError):
        retry_prompt([{"role": "user", "content": "x"}], [], "compact")
