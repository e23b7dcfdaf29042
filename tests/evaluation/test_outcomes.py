"""Per-hand outcomes read back from replies.jsonl (rlheals.evaluation.outcomes)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from rlheals.evaluation.outcomes import hand_outcomes, load_outcomes


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _reply(split, hid, attempt, outcome):
    return {"split": split, "id": hid, "attempt": attempt, "outcome": outcome, "reply": "...", "reward": 0}


ROWS = [  # hand 2 solved at attempt 2, hand 0 at attempt 1, hand 1 never; written out of id order
    _reply("ood", "eval_ood-00002", 1, "wrong_value"), _reply("ood", "eval_ood-00000", 1, "correct"),
    _reply("ood", "eval_ood-00001", 1, "format_error"), _reply("ood", "eval_ood-00002", 2, "correct"),
    _reply("ood", "eval_ood-00001", 2, "wrong_numbers"), _reply("id", "eval_id-00000", 1, "partial"),
]


def test_any_attempt_counts_and_ids_are_sorted(tmp_path):
    out = hand_outcomes(_write(tmp_path / "r.jsonl", ROWS))
    assert sorted(out) == ["id", "ood"]
    assert list(out["ood"].index) == ["eval_ood-00000", "eval_ood-00001", "eval_ood-00002"]
    assert np.asarray(out["ood"]).tolist() == [True, False, True] and out["ood"].dtype == bool
    assert np.asarray(out["id"]).tolist() == [False]
    first = hand_outcomes(tmp_path / "r.jsonl", max_attempt=1)
    assert np.asarray(first["ood"]).tolist() == [True, False, False]  # attempt-1 success


def test_load_outcomes_keys_and_hand_check(tmp_path):
    a = _write(tmp_path / "a.jsonl", ROWS)
    b = _write(tmp_path / "b.jsonl", [dict(r, outcome="correct") for r in ROWS])
    out = load_outcomes({(0, "sft-10"): a, (0, "sft-20"): b})
    assert set(out) == {(0, "sft-10", "ood"), (0, "sft-20", "ood"), (0, "sft-10", "id"), (0, "sft-20", "id")}
    assert int(out[(0, "sft-20", "ood")].sum()) == 3
    c = _write(tmp_path / "c.jsonl", [r for r in ROWS if r["id"] != "eval_ood-00001"])
    with pytest.raises(ValueError, match="other hands"):
        load_outcomes({(0, "sft-10"): a, (0, "sft-30"): c})


def test_bad_replies_name_the_file(tmp_path):
    bad = _write(tmp_path / "bad.jsonl", [{"split": "ood", "id": 1, "reply": "x"}])
    with pytest.raises(ValueError, match=r"bad.jsonl:1: reply row lacks \['attempt', 'outcome'\]"):
        hand_outcomes(bad)
    with pytest.raises(ValueError, match="no replies"):
        hand_outcomes(_write(tmp_path / "empty.jsonl", []))
    with pytest.raises(ValueError, match="max_attempt"):
        hand_outcomes(bad, max_attempt=0)


def test_hand_readings_from_first_replies(tmp_path):
    """Per-hand face-card reading of attempt 1 only, from the replies as evaluation writes them."""
    from rlheals.evaluation.outcomes import hand_readings, load_readings

    rows = [
        {"split": "ood", "id": "eval_ood-00001", "attempt": 1, "cards": ["K", "Q", "2", "A"], "rule": "ood",
         "reply": " numbers: 13 10 2 1 formula: 13*2-1-10=24", "outcome": "wrong_value"},
        {"split": "ood", "id": "eval_ood-00001", "attempt": 2, "cards": ["K", "Q", "2", "A"], "rule": "ood",
         "reply": " numbers: 13 12 2 1 formula: 13+12-2+1=24", "outcome": "wrong_value"},
        {"split": "ood", "id": "eval_ood-00000", "attempt": 1, "cards": ["J", "3", "5", "A"], "rule": "ood",
         "reply": " formula: oops", "outcome": "format_error"},
    ]
    path = _write(tmp_path / "r.jsonl", rows)
    out = hand_readings(path)["ood"]
    assert list(out.index) == ["eval_ood-00000", "eval_ood-00001"]
    assert out.loc["eval_ood-00001"].tolist() == [2, 1, 1]  # K as 13 (the rule), Q as 10; attempt 2 ignored
    assert out.loc["eval_ood-00000"].tolist() == [1, 0, 0]  # no number list: neither
    assert set(load_readings({(1, "sft-5"): path})) == {(1, "sft-5", "ood")}
    bad = _write(tmp_path / "bad.jsonl", [{"split": "ood", "id": 1, "attempt": 1, "reply": "x"}])
    with pytest.raises(ValueError, match=r"bad.jsonl:1: reply row lacks \['cards', 'rule'\]"):
        hand_readings(bad)
