"""Data sets: rules obeyed, answers correct, sets disjoint, same seed same sets; the rule."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rlheals.atomic import read_jsonl
from rlheals.task.cards import FACES, hand_key
from rlheals.data.splits import SET_NAMES, build_all, eval_records, write_all
from rlheals.task.verifier import completion_text, verify

ROOT = Path(__file__).resolve().parents[2]
SIZES = {"sft_size": 120, "heldout_size": 20, "rl_size": 40, "eval_size": 30}


@pytest.fixture(scope="module")
def compact():
    return build_all(SIZES, seed=0, style="compact")


def test_sizes_ids_and_fields(compact):
    sizes = {"sft_train": 120, "sft_heldout_id": 20, "sft_heldout_ood": 20, "rl_prompts": 40, "eval_id": 30, "eval_ood": 30}
    assert {k: len(v) for k, v in compact.items()} == sizes
    for name, records in compact.items():
        assert len({r["id"] for r in records}) == len(records)
        assert all({"id", "cards", "rule", "numbers", "prompt"} <= set(r) for r in records)
        assert all(isinstance(r["prompt"], str) for r in records)


def test_rules_obeyed(compact):
    for name in ("sft_train", "sft_heldout_id", "rl_prompts", "eval_id"):
        assert {r["rule"] for r in compact[name]} == {"id"}
    for name in ("sft_heldout_ood", "eval_ood"):
        assert {r["rule"] for r in compact[name]} == {"ood"}
        assert all(set(r["cards"]) & set(FACES) for r in compact[name])
        assert all("J=11 Q=12 K=13" in r["prompt"] for r in compact[name])


def test_answers_and_solutions_are_correct(compact):
    for name in ("sft_train", "sft_heldout_id", "sft_heldout_ood"):
        for r in compact[name]:
            assert verify(r["completion"], r["cards"], r["rule"]).correct
    for name in ("eval_id", "eval_ood"):
        for r in compact[name]:
            assert verify("formula: " + r["solution"], r["cards"], r["rule"]).correct


def test_sets_are_disjoint(compact):
    keys = {name: {hand_key(r["cards"]) for r in recs} for name, recs in compact.items()}
    held = keys["eval_id"] | keys["eval_ood"] | keys["sft_heldout_id"] | keys["sft_heldout_ood"]
    assert not (keys["sft_train"] | keys["rl_prompts"]) & held
    assert not (keys["sft_heldout_id"] | keys["sft_heldout_ood"]) & (keys["eval_id"] | keys["eval_ood"])
    for name in ("eval_id", "eval_ood", "sft_heldout_id", "sft_heldout_ood"):
        assert len(keys[name]) == len(compact[name])  # distinct hands


def test_same_seed_same_sets_other_seed_other_sets(compact):
    assert build_all(SIZES, seed=0, style="compact") == compact
    other = build_all(SIZES, seed=1, style="compact")
    assert other["eval_id"] != compact["eval_id"] and other["sft_train"] != compact["sft_train"]
    # a set's hands come from its own stream: eval hands do not depend on the other sizes
    assert eval_records(30, "ood", 0, "compact") == compact["eval_ood"]


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
    ood_keys = {hand_key(r["cards"]) for n in ("eval_ood", "sft_heldout_ood") for r in loose[n]}
    assert {hand_key(r["cards"]) for r in loose["sft_train"]} & ood_keys


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
