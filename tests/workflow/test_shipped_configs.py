"""Every experiment config the project ships validates on top of config.yaml, as the
README's commands merge them (a stale key in one would stop its run before any job)."""
from __future__ import annotations

from pathlib import Path

import pytest

from rlheals.config import load

ROOT = Path(__file__).resolve().parents[2]
STACKS = [
    ["configs/reproduce.yaml"],
    ["configs/smollm2.yaml"],
    ["configs/smollm2.yaml", "configs/smollm2_gpu.yaml"],
    ["configs/ablation_no_retry.yaml"],
    ["configs/ablation_single_turn_rl.yaml"],
]


def test_ablations_change_only_their_key():
    """An ablation must keep the data (the hands it is paired on) and change one thing."""
    base = load(ROOT / "config.yaml", [])
    corpus = load(ROOT / "config.yaml", [ROOT / "configs/ablation_no_retry.yaml"])
    assert corpus["pretrain"]["mix"]["retry_read"] == corpus["pretrain"]["mix"]["retry_solve"] == 0
    assert {k: v for k, v in corpus.items() if k != "pretrain"} == {k: v for k, v in base.items() if k != "pretrain"}
    single = load(ROOT / "config.yaml", [ROOT / "configs/ablation_single_turn_rl.yaml"])
    assert single["rl"]["attempts"] == 1 and base["rl"]["attempts"] == 5
    assert {k: v for k, v in single["rl"].items() if k != "attempts"} == {k: v for k, v in base["rl"].items() if k != "attempts"}


def test_every_shipped_config_is_in_a_stack():
    shipped = {str(p.relative_to(ROOT)) for p in (ROOT / "configs").glob("*.yaml")}
    assert shipped == {f for stack in STACKS for f in stack}


@pytest.mark.parametrize("stack", STACKS, ids=["+".join(Path(f).stem for f in s) for s in STACKS])
def test_shipped_config_validates(stack):
    cfg = load(ROOT / "config.yaml", [ROOT / f for f in stack])
    assert cfg["model"]["source"] in ("tiny", "smollm2")
    for step in cfg["rl"]["fork_from"]:
        assert step == 0 or step in cfg["sft"]["steps"]


def test_the_gpu_recipe_runs_the_papers_protocol():
    cfg = load(ROOT / "config.yaml", [ROOT / "configs/smollm2.yaml", ROOT / "configs/smollm2_gpu.yaml"])
    assert cfg["model"]["prompt_style"] == "chat"
    assert cfg["evaluation"]["attempts"] == 5 and cfg["rl"]["attempts"] == 5
    assert "ppo" in cfg["rl"]["algorithms"]
