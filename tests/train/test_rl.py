"""A few steps of each RL algorithm (trl GRPO and RLOO) from a briefly fine-tuned tiny model."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from rlheals.train.rl import RLOptions, train_rl
from rlheals.train.common import complete_checkpoints
from tiny_workspace import formatted_start


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    """A tiny model fine-tuned just enough to write the answer format (so rewards vary)."""
    root = tmp_path_factory.mktemp("rl")
    _, paths, _, sft = formatted_start(root)
    return sft, paths["rl_prompts"], root


@pytest.mark.parametrize("algo", ["grpo", "rloo"])
def test_rl_algorithm_updates_the_model_and_logs_rewards(start, algo, tmp_path):
    model_dir, prompts, _ = start
    opts = RLOptions(algo=algo, batch_size=8, num_generations=4, lr=1e-3, temperature=1.0,
                     max_completion_length=24, save_every=2, device="cpu", threads=1)
    outs = [str(tmp_path / f"rl-{k}") for k in (2, 3)]
    train_rl(model_dir, prompts, [2, 3], outs, str(tmp_path / "rl.csv"), str(tmp_path / "runs"), opts)
    table = pd.read_csv(tmp_path / "rl.csv")
    assert list(table["step"]) == [1, 2, 3]
    assert table["reward_mean"].map(math.isfinite).all()
    assert table["success_rate"].between(0, 1).all()
    assert (table["reward_std"] > 0).any(), "no reward spread: the test cannot see an update"
    before, after = load_file(f"{model_dir}/model.safetensors"), load_file(f"{outs[-1]}/model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before), "no parameter changed"
    # resume: a second call with one more kept step continues from the saved state at 3
    train_rl(model_dir, prompts, [2, 4], [outs[0], str(tmp_path / "rl-4")], str(tmp_path / "rl.csv"),
             str(tmp_path / "runs"), opts)
    (run_dir,) = [d for d in (tmp_path / "runs").iterdir() if d.is_dir()]
    assert sorted(complete_checkpoints(run_dir)) == [2, 3, 4]
    assert list(pd.read_csv(tmp_path / "rl.csv")["step"]) == [1, 2, 3, 4]


def test_rl_options_are_checked():
    with pytest.raises(ValueError, match="rlheals.train.ppo"):
        RLOptions(algo="ppo")
    with pytest.raises(ValueError, match="rollout_func"):
        RLOptions(algo="rloo", attempts=5)
    with pytest.raises(ValueError, match="divisible"):
        RLOptions(batch_size=6, num_generations=4)


def test_rl_vllm_asks_trl_for_colocated_generation_and_only_then_enters_the_trajectory_key(tmp_path):
    from rlheals.train.rl import _config

    plain, served = RLOptions(), RLOptions(vllm=True)
    assert "vllm" not in plain.run_key()  # runs made before the key existed keep their trajectories
    assert served.run_key()["vllm"] is True
    args = _config(tmp_path, 2, "cpu", served)
    assert args.use_vllm and args.vllm_mode == "colocate"
    assert not _config(tmp_path, 2, "cpu", plain).use_vllm
    with pytest.raises(ValueError, match="rl.vllm with rl.attempts 3"):
        RLOptions(vllm=True, attempts=3)
