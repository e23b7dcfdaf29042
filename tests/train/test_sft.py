"""SFT along one resumable trajectory: a resumed run equals an uninterrupted one."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from rlheals.train.sft import TRAINER_LOG, SFTOptions, loss_frame, sft_loss_table, train_sft
from rlheals.train.common import complete_checkpoints, set_threads
from tiny_workspace import make_workspace


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(base model folder, data files) on real (small) task data."""
    set_threads(1)
    base, _, data = make_workspace(tmp_path_factory.mktemp("sft"), sft_size=120, rl_size=16)
    return base, data


OPTS = SFTOptions(batch_size=8, lr=1e-3, warmup_steps=2, save_every=3, eval_every=3, max_length=64,
                  device="cpu", threads=1)


def _weights(d):
    return load_file(f"{d}/model.safetensors")


def test_sft_trains_and_logs_losses(setup, tmp_path):
    base, data = setup
    train_sft(base, data, 6, str(tmp_path / "sft-6"), str(tmp_path / "runs"), OPTS)
    before, after = _weights(base), _weights(tmp_path / "sft-6")
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed, "no parameter changed"
    frame = loss_frame(json.loads((tmp_path / "sft-6" / TRAINER_LOG).read_text()))
    assert list(frame["step"]) == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(v) for v in frame["train_loss"])
    evals = frame.dropna(subset=["heldout_id_loss"])
    assert list(evals["step"]) == [3, 6] and evals["heldout_ood_loss"].notna().all()
    assert evals["test_id_loss"].notna().all()  # the paper's test loss, beside ours
    assert frame["train_loss"].iloc[-1] < frame["train_loss"].iloc[0]


def test_the_test_set_evaluation_leaves_the_trajectory_unchanged(setup, tmp_path):
    """The paper's test set is a third evaluation set: evaluating it draws on no random state
    the training uses, so the weights are the same bytes with and without it."""
    base, data = setup
    without = {k: v for k, v in data.items() if k != "test_id"}
    train_sft(base, data, 6, str(tmp_path / "with"), str(tmp_path / "runs-with"), OPTS)
    train_sft(base, without, 6, str(tmp_path / "without"), str(tmp_path / "runs-without"), OPTS)
    a, b = _weights(tmp_path / "with"), _weights(tmp_path / "without")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "the extra eval set changed training"
    la = loss_frame(json.loads((tmp_path / "with" / TRAINER_LOG).read_text()))
    lb = loss_frame(json.loads((tmp_path / "without" / TRAINER_LOG).read_text()))
    assert la["train_loss"].tolist() == lb["train_loss"].tolist()
    assert la.dropna(subset=["heldout_id_loss"])["heldout_id_loss"].tolist() == \
        lb.dropna(subset=["heldout_id_loss"])["heldout_id_loss"].tolist()
    assert la["test_id_loss"].notna().sum() == 2 and lb["test_id_loss"].isna().all()


def test_resumed_sft_equals_uninterrupted(setup, tmp_path):
    base, data = setup
    train_sft(base, data, 8, str(tmp_path / "a-8"), str(tmp_path / "runs-a"), OPTS)
    # Same trajectory in pieces: 4 steps, then 8 (continues from the state saved at 4),
    # then 5 (inside the trained range: resumes from 4, trains one step).
    runs_b = tmp_path / "runs-b"
    train_sft(base, data, 4, str(tmp_path / "b-4"), str(runs_b), OPTS)
    train_sft(base, data, 8, str(tmp_path / "b-8"), str(runs_b), OPTS)
    train_sft(base, data, 5, str(tmp_path / "b-5"), str(runs_b), OPTS)
    a, b = _weights(tmp_path / "a-8"), _weights(tmp_path / "b-8")
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed run differs from the uninterrupted one"
    la = loss_frame(json.loads((tmp_path / "a-8" / TRAINER_LOG).read_text()))
    lb = loss_frame(json.loads((tmp_path / "b-8" / TRAINER_LOG).read_text()))
    assert la["step"].max() == lb["step"].max() == 8
    assert lb["train_loss"].tolist() == pytest.approx(la["train_loss"].tolist())
    (run_dir,) = [d for d in runs_b.iterdir() if d.is_dir()]
    assert sorted(complete_checkpoints(run_dir)) == [3, 4, 5, 6, 8]
    # the loss table comes from the longest run and covers the whole curve
    sft_loss_table([str(tmp_path / "b-4"), str(tmp_path / "b-8")], str(tmp_path / "loss.csv"))
    assert pd.read_csv(tmp_path / "loss.csv")["step"].max() == 8


def test_incomplete_state_is_ignored(setup, tmp_path):
    base, data = setup
    runs = tmp_path / "runs"
    train_sft(base, data, 3, str(tmp_path / "s-3"), str(runs), OPTS)
    (run_dir,) = [d for d in runs.iterdir() if d.is_dir()]
    (run_dir / "checkpoint-3" / "COMPLETE").unlink()  # as if killed while saving
    (run_dir / "checkpoint-3" / "optimizer.pt").write_bytes(b"truncated")
    train_sft(base, data, 3, str(tmp_path / "s-3b"), str(runs), OPTS)
    a, b = _weights(tmp_path / "s-3"), _weights(tmp_path / "s-3b")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_changed_options_start_a_new_trajectory(setup, tmp_path):
    base, data = setup
    runs = tmp_path / "runs"
    train_sft(base, data, 3, str(tmp_path / "x"), str(runs), OPTS)
    other = SFTOptions(**{**OPTS.__dict__, "lr": 5e-4})
    train_sft(base, data, 3, str(tmp_path / "y"), str(runs), other)
    assert len([d for d in runs.iterdir() if d.is_dir()]) == 2


def test_decaying_schedule_is_rejected():
    with pytest.raises(ValueError, match="lr_schedule"):
        SFTOptions(lr_schedule="cosine")


# ---------------------------------------------------------------- the workflow's view
MICRO = {
    "replicates": 1,
    "pretrain": {"corpus_size": 200, "steps": 2, "batch_size": 4, "max_length": 32},
    "data": {"sft_size": 40, "heldout_size": 4, "rl_size": 8, "eval_size": 4},
    "sft": {"steps": [2], "batch_size": 4, "save_every": 2, "eval_every": 2},
    "rl": {"fork_from": [2], "algorithms": ["grpo"], "attempts": 1, "steps": 2, "save_every": 1, "batch_size": 2,
           "num_generations": 2, "max_completion_length": 8},
}
TRAINING_RULES = {"pretrain_corpus", "prepare_data", "base_model", "sft", "rl"}


def _snakemake(work, configs, *args):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    cmd = [str(Path(sys.executable).with_name("snakemake")), *args, "--snakefile", str(root / "Snakefile"),
           "--directory", str(work), "--configfile", str(root / "tests" / "configs" / "smoke.yaml"), *map(str, configs)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _scheduled(work, configs):
    out = _snakemake(work, configs, "-n", "--quiet=rules")
    jobs, table = {}, False
    for line in out.splitlines():
        parts = line.split()
        table = table or parts[:2] == ["job", "count"]
        if table and len(parts) == 2 and parts[1].isdigit():
            jobs[parts[0]] = int(parts[1])
    return {rule: n for rule, n in jobs.items() if rule in TRAINING_RULES}


def test_new_length_or_fork_schedules_only_new_training_jobs(tmp_path):
    """A real (micro) run of the training rules, then dry runs with one more length / fork."""
    import yaml

    def config(**changes):
        path = tmp_path / f"cfg{len(list(tmp_path.glob('cfg*')))}.yaml"
        cfg = {k: dict(v) if isinstance(v, dict) else v for k, v in MICRO.items()}
        for section, values in changes.items():
            cfg[section].update(values)
        path.write_text(yaml.safe_dump(cfg))
        return [path]

    work = tmp_path / "work"
    work.mkdir()
    _snakemake(work, config(), "--cores", "2", "results/s0/tables/rl/grpo-2.csv")
    assert _scheduled(work, config()) == {}
    assert _scheduled(work, config(sft={"steps": [2, 4, 3]})) == {"sft": 2}
    assert _scheduled(work, config(sft={"steps": [2, 4]}, rl={"fork_from": [2, 4]})) == {"sft": 1, "rl": 1}
    assert _scheduled(work, config(rl={"fork_from": [0, 2], "algorithms": ["grpo", "rloo"]})) == {"rl": 3}
