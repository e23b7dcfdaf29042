"""Evaluation of a known model: the counts are what the verifier predicts for its replies."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from rlheals.evaluation.evaluate import EvalOptions, aggregate, evaluate_checkpoint, summarize
from rlheals.evaluation.generation import DecodingOptions, generate
from rlheals.task.prompts import build_prompt
from rlheals.evaluation.stats import compare_gains, compare_rates, wilson
from rlheals.task.verifier import verify

torch.set_num_threads(1)
REPLY = " numbers: 4 6 1 1 formula: 4*6*1*1=24"
# Hands and what the fixed reply earns on them (the verifier's judgement, checked below).
HANDS = [
    (["4", "6", "A", "A"], "id", "correct"),
    (["A", "6", "4", "A"], "ood", "correct"),
    (["4", "6", "A", "2"], "id", "wrong_numbers"),
    (["4", "6", "K", "A"], "id", "wrong_numbers"),
    (["4", "6", "K", "A"], "ood", "wrong_numbers"),
    (["2", "6", "A", "A"], "id", "wrong_numbers"),
]


def _train_fixed_reply(tok, steps=150):
    """A real tiny Llama trained to answer every compact prompt with REPLY."""
    from rlheals.task.cards import make_hands
    from rlheals.train.models import build_tiny_model

    tiny = {"hidden_size": 32, "intermediate_size": 64, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1}
    model = build_tiny_model(tiny, tok, seed=0)
    hands = [(h, "id") for h in make_hands(24, "id", seed=3)] + [(h, "ood") for h in make_hands(24, "ood", seed=4)]
    prompts = [build_prompt(h, r, "compact") for h, r in hands + [(h, r) for h, r, _ in HANDS]]
    reply_ids = tok(REPLY, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    seqs = [(tok(p, add_special_tokens=False)["input_ids"], reply_ids) for p in prompts]
    width = max(len(p) + len(r) for p, r in seqs)
    ids = torch.full((len(seqs), width), tok.pad_token_id)
    labels = torch.full((len(seqs), width), -100)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (p, r) in enumerate(seqs):
        n = len(p) + len(r)
        ids[i, :n] = torch.tensor(p + r)
        labels[i, len(p) : n] = torch.tensor(r)
        mask[i, :n] = 1
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model, float(loss.detach())


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    from rlheals.train.models import save_model
    from rlheals.data.tokenizer import build_tokenizer

    tok = build_tokenizer()
    model, loss = _train_fixed_reply(tok)
    assert loss < 0.01, f"fixed-reply model did not converge (loss {loss})"
    root = tmp_path_factory.mktemp("eval")
    save_model(model, tok, root / "model")
    for split in ("id", "ood"):
        with open(root / f"eval_{split}.jsonl", "w") as fh:
            for i, (cards, rule, _) in enumerate(HANDS):
                # both files hold all hands: the record's own rule decides the judgement
                fh.write(json.dumps({"id": i, "cards": cards, "rule": rule}) + "\n")
    return root


def test_the_verifier_agrees_with_the_table():
    for cards, rule, outcome in HANDS:
        assert verify(REPLY, cards, rule).outcome.value == outcome


def test_known_model_gives_the_predicted_counts(known, tmp_path):
    dec = DecodingOptions(max_new_tokens=24, batch_size=4)
    opts = EvalOptions(attempts=1, prompt_style="compact", decoding=dec)
    data = {"id": known / "eval_id.jsonl", "ood": known / "eval_ood.jsonl"}
    frame = evaluate_checkpoint(known / "model", data, opts, tmp_path / "s.csv", tmp_path / "r.jsonl", device="cpu")
    replies = [json.loads(line) for line in open(tmp_path / "r.jsonl")]
    assert all(r["reply"] == REPLY for r in replies), {r["reply"] for r in replies}
    expected = pd.Series([o for _, _, o in HANDS]).value_counts()
    for row in frame.itertuples():
        assert row.n == len(HANDS) and row.successes == expected["correct"] == row.n_correct
        assert row.n_wrong_numbers == expected["wrong_numbers"]
        assert row.n_format_error == row.n_partial == row.n_illegal_formula == row.n_wrong_value == 0
        assert row.mean_reward == pytest.approx(_mean_reward())
        assert (row.ci_low, row.ci_high) == pytest.approx(wilson(2, 6))
        assert row.solved_at_1 == 2 == row.successes_at_1 and row.attempts == 1
        assert row.success_rate_at_1 == row.success_rate
        assert (row.ci_low_at_1, row.ci_high_at_1) == pytest.approx(wilson(2, 6))
    assert pd.read_csv(tmp_path / "s.csv")["split"].tolist() == ["id", "ood"]


def _mean_reward():
    return sum(verify(REPLY, c, r).reward for c, r, _ in HANDS) / len(HANDS)


def test_retries_go_only_to_unsolved_hands(known, tmp_path):
    dec = DecodingOptions(max_new_tokens=24, batch_size=3)
    opts = EvalOptions(attempts=3, prompt_style="compact", decoding=dec)
    data = {"ood": known / "eval_ood.jsonl"}
    frame = evaluate_checkpoint(known / "model", data, opts, tmp_path / "s.csv", tmp_path / "r.jsonl", device="cpu")
    replies = [json.loads(line) for line in open(tmp_path / "r.jsonl")]
    first = [r for r in replies if r["attempt"] == 1]
    assert len(first) == len(HANDS)
    solved_first = {r["id"] for r in first if r["outcome"] == "correct"}
    later = [r for r in replies if r["attempt"] > 1]
    assert later and not {r["id"] for r in later} & solved_first
    # the retry prompt carries the previous reply and the verifier's feedback
    second = [r for r in later if r["attempt"] == 2][0]
    prev = [r for r in first if r["id"] == second["id"]][0]
    assert "You failed this trial because" in second["prompt"] and prev["reply"] in second["prompt"]
    # counts recomputed from the stored verdicts: each hand's last attempt
    last = {}
    for r in replies:
        last[r["id"]] = r
    row = frame.iloc[0]
    for outcome in ("correct", "wrong_numbers", "wrong_value", "illegal_formula", "format_error", "partial"):
        assert row[f"n_{outcome}"] == sum(r["outcome"] == outcome for r in last.values())
    assert row["solved_at_1"] + row["solved_at_2"] + row["solved_at_3"] == row["successes"]
    assert row["attempts"] == 3 and row["successes_at_1"] == len(solved_first) == row["solved_at_1"]
    assert row["success_rate_at_1"] == pytest.approx(len(solved_first) / len(HANDS))
    for r in replies:  # every stored verdict is the verifier's
        assert verify(r["reply"], r["cards"], r["rule"]).outcome.value == r["outcome"]


def test_sampling_is_seeded(known):
    from rlheals.train.models import load_model

    model, tok = load_model(known / "model", device="cpu")
    prompts = [build_prompt(c, r, "compact") for c, r, _ in HANDS]
    dec = DecodingOptions(max_new_tokens=8, batch_size=4, decoding="sample", temperature=3.0, seed=5)
    a, b = generate(model, tok, prompts, dec), generate(model, tok, prompts, dec)
    assert a == b
    c = generate(model, tok, prompts, DecodingOptions(max_new_tokens=8, batch_size=2, decoding="sample", temperature=3.0, seed=6))
    assert a != c


def test_summarize_and_aggregate(tmp_path):
    verdicts = [[("x", verify("formula: 1+1", ["A", "A", "2", "K"], "id"))], [("y", verify(REPLY, *HANDS[0][:2]))]]
    row = summarize(verdicts, "id", attempts=1)
    assert row["n"] == 2 and row["successes"] == 1 and row["n_wrong_numbers"] == 1
    paths = {}
    for ckpt in ("base", "sft-10", "rl-grpo-10-4", "edit-dir-restore"):
        p = tmp_path / f"{ckpt}.csv"
        pd.DataFrame([{**row, "split": "id"}, {**row, "split": "ood"}]).to_csv(p, index=False)
        paths[ckpt] = p
    loss = tmp_path / "loss.csv"
    pd.DataFrame({"step": [0, 10], "train_loss": [3.0, 1.0], "heldout_id_loss": [3.1, 1.1],
                  "heldout_ood_loss": [3.2, 1.5]}).to_csv(loss, index=False)
    table = aggregate(paths, loss, alpha=0.1)
    assert len(table) == 8
    assert table["stage"].tolist() == ["base"] * 2 + ["sft"] * 2 + ["rl"] * 2 + ["edit"] * 2
    rl = table[table["stage"] == "rl"].iloc[0]
    assert (rl["sft_step"], rl["rl_algo"], rl["rl_step"]) == (10, "grpo", 4)
    assert table.loc[table["checkpoint"] == "sft-10", "heldout_ood_loss"].tolist() == [1.5, 1.5]
    assert table.loc[table["stage"] == "rl", "train_loss"].isna().all()
    assert table["test_id_loss"].isna().all()  # a loss table logged before the paper's test set
    pd.read_csv(loss).assign(test_id_loss=[3.3, 0.4]).to_csv(loss, index=False)
    with_test = aggregate(paths, loss, alpha=0.1)
    assert with_test.loc[with_test["checkpoint"] == "sft-10", "test_id_loss"].tolist() == [0.4, 0.4]
    assert table["ci_low"].iloc[0] == pytest.approx(wilson(1, 2, 0.1)[0])
    assert table["ci_high_at_1"].iloc[0] == pytest.approx(wilson(1, 2, 0.1)[1])
    # a summary from before the attempt-1 columns gets them from solved_at_1
    old = tmp_path / "old.csv"
    pd.DataFrame([{k: v for k, v in row.items() if "_at_1" not in k or k == "solved_at_1"}]).to_csv(old, index=False)
    assert aggregate({"base": old})["successes_at_1"].tolist() == [row["solved_at_1"]]


def test_two_attempts_give_attempt_one_and_within_n_columns():
    wrong = verify("formula: 1+1", ["A", "A", "2", "K"], "id")
    right = verify(REPLY, *HANDS[0][:2])
    row = summarize([[("a", wrong), ("b", right)], [("c", right)], [("d", wrong), ("e", wrong)]], "ood", attempts=2)
    assert (row["successes"], row["successes_at_1"], row["solved_at_2"]) == (2, 1, 1)
    assert row["success_rate_at_1"] == pytest.approx(1 / 3) and row["success_rate"] == pytest.approx(2 / 3)


def test_wilson_and_tests():
    low, high = wilson(0, 20)
    assert low == 0 and 0.1 < high < 0.2
    assert wilson(10, 20)[0] == pytest.approx(0.2993, abs=1e-3)  # textbook value
    assert compare_rates(30, 100, 10, 100).sign == 1
    assert compare_rates(12, 100, 10, 100).sign == 0
    assert compare_rates(0, 50, 0, 50).sign == 0
    assert compare_gains((30, 100, 10, 100), (10, 100, 10, 100)).sign == 1
    assert compare_gains((11, 100, 10, 100), (10, 100, 10, 100)).sign == 0


def test_rescue_columns_count_hands_solved_after_attempt_one():
    """Rescue rate and the share of rescues after feedback that named a face card's value,
    from the verifier's own verdicts on written-out episodes."""
    from rlheals.evaluation.evaluate import named_values, rescue_columns

    def tries(cards, rule, *replies):
        return [(r, verify(r, cards, rule)) for r in replies]

    king = ["K", "2", "2", "A"]  # ood: 13 2 2 1
    records = [{"cards": king, "rule": "ood"}] * 4 + [{"cards": ["4", "6", "A", "A"], "rule": "ood"}] * 2
    history = [
        tries(king, "ood", "formula: 13*2-2*1"),  # solved at attempt 1: not a rescue candidate
        tries(king, "ood", "formula: (10+2)*2*1", "formula: 13*2-2/1"),  # feedback names 13 ([13] unused)
        tries(king, "ood", "formula: 13*2+2+1", "formula: 13*2-2*1"),  # feedback names no value (27)
        tries(king, "ood", "formula: (10+2)*2*1", "formula: (10+2)*2*1"),  # failed throughout
        tries(["4", "6", "A", "A"], "ood", "formula: 4+6+1+1", "formula: 4*6*1*1"),  # no face card: never named
        tries(["4", "6", "A", "A"], "ood", "formula: 4+6"),
    ]
    assert named_values(history[1][0][1].reason) == {10, 13}
    row = rescue_columns(records, history)
    assert (row["rescue_n"], row["rescued"], row["rescued_named"]) == (5, 3, 1)
    assert row["rescue_rate"] == pytest.approx(3 / 5)
    assert (row["rescue_ci_low"], row["rescue_ci_high"]) == pytest.approx(wilson(3, 5))
    assert row["rescue_named_share"] == pytest.approx(1 / 3)
    one = rescue_columns(records[:1], history[:1])  # nothing failed: rates are undefined, not 0
    assert one["rescue_n"] == 0 and one["rescue_rate"] != one["rescue_rate"]
