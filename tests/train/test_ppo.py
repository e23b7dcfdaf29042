"""PPO with a value head (rlheals.train.ppo) on real tiny models: the math, learning, resume."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from rlheals.task.verifier import Outcome, Verdict
from rlheals.train.common import complete_checkpoints, set_threads
from rlheals.train.models import load_tokenizer
from rlheals.train.ppo import PPOOptions, PPOTrainer, ValueHead, gae, ppo_losses, thought_weights, train_ppo
from rlheals.train.rollout import Episode, Turn
from tiny_workspace import make_workspace


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    set_threads(1)
    root = tmp_path_factory.mktemp("ppo")
    base, paths, _ = make_workspace(root, sft_size=40, rl_size=16)
    return base, paths["rl_prompts"]


def test_gae_matches_a_hand_computed_episode():
    # three attempts: illegal (-3), wrong value (-1), correct (+5); gamma 0.9, lambda 0.95
    adv, ret = gae([-3.0, -1.0, 5.0], [0.5, 1.0, 2.0], 0.9, 0.95)
    # delta_2 = 5 - 2 = 3; delta_1 = -1 + 0.9*2 - 1 = -0.2; delta_0 = -3 + 0.9*1 - 0.5 = -2.6
    # A_2 = 3; A_1 = -0.2 + 0.855*3 = 2.365; A_0 = -2.6 + 0.855*2.365 = -0.577925
    assert adv == pytest.approx([-0.577925, 2.365, 3.0], abs=1e-12)
    assert ret == pytest.approx([-0.077925, 3.365, 5.0], abs=1e-12)
    # lambda 1: the returns are the discounted returns whatever the values
    _, ret1 = gae([-3.0, -1.0, 5.0], [0.5, 1.0, 2.0], 0.9, 1.0)
    assert ret1 == pytest.approx([-3 - 0.9 + 0.81 * 5, -1 + 0.9 * 5, 5.0], abs=1e-12)
    assert gae([2.0], [0.5], 0.9, 0.95) == ([1.5], [2.0])


def test_clipped_losses_and_thought_weights(work):
    new, old = torch.tensor([0.0, -2.0]), torch.tensor([-1.0, -1.0])  # ratios e and 1/e
    adv = torch.tensor([1.0, -1.0])
    pg, vloss, stats = ppo_losses(new, old, adv, torch.tensor([2.0]), torch.tensor([0.0]), torch.tensor([3.0]), 0.1, 0.5)
    # min(e*1, 1.1*1) = 1.1; min(-1/e, -0.9) = -0.9 -> loss = -(1.1 - 0.9)/2
    assert float(pg) == pytest.approx(-0.1)
    # value 2 vs return 3: unclipped 1, clipped (0.5) 6.25 -> 0.5 * 6.25
    assert float(vloss) == pytest.approx(3.125)
    assert stats["clip_fraction"] == 1.0
    tok = load_tokenizer(work[0])
    ids = tok(" numbers: 10 2 2 1 formula: (10+2)*2*1=24", add_special_tokens=False)["input_ids"]
    w = thought_weights(tok, ids, 0.5)
    cut = next(j for j, x in enumerate(w) if x == 1.0)
    assert set(w[:cut]) == {0.5} and set(w[cut:]) == {1.0}
    assert tok.decode(ids[cut:]).strip().startswith("formula")
    assert thought_weights(tok, ids[:cut], 0.5) == [0.5] * cut  # no marker: all reasoning


def _toy_rollout(prompt_ids, good, bad, n, rewards=(5.0, -1.0)):
    """Two-reply task: the reply is one token, sampled from the model restricted to {good, bad};
    `good` earns rewards[0] (+5, the paper's correct), `bad` rewards[1] (-1)."""

    def rollout(model, tokenizer, step):
        ctx = torch.tensor([prompt_ids])
        logits = model(input_ids=ctx).logits[0, -1, [good, bad]]
        picks = torch.multinomial(torch.softmax(logits.float(), -1), n, replacement=True).tolist()
        episodes = []
        for p in picks:
            tok = good if p == 0 else bad
            ok = tok == good
            verdict = Verdict(Outcome.CORRECT if ok else Outcome.WRONG_VALUE, rewards[0] if ok else rewards[1],
                              float(ok), None, "toy")
            ep = Episode("toy", [], "id", list(prompt_ids))
            ep.turns.append(Turn(list(prompt_ids), [tok], [0.0], "", verdict, verdict.reward))
            episodes.append(ep)
        return episodes

    return rollout


def _p_good(model, prompt_ids, good, bad):
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt_ids])).logits[0, -1, [good, bad]]
    return float(torch.softmax(logits, -1)[0])


def _toy_trainer(base, tmp_path, rewards):
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(base)
    prompt_ids = tok("Rule: J=10 Q=10 K=10. Cards: 3 3 8 8. Make 24.\nAnswer:")["input_ids"]
    good, bad = tok.convert_tokens_to_ids("7"), tok.convert_tokens_to_ids("9")
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    opts = PPOOptions(batch_size=16, lr=3e-3, value_lr=3e-2, temperature=1.0, minibatches=2, epochs=4,
                      max_grad_norm=1.0, value_clip_range=10.0, thought_prob_coef=1.0, save_every=100,
                      device="cpu", threads=1)
    trainer = PPOTrainer(model, tok, opts, tmp_path / "run", _toy_rollout(prompt_ids, good, bad, 16, rewards))
    return trainer, (prompt_ids, good, bad)


def test_ppo_raises_the_probability_of_the_rewarded_reply(work, tmp_path):
    trainer, toy = _toy_trainer(work[0], tmp_path, (5.0, -1.0))
    before = _p_good(trainer.model, *toy)
    log = [trainer.update() for _ in range(12)]
    after = _p_good(trainer.model, *toy)
    assert 0.2 < before < 0.8, before
    assert after > max(0.9, before + 0.2), (before, after)
    assert log[-1]["success_rate"] > log[0]["success_rate"]


def test_ppo_value_loss_falls(work, tmp_path):
    # every reply earns +3: the value of the prompt is 3 whatever the policy does
    trainer, _ = _toy_trainer(work[0], tmp_path, (3.0, 3.0))
    log = [trainer.update() for _ in range(8)]
    losses = [log[0]["value_loss_first"]] + [e["value_loss"] for e in log]
    assert losses[0] > 1.0, losses  # a fresh head predicts about 0
    assert all(b < a for a, b in zip(losses[1:], losses[2:])), losses
    assert losses[-1] < 0.25 * losses[0], losses
    assert abs(log[-1]["value_mean"] - 3.0) < abs(log[0]["value_mean"] - 3.0) - 1.0


def _weights(d):
    return load_file(f"{d}/model.safetensors"), load_file(f"{d}/value_head/value_head.safetensors")


def test_resumed_multi_turn_ppo_equals_uninterrupted_and_exports_hf_folders(work, tmp_path):
    base, prompts = work
    opts = PPOOptions(batch_size=4, attempts=2, lr=1e-3, max_completion_length=12, minibatches=2, epochs=2,
                      save_every=2, device="cpu", threads=1)
    # uninterrupted: one call to step 4, states at 2 and 4
    train_ppo(base, prompts, [4], [str(tmp_path / "a-4")], str(tmp_path / "a.csv"), str(tmp_path / "runs-a"), opts)
    # interrupted: step 2 in one call; step 4 in a second call that resumes from the state at 2
    runs_b = tmp_path / "runs-b"
    train_ppo(base, prompts, [2], [str(tmp_path / "b-2")], str(tmp_path / "b2.csv"), str(runs_b), opts)
    (run_dir,) = [d for d in runs_b.iterdir() if d.is_dir()]
    assert sorted(complete_checkpoints(run_dir)) == [2]
    train_ppo(base, prompts, [2, 4], [str(tmp_path / "b-2"), str(tmp_path / "b-4")], str(tmp_path / "b.csv"), str(runs_b), opts)
    assert sorted(complete_checkpoints(run_dir)) == [2, 4]
    (wa, ha), (wb, hb) = _weights(tmp_path / "a-4"), _weights(tmp_path / "b-4")
    assert all(torch.equal(wa[k], wb[k]) for k in wa), "resumed PPO policy differs from the uninterrupted one"
    assert all(torch.equal(ha[k], hb[k]) for k in ha), "resumed value head differs"
    w0 = load_file(f"{base}/model.safetensors")
    assert any(not torch.equal(w0[k], wa[k]) for k in w0), "PPO changed no parameter"
    ta, tb = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    assert list(ta["step"]) == [1, 2, 3, 4]
    pd.testing.assert_frame_equal(ta.drop(columns="step_time"), tb.drop(columns="step_time"))
    assert ta["attempts_mean"].between(1, 2).all() and (ta["value_loss"] > 0).all()
    # the export is a normal HF folder; the value head sits beside it and loads back
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(str(tmp_path / "b-4"))
    head = ValueHead.load(tmp_path / "b-4" / "value_head")
    assert json.loads((tmp_path / "b-4" / "value_head" / "config.json").read_text())["layers"] == [32, 8, 4, 1]
    assert head.hidden_size == 32


def test_ppo_options_are_checked():
    with pytest.raises(ValueError, match="rl.ppo.clip_range"):
        PPOOptions(clip_range=0)
    with pytest.raises(ValueError, match="rl.reward"):
        PPOOptions(reward="dense")
