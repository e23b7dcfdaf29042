"""A stop signal (SIGTERM, SIGUSR1) at step n: every trainer saves its complete state at n
and stops; the run resumed from there ends identical to one that never stopped. The
signals are real (os.kill on this process) and caught by the trainers' own handler."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from rlheals.train import preempt
from rlheals.train.common import complete_checkpoints, set_threads
from tiny_workspace import TINY, make_workspace


@pytest.fixture(autouse=True)
def handlers():
    """The trainers install handlers in this process: put the defaults back afterwards."""
    saved = {s: signal.getsignal(s) for s in preempt.STOP_SIGNALS}
    preempt.reset()
    yield
    for s, h in saved.items():
        signal.signal(s, h)
    preempt._state["installed"] = False
    preempt.reset()


def signal_at(monkeypatch, step: int, signum=signal.SIGUSR1) -> list[int]:
    """Send `signum` to this process when a trainer reports `step` done; returns the steps
    at which the trainer asked whether to stop."""
    real, asked = preempt.stop_requested, []

    def wrapped(at: int) -> bool:
        asked.append(at)
        if at == step:
            assert signal.getsignal(signum) is preempt._handler, "the trainer did not install its handler"
            os.kill(os.getpid(), signum)
        return real(at)

    monkeypatch.setattr(preempt, "stop_requested", wrapped)
    return asked


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    set_threads(1)
    return make_workspace(tmp_path_factory.mktemp("preempt"), sft_size=80, rl_size=16)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_pretraining_stopped_at_a_step_resumes_to_the_uninterrupted_model_and_log(monkeypatch, tmp_path):
    from rlheals.atomic import write_jsonl
    from rlheals.data.corpus import CorpusOptions, build_corpus
    from rlheals.train.pretrain import PretrainOptions, pretrain

    set_threads(1)
    corpus = tmp_path / "corpus.jsonl"
    write_jsonl(corpus, build_corpus(CorpusOptions(size=200, seed=1)))
    opts = PretrainOptions(steps=6, batch_size=8, lr=3e-3, warmup_steps=2, max_length=32, threads=1, device="cpu",
                           save_every=3, log_every=2, eval_every=2)
    pretrain(TINY, str(corpus), str(tmp_path / "a"), str(tmp_path / "a.csv"), str(tmp_path / "runs-a"), opts)
    # stopped at step 5: between two log rows and two periodic saves
    signal_at(monkeypatch, 5, signal.SIGTERM)
    with pytest.raises(preempt.Stopped) as stop:
        pretrain(TINY, str(corpus), str(tmp_path / "b"), str(tmp_path / "b.csv"), str(tmp_path / "runs-b"), opts)
    assert stop.value.step == 5 and not (tmp_path / "b").exists()
    (run_dir,) = [d for d in (tmp_path / "runs-b").iterdir() if d.is_dir()]
    assert torch.load(run_dir / "state.pt", weights_only=False)["step"] == 5
    monkeypatch.undo()
    preempt.reset()
    pretrain(TINY, str(corpus), str(tmp_path / "b"), str(tmp_path / "b.csv"), str(tmp_path / "runs-b"), opts)
    assert _same(load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors"))
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv"))


def test_sft_stopped_at_a_step_saves_it_and_resumes_to_the_uninterrupted_model(ws, monkeypatch, tmp_path):
    from rlheals.train.sft import TRAINER_LOG, SFTOptions, loss_frame, train_sft
    import json

    base, _, data = ws
    opts = SFTOptions(batch_size=8, lr=1e-3, warmup_steps=2, save_every=3, eval_every=3, max_length=64,
                      device="cpu", threads=1)
    train_sft(base, data, 8, str(tmp_path / "a-8"), str(tmp_path / "runs-a"), opts)
    asked = signal_at(monkeypatch, 5)
    with pytest.raises(preempt.Stopped) as stop:
        train_sft(base, data, 8, str(tmp_path / "b-8"), str(tmp_path / "runs-b"), opts)
    assert stop.value.step == 5 and asked == [1, 2, 3, 4, 5], "it must stop at the first boundary after the signal"
    (run_dir,) = [d for d in (tmp_path / "runs-b").iterdir() if d.is_dir()]
    assert sorted(complete_checkpoints(run_dir)) == [3, 5]  # the periodic save and the one on the signal
    assert not (tmp_path / "b-8").exists()
    monkeypatch.undo()
    preempt.reset()
    train_sft(base, data, 8, str(tmp_path / "b-8"), str(tmp_path / "runs-b"), opts)
    assert _same(load_file(tmp_path / "a-8" / "model.safetensors"), load_file(tmp_path / "b-8" / "model.safetensors"))
    la = loss_frame(json.loads((tmp_path / "a-8" / TRAINER_LOG).read_text()))
    lb = loss_frame(json.loads((tmp_path / "b-8" / TRAINER_LOG).read_text()))
    assert lb["train_loss"].tolist() == pytest.approx(la["train_loss"].tolist(), rel=1e-6)


def test_multi_turn_grpo_stopped_at_a_step_resumes_to_the_uninterrupted_model(ws, monkeypatch, tmp_path):
    from rlheals.train.rl import RLOptions, train_rl

    base, paths, _ = ws
    opts = RLOptions(algo="grpo", batch_size=8, num_generations=4, lr=1e-3, temperature=1.0,
                     max_completion_length=12, attempts=2, save_every=2, device="cpu", threads=1)
    prompts = paths["rl_prompts"]
    train_rl(base, prompts, [4], [str(tmp_path / "a-4")], str(tmp_path / "a.csv"), str(tmp_path / "runs-a"), opts)
    signal_at(monkeypatch, 3)
    with pytest.raises(preempt.Stopped) as stop:
        train_rl(base, prompts, [4], [str(tmp_path / "b-4")], str(tmp_path / "b.csv"), str(tmp_path / "runs-b"), opts)
    assert stop.value.step == 3
    (run_dir,) = [d for d in (tmp_path / "runs-b").iterdir() if d.is_dir()]
    assert sorted(complete_checkpoints(run_dir)) == [2, 3]
    monkeypatch.undo()
    preempt.reset()
    train_rl(base, prompts, [4], [str(tmp_path / "b-4")], str(tmp_path / "b.csv"), str(tmp_path / "runs-b"), opts)
    assert _same(load_file(tmp_path / "a-4" / "model.safetensors"), load_file(tmp_path / "b-4" / "model.safetensors"))
    ta, tb = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    pd.testing.assert_frame_equal(ta.drop(columns="step_time"), tb.drop(columns="step_time"))


def test_ppo_stopped_at_a_step_resumes_to_the_uninterrupted_model(ws, monkeypatch, tmp_path):
    from rlheals.train.ppo import PPOOptions, train_ppo

    base, paths, _ = ws
    opts = PPOOptions(batch_size=4, attempts=2, lr=1e-3, max_completion_length=12, minibatches=2, epochs=1,
                      save_every=2, device="cpu", threads=1)
    prompts = paths["rl_prompts"]
    train_ppo(base, prompts, [4], [str(tmp_path / "a-4")], str(tmp_path / "a.csv"), str(tmp_path / "runs-a"), opts)
    signal_at(monkeypatch, 3, signal.SIGTERM)
    with pytest.raises(preempt.Stopped) as stop:
        train_ppo(base, prompts, [4], [str(tmp_path / "b-4")], str(tmp_path / "b.csv"), str(tmp_path / "runs-b"), opts)
    assert stop.value.step == 3
    (run_dir,) = [d for d in (tmp_path / "runs-b").iterdir() if d.is_dir()]
    assert sorted(complete_checkpoints(run_dir)) == [2, 3]
    monkeypatch.undo()
    preempt.reset()
    train_ppo(base, prompts, [4], [str(tmp_path / "b-4")], str(tmp_path / "b.csv"), str(tmp_path / "runs-b"), opts)
    for name in ("model.safetensors", "value_head/value_head.safetensors"):
        assert _same(load_file(tmp_path / "a-4" / name), load_file(tmp_path / "b-4" / name)), name
    ta, tb = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    pd.testing.assert_frame_equal(ta.drop(columns="step_time"), tb.drop(columns="step_time"))


def test_a_second_signal_during_the_save_leaves_a_complete_state(ws, monkeypatch, tmp_path):
    """The second SIGTERM arrives while the state on the first is being written: the save
    finishes, the state is complete and the run resumes from it."""
    from rlheals.train import sft as sft_mod

    base, _, data = ws
    opts = sft_mod.SFTOptions(batch_size=8, lr=1e-3, warmup_steps=2, save_every=10, eval_every=10, max_length=64,
                              device="cpu", threads=1)
    signal_at(monkeypatch, 2, signal.SIGTERM)
    real_save = sft_mod._MarkComplete.on_save

    def on_save(self, args, state, control, **kw):
        os.kill(os.getpid(), signal.SIGTERM)  # while the checkpoint folder is written, before COMPLETE
        return real_save(self, args, state, control, **kw)

    monkeypatch.setattr(sft_mod._MarkComplete, "on_save", on_save)
    with pytest.raises(preempt.Stopped):
        sft_mod.train_sft(base, data, 4, str(tmp_path / "m"), str(tmp_path / "runs"), opts)
    assert preempt._state["count"] == 2
    (run_dir,) = [d for d in (tmp_path / "runs").iterdir() if d.is_dir()]
    assert sorted(complete_checkpoints(run_dir)) == [2]


def test_entry_points_exit_75_on_a_stop_record_it_and_do_not_requeue_outside_slurm(monkeypatch, tmp_path):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert preempt.requeue_self() is False
    for _ in range(2):
        with pytest.raises(SystemExit) as out:
            with preempt.exit_if_stopped():
                raise preempt.Stopped("SFT", 7, tmp_path)
        assert out.value.code == preempt.EXIT_RESUMABLE == 75
    lines = (tmp_path / preempt.STOPS_LOG).read_text().splitlines()
    assert len(lines) == 2 and all("SFT stopped by a signal at step 7" in l and "not in SLURM" in l for l in lines)
    # inside a SLURM job whose requeue fails (no scontrol / not allowed): still exit 75
    monkeypatch.setenv("SLURM_JOB_ID", "999999")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert preempt.requeue_self() is False


def test_an_output_written_when_sigterm_kills_its_job_never_appears_under_its_final_name(tmp_path):
    """Evaluation and analysis write every output through rlheals.atomic: a job killed by
    SIGTERM mid-write (the default action: no handler runs) leaves no file under the final
    name, and the next writer sweeps the dead writer's temporary away."""
    final = tmp_path / "eval" / "summary.csv"
    code = textwrap.dedent(f"""
        import sys, time
        from rlheals.atomic import atomic_path
        with atomic_path({str(final)!r}) as tmp:
            with open(tmp, "w") as fh:
                fh.write("split,success\\n")
                fh.flush()
                print("writing", flush=True)
                time.sleep(60)
                fh.write("id,0.5\\n")
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM
    assert not final.exists()
    leftovers = list(final.parent.iterdir())
    assert leftovers and all(p.name.startswith(".") for p in leftovers)
    from rlheals.atomic import write_csv

    write_csv(final, pd.DataFrame({"split": ["id"], "success": [0.5]}))
    assert [p.name for p in final.parent.iterdir()] == ["summary.csv"]
