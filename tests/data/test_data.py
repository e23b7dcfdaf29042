"""Data sets: rules obeyed, answers correct, sets disjoint, same seed same sets; the rule."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rlheals.atomic import read_jsonl
from rlheals.task.cards import FACES, hand_key
from rlheals.data.splits import SET_NAMES, build_all, eval_records, paper_test_records, seen_share, write_all
from rlheals.task.verifier import completion_text, verify

ROOT = Path(__file__).resolve().parents[2]
SIZES = {"sft_size": 120, "heldout_size": 20, "rl_size": 40, "eval_size": 30, "val_size": 25}


@pytest.fixture(scope="module")
def compact():
    return build_all(SIZES, seed=0, style="compact")


def test_sizes_ids_and_fields(compact):
    sizes = {"sft_train": 120, "sft_heldout_id": 20, "sft_heldout_ood": 20, "sft_test_id": 20, "rl_prompts": 40,
             "val_id": 25, "val_ood": 25, "eval_id": 30, "eval_ood": 30}
    assert {k: len(v) for k, v in compact.items()} == sizes
    for name, records in compact.items():
        assert len({r["id"] for r in records}) == len(records)
        assert all({"id", "cards", "rule", "numbers", "prompt"} <= set(r) for r in records)
        assert all(isinstance(r["prompt"], str) for r in records)


def test_rules_obeyed(compact):
    for name in ("sft_train", "sft_heldout_id", "sft_test_id", "rl_prompts", "val_id", "eval_id"):
        assert {r["rule"] for r in compact[name]} == {"id"}
    for name in ("sft_heldout_ood", "val_ood", "eval_ood"):
        assert {r["rule"] for r in compact[name]} == {"ood"}
        assert all(set(r["cards"]) & set(FACES) for r in compact[name])
        assert all("J=11 Q=12 K=13" in r["prompt"] for r in compact[name])


def test_answers_and_solutions_are_correct(compact):
    for name in ("sft_train", "sft_heldout_id", "sft_heldout_ood", "sft_test_id"):
        for r in compact[name]:
            assert verify(r["completion"], r["cards"], r["rule"]).correct
    for name in ("val_id", "val_ood", "eval_id", "eval_ood"):
        for r in compact[name]:
            assert verify("formula: " + r["solution"], r["cards"], r["rule"]).correct


# The separation is checked on values computed here from the card strings alone, not
# with the library's own key: what the model is asked is the multiset of numbers.
FACE_VALUE = {"id": {"J": 10, "Q": 10, "K": 10}, "ood": {"J": 11, "Q": 12, "K": 13}}


def numbers_of(cards: list[str], rule: str) -> tuple[int, ...]:
    values = [1 if c == "A" else FACE_VALUE[rule].get(c) or int(c) for c in cards]
    return tuple(sorted(values))


def cards_of(cards: list[str]) -> tuple[str, ...]:
    return tuple(sorted(cards))


def problems(records: list[dict]) -> set[tuple[int, ...]]:
    return {numbers_of(r["cards"], r["rule"]) for r in records}


def test_sets_are_apart_by_the_numbers_the_model_sees(compact):
    trained = problems(compact["sft_train"]) | problems(compact["rl_prompts"])
    # held-out (loss curves) and validation (every choice) share no problem with training
    for name in ("sft_heldout_id", "sft_heldout_ood", "val_id", "val_ood"):
        assert not problems(compact[name]) & trained, name
        assert not any(r["seen"] for r in compact[name] if "seen" in r)
    # validation's problems are not the reported ones
    assert not problems(compact["val_id"]) & problems(compact["eval_id"])
    assert not {cards_of(r["cards"]) for r in compact["val_ood"]} & {cards_of(r["cards"]) for r in compact["eval_ood"]}
    # the `seen` flag of the evaluation hands is exactly "a training hand has these numbers"
    for name in ("eval_id", "eval_ood", "val_id", "val_ood"):
        for r in compact[name]:
            assert r["seen"] == (numbers_of(r["cards"], r["rule"]) in trained), (name, r["cards"])
    # held-out and evaluation hands are distinct hands, and apart from each other by cards
    held = {cards_of(r["cards"]) for n in ("eval_id", "eval_ood", "sft_heldout_id", "sft_heldout_ood") for r in compact[n]}
    assert not {cards_of(r["cards"]) for n in ("sft_train", "rl_prompts") for r in compact[n]} & held
    def hands(*names):
        return {cards_of(r["cards"]) for n in names for r in compact[n]}

    assert not hands("sft_heldout_id") & hands("eval_id")  # same rule, same cards: same prompt
    assert not hands("sft_heldout_ood") & hands("eval_ood", "val_ood")
    for name in ("eval_id", "eval_ood", "val_id", "val_ood", "sft_heldout_id", "sft_heldout_ood"):
        assert len({cards_of(r["cards"]) for r in compact[name]}) == len(compact[name])  # distinct hands


def test_papers_test_set_is_drawn_like_the_papers_and_keeps_choices_apart(compact):
    """sft_test_id: random distinct ID hands, trained-on problems included (the paper's test
    hands were in its SFT data), never a validation problem, never an OOD set's cards; its
    `in_sft` is exactly "an SFT hand has these numbers"."""
    test = compact["sft_test_id"]
    assert len({cards_of(r["cards"]) for r in test}) == len(test)
    assert not problems(test) & problems(compact["val_id"])
    ood_cards = {cards_of(r["cards"]) for n in ("eval_ood", "val_ood", "sft_heldout_ood") for r in compact[n]}
    assert not {cards_of(r["cards"]) for r in test} & ood_cards
    sft = problems(compact["sft_train"])
    assert all(r["in_sft"] == (numbers_of(r["cards"], "id") in sft) for r in test)
    assert 0 < seen_share(test) <= 1
    # its own seed stream: the other sizes leave its hands as they are
    bigger = build_all({**SIZES, "sft_size": 300, "rl_size": 80}, seed=0, style="compact")["sft_test_id"]
    assert [r["cards"] for r in bigger] == [r["cards"] for r in test]
    assert paper_test_records(20, 0, "compact", avoid=problems(compact["val_id"]),
                              exclude={hand_key(c) for c in ood_cards}) == [
        {k: v for k, v in r.items() if k != "in_sft"} for r in test]


def test_face_cards_make_one_problem_under_the_id_rule():
    # the old card-level separation let "K 2 2 A" (evaluation) and "10 2 2 A" (training) apart
    assert numbers_of(["K", "2", "2", "A"], "id") == numbers_of(["10", "2", "A", "2"], "id")
    assert numbers_of(["K", "2", "2", "A"], "ood") != numbers_of(["10", "2", "2", "A"], "ood")


@pytest.mark.parametrize("fraction", [0.0, 0.5, 1.0])
def test_evaluation_reports_seen_and_unseen_problems(fraction):
    sets = build_all({**SIZES, "eval_size": 60, "sft_size": 1500, "eval_unseen": fraction}, seed=0, style="compact")
    trained = problems(sets["sft_train"]) | problems(sets["rl_prompts"])
    eval_problems = problems(sets["eval_id"])
    kept_out = eval_problems - trained
    # a `fraction` of the evaluation's problems is kept out of training; the rest can be
    # trained on (with 1,500 SFT examples nearly all of them are)
    assert round(fraction * len(eval_problems)) <= len(kept_out) <= round(fraction * len(eval_problems)) + 3
    seen = sum(r["seen"] for r in sets["eval_id"])
    if fraction == 1.0:
        assert seen == 0
    elif fraction == 0.0:
        assert seen >= 0.9 * len(sets["eval_id"])
    else:
        assert 0 < seen < len(sets["eval_id"])
    assert not any(r["seen"] for r in sets["eval_ood"])  # no OOD problem (a face card is 11-13) is trained


def test_default_sizes_leave_sft_hundreds_of_problems():
    import yaml

    with open(ROOT / "config.yaml") as fh:
        data = yaml.safe_load(fh)["data"]
    sets = build_all(data, seed=0, style="compact")
    trained = problems(sets["sft_train"])
    assert len(trained) >= 250, len(trained)  # of the 566 solvable ID problems
    assert not (problems(sets["val_id"]) | problems(sets["sft_heldout_id"])) & trained
    seen = sum(r["seen"] for r in sets["eval_id"])
    assert 0.25 * len(sets["eval_id"]) < seen < 0.75 * len(sets["eval_id"])
    # the paper's test set: mostly trained-on problems, at least as many as eval_id has (it
    # reserves only validation's problems); unseen ones too, as the whole ID distribution has
    test = sets["sft_test_id"]
    assert len(test) == data["heldout_size"] == 200
    assert seen / len(sets["eval_id"]) - 0.1 < seen_share(test) < 0.95, seen_share(test)
    assert not problems(test) & problems(sets["val_id"])
    assert all(verify(r["completion"], r["cards"], "id").correct for r in test)


def test_same_seed_same_sets_other_seed_other_sets(compact):
    assert build_all(SIZES, seed=0, style="compact") == compact
    other = build_all(SIZES, seed=1, style="compact")
    assert other["eval_id"] != compact["eval_id"] and other["sft_train"] != compact["sft_train"]
    # a set's hands come from its own stream: eval hands do not depend on the other sizes
    assert eval_records(30, "ood", 0, "compact") == [{k: v for k, v in r.items() if k != "seen"}
                                                     for r in compact["eval_ood"]]


def test_chat_style_uses_message_lists():
    sets = build_all({**SIZES, "sft_size": 10}, seed=0, style="chat")
    rec = sets["sft_train"][0]
    assert rec["prompt"][0]["role"] == "user" and rec["completion"][0]["role"] == "assistant"
    assert verify(completion_text(rec["completion"]), rec["cards"], "id").correct
    assert sets["eval_ood"][0]["prompt"][0]["content"].startswith("[Task Description]")


def test_random_answers_and_ood_exclusion_switch():
    simplest = build_all(SIZES, seed=0, style="compact")
    rand = build_all({**SIZES, "sft_answer": "random"}, seed=0, style="compact")
    assert [r["cards"] for r in rand["sft_train"]] == [r["cards"] for r in simplest["sft_train"]]
    assert [r["formula"] for r in rand["sft_train"]] != [r["formula"] for r in simplest["sft_train"]]
    assert all(verify(r["completion"], r["cards"], "id").correct for r in rand["sft_train"])
    loose = build_all({**SIZES, "exclude_ood_hands": False, "sft_size": 3000}, seed=0, style="compact")
    ood_keys = {hand_key(r["cards"]) for n in ("eval_ood", "val_ood", "sft_heldout_ood") for r in loose[n]}
    assert {hand_key(r["cards"]) for r in loose["sft_train"]} & ood_keys
    strict = build_all({**SIZES, "sft_size": 3000}, seed=0, style="compact")
    ood_keys = {hand_key(r["cards"]) for n in ("eval_ood", "val_ood", "sft_heldout_ood") for r in strict[n]}
    assert not {hand_key(r["cards"]) for r in strict["sft_train"] + strict["rl_prompts"]} & ood_keys


def test_write_all_round_trip(tmp_path, compact):
    paths = {name: tmp_path / f"{name}.jsonl" for name in SET_NAMES}
    write_all(paths, SIZES, seed=0, style="compact")
    assert {name: read_jsonl(p) for name, p in paths.items()} == compact
    with pytest.raises(ValueError, match="no output path"):
        write_all({"sft_train": paths["sft_train"]}, SIZES, seed=0, style="compact")


# ---------------------------------------------------------------- the Snakemake rule
def _snakemake(*args, cwd):
    exe = shutil.which("snakemake", path=os.path.dirname(sys.executable)) or "snakemake"
    return subprocess.run([exe, *args, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(cwd)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def test_snakemake_dry_run_of_prepare_data(tmp_path):
    res = _snakemake("-n", "--cores", "1", "prepare_data", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr


def test_snakemake_dry_run_on_the_default_config(tmp_path):
    res = _snakemake("-n", "--cores", "1", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "prepare_data" in res.stdout


def test_prepare_data_rule_on_the_smoke_config(tmp_path):
    res = _snakemake("prepare_data", "--cores", "1", "--configfile", str(ROOT / "tests/configs/smoke.yaml"), cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    for name in SET_NAMES:
        rows = read_jsonl(tmp_path / "results" / "data" / f"{name}.jsonl")
        assert rows and all("prompt" in r for r in rows)
    assert len(read_jsonl(tmp_path / "results/data/eval_ood.jsonl")) == 16  # data.eval_size of the smoke config
    assert "sft_train: 200 records" in (tmp_path / "logs/prepare_data/prepare_data.log").read_text()
