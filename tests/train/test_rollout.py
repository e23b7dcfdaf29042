"""Multi-turn episodes (rlheals.train.rollout) and multi-turn GRPO through trl's rollout_func."""
from __future__ import annotations

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from rlheals.atomic import read_jsonl
from rlheals.task.episode import episode_return, feedback_segment, next_context, render_prompt
from rlheals.task.prompts import build_answer, feedback_message
from rlheals.task.solver import solve
from rlheals.train import rollout as rollout_mod
from rlheals.train.common import complete_checkpoints
from rlheals.train.models import load_tokenizer
from rlheals.train.rl import RLOptions, train_rl
from rlheals.train.rollout import EpisodeOptions, make_trl_rollout, prompt_key, run_episodes
from tiny_workspace import formatted_start


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    """A tiny model fine-tuned just enough to write the answer format (so some replies are right)."""
    _, paths, _, sft = formatted_start(tmp_path_factory.mktemp("rollout"))
    return sft, paths["rl_prompts"]


def test_episode_return_discounts_attempts():
    assert episode_return([5.0], 0.9) == 5.0
    assert episode_return([-1.0, -3.0, 5.0], 0.9) == pytest.approx(-1 - 2.7 + 0.81 * 5)
    assert episode_return([-1.0, 5.0], 1.0) == 4.0


def test_multi_turn_mask_covers_exactly_the_model_replies(start, monkeypatch):
    model_dir, prompts = start
    tok = load_tokenizer(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    rows = read_jsonl(prompts)[:24]
    torch.manual_seed(0)
    # The tiny model rarely solves a hand, so at its second attempt the first hand gets the
    # solver's answer in place of the sampled reply (the sampler's output only; verifying,
    # stopping and the token layout stay real).
    real_sample, calls = rollout_mod._sample, []
    answer = build_answer(rows[0]["cards"], rows[0]["rule"], solve(rows[0]["numbers"])[0], "compact")
    forced = tok(answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]

    def sample(model, tokenizer, contexts, opts):
        out = real_sample(model, tokenizer, contexts, opts)
        calls.append(len(contexts))
        if len(calls) == 2:
            out[0] = (forced, [-0.5] * len(forced))
        return out

    monkeypatch.setattr(rollout_mod, "_sample", sample)
    opts = EpisodeOptions(attempts=3, temperature=1.0, max_new_tokens=24)
    episodes = run_episodes(model, tok, [r["prompt"] for r in rows], [(r["cards"], r["rule"]) for r in rows], opts)
    assert {len(ep.turns) for ep in episodes} - {1, 2, 3} == set()
    assert any(len(ep.turns) == 3 for ep in episodes), "no episode went on to the last attempt"
    first = episodes[0]
    if not first.turns[0].correct:
        assert len(first.turns) == 2 and first.solved and first.turns[-1].reward == 5.0
        assert first.turns[-1].reply_ids == forced  # the last reply keeps its EOS
        assert first.ret(0.9) == pytest.approx(first.turns[0].reward + 0.9 * 5.0)
    for ep in episodes:
        ids, mask, logps = ep.completion()
        assert len(ids) == len(mask) == len(logps)
        # the masked-in tokens are exactly the model's replies, in order
        model_tokens = [t for t, m in zip(ids, mask) if m]
        assert model_tokens == [x for t in ep.turns for x in t.reply_ids]
        # an episode ends at a correct reply or the last attempt; only then does a reply keep its EOS
        assert all(not t.correct for t in ep.turns[:-1])
        assert ep.solved or len(ep.turns) == 3
        assert all(tok.eos_token_id not in t.reply_ids for t in ep.turns[:-1])
        # every environment span is exactly the feedback text evaluation writes
        spans, cur = [], []
        for t, m in zip(ids, mask):
            if m == 0:
                cur.append(t)
            elif cur:
                spans.append(cur)
                cur = []
        assert len(spans) == len(ep.turns) - 1
        for span, turn in zip(spans, ep.turns):
            assert tok.decode(span) == f"\n{feedback_message(turn.verdict)}\nAnswer:"
        # the whole episode reads as evaluation's prompt for the last attempt plus the last reply
        history = [(t.reply, t.verdict) for t in ep.turns[:-1]]
        eval_text = render_prompt(next_context(ep.prompt, history, "compact"), tok)
        assert tok.decode(ep.prompt_ids + ids, skip_special_tokens=True) == eval_text + ep.turns[-1].reply
        assert ep.turns[-1].context_ids == ep.prompt_ids + ids[: len(ids) - len(ep.turns[-1].reply_ids)]
        # each reply was judged with the verifier on its own text
        assert ep.rewards == [t.verdict.reward for t in ep.turns]
        # log-probs: the sampler's (<= 0) on the model's tokens, 0 on the feedback
        assert all(lp == 0.0 for lp, m in zip(logps, mask) if m == 0)
        assert all(lp <= 0.0 for lp in logps) and any(lp < 0.0 for lp in logps)


def test_feedback_segment_in_chat_style_is_the_template_turns():
    tok = load_tokenizer(str(_chat_tokenizer_dir()))
    prompt = [{"role": "user", "content": "Cards: ['K', '2', '2', 'A']"}]
    from rlheals.task.verifier import verify

    verdict = verify("formula: 1+1", ["K", "2", "2", "A"], "id")
    seg = feedback_segment(prompt, [], "formula: 1+1", verdict, "chat", tok)
    assert seg == f"<eos>\n<|user|>{feedback_message(verdict)}<eos>\n<|assistant|>"


def _chat_tokenizer_dir():
    import tempfile

    from rlheals.data.tokenizer import build_tokenizer

    tok = build_tokenizer()
    tok.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<eos>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    d = tempfile.mkdtemp()
    tok.save_pretrained(d)
    return d


def test_trl_rollout_func_returns_trl_fields(start):
    model_dir, prompts = start
    rows = read_jsonl(prompts)[:4]
    hands = {prompt_key(r["prompt"]): (r["cards"], r["rule"]) for r in rows}
    rollout = make_trl_rollout(hands, EpisodeOptions(attempts=2, max_new_tokens=16))

    class _Trainer:  # what rollout_func reads of trl's trainer
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        processing_class = load_tokenizer(model_dir)

        class accelerator:
            @staticmethod
            def unwrap_model(m):
                return m

    torch.manual_seed(1)
    out = rollout([r["prompt"] for r in rows], _Trainer)
    for key in ("prompt_ids", "completion_ids", "logprobs", "env_mask", "episode_return", "episode_success", "first_success"):
        assert len(out[key]) == 4, key
    assert all(len(a) == len(b) == len(c) for a, b, c in zip(out["completion_ids"], out["logprobs"], out["env_mask"]))
    assert all(s >= f for s, f in zip(out["episode_success"], out["first_success"]))


def _weights(d):
    return load_file(f"{d}/model.safetensors")


def test_multi_turn_grpo_trains_and_resumes_like_an_uninterrupted_run(start, tmp_path):
    model_dir, prompts = start
    opts = RLOptions(algo="grpo", batch_size=8, num_generations=4, lr=1e-3, temperature=1.0,
                     max_completion_length=16, attempts=3, save_every=2, device="cpu", threads=1)
    train_rl(model_dir, prompts, [4], [str(tmp_path / "a-4")], str(tmp_path / "a.csv"), str(tmp_path / "runs-a"), opts)
    runs_b = tmp_path / "runs-b"
    train_rl(model_dir, prompts, [2], [str(tmp_path / "b-2")], str(tmp_path / "b2.csv"), str(runs_b), opts)
    train_rl(model_dir, prompts, [2, 4], [str(tmp_path / "b-2"), str(tmp_path / "b-4")], str(tmp_path / "b.csv"),
             str(runs_b), opts)
    (run_dir,) = [d for d in runs_b.iterdir() if d.is_dir()]
    assert sorted(complete_checkpoints(run_dir)) == [2, 4]
    a, b, s = _weights(tmp_path / "a-4"), _weights(tmp_path / "b-4"), _weights(model_dir)
    assert any(not torch.equal(s[k], a[k]) for k in s), "no parameter changed"
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed multi-turn GRPO differs from the uninterrupted run"
    table = pd.read_csv(tmp_path / "a.csv")
    assert list(table["step"]) == [1, 2, 3, 4]
    assert table["attempts_mean"].between(1, 3).all()
    assert (table["success_rate"] >= table["success_rate_at_1"]).all()
    assert (table["step_time"] > 0).all()
    # the reward trained on is the episode's return: at most +5, below it once an attempt failed
    assert (table["reward_mean"] <= 5).all()
