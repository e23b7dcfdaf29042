"""Trajectory keys and run folders: what changes the numbers is in the key, and a run
folder is set up only under its lock."""
from __future__ import annotations

import fcntl
import json
import logging
import threading
import time
from pathlib import Path

import pytest
import torch

from rlheals.train import pretrain as pretrain_mod
from rlheals.train import rl as rl_mod
from rlheals.train import sft as sft_mod
from rlheals.train.common import set_threads
from tiny_workspace import make_workspace

OPTS = sft_mod.SFTOptions(batch_size=4, lr=1e-3, warmup_steps=1, save_every=2, eval_every=100, max_length=64,
                          device="cpu", threads=1)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    set_threads(1)
    base, paths, data = make_workspace(tmp_path_factory.mktemp("traj"), sft_size=40, rl_size=8)
    return base, paths, data


@pytest.fixture
def fake_gpu(monkeypatch):
    """torch believes one CUDA device is present (only keys are computed, nothing runs on it)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


def _dirs(make, opts_cpu, opts_cuda, monkeypatch):
    cpu = make(opts_cpu)
    cuda = make(opts_cuda)
    monkeypatch.setenv("WORLD_SIZE", "2")
    cuda2 = make(opts_cuda)
    return cpu, cuda, cuda2


def test_sft_key_holds_device_precision_and_processes(ws, tmp_path, fake_gpu, monkeypatch):
    base, _, data = ws
    from dataclasses import replace

    make = lambda o: sft_mod.run_dir_for(base, data, str(tmp_path), o)  # noqa: E731
    cpu, cuda, cuda2 = _dirs(make, OPTS, replace(OPTS, device="cuda"), monkeypatch)
    assert len({cpu, cuda, cuda2}) == 3


def test_rl_key_holds_device_precision_and_processes(ws, tmp_path, fake_gpu, monkeypatch):
    base, paths, _ = ws
    opts = rl_mod.RLOptions(batch_size=2, num_generations=2, device="cpu", threads=1)
    from dataclasses import replace

    make = lambda o: rl_mod.run_dir_for(base, paths["rl_prompts"], str(tmp_path), o)  # noqa: E731
    cpu, cuda, cuda2 = _dirs(make, opts, replace(opts, device="cuda"), monkeypatch)
    assert len({cpu, cuda, cuda2}) == 3


def test_pretrain_key_holds_device_precision_and_processes(ws, tmp_path, fake_gpu, monkeypatch):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"text": "1 2 3"}\n')
    from dataclasses import replace

    opts = pretrain_mod.PretrainOptions(device="cpu")
    tiny = {"hidden_size": 32}
    make = lambda o: pretrain_mod.run_dir_for(tiny, str(corpus), str(tmp_path), o)  # noqa: E731
    cpu, cuda, cuda2 = _dirs(make, opts, replace(opts, device="cuda"), monkeypatch)
    assert len({cpu, cuda, cuda2}) == 3


def test_resuming_on_another_device_starts_a_new_trajectory_and_says_so(ws, tmp_path, caplog):
    """A trajectory trained on a GPU in bf16 exists; the same settings on this CPU start afresh."""
    base, _, data = ws
    runs = tmp_path / "runs"
    sft_mod.train_sft(base, data, 2, str(tmp_path / "a"), str(runs), OPTS)
    (elsewhere,) = list(runs.iterdir())
    info = json.loads((elsewhere / "run.json").read_text())
    assert info["compute"] == {"device": "cpu", "dtype": "float32", "processes": 1, "gpus": 0,
                               "grad_accumulation": 1, "distributed": "ddp"}
    info["compute"] = {"device": "cuda", "dtype": "bfloat16", "processes": 1, "gpus": 1}
    other = runs / "0123456789abcdef"
    other.mkdir()
    (other / "run.json").write_text(json.dumps(info))
    (elsewhere / "run.json").unlink()
    import shutil

    shutil.rmtree(elsewhere)
    with caplog.at_level(logging.INFO, logger="rlheals"):
        sft_mod.train_sft(base, data, 2, str(tmp_path / "b"), str(runs), OPTS)
    text = caplog.text
    assert "starts a new trajectory" in text and "cuda/bfloat16" in text and "cpu/float32" in text, text[-2000:]


def test_run_folder_is_set_up_only_under_its_lock(ws, tmp_path):
    """While another job holds the trajectory's lock, a second job writes nothing into it."""
    base, _, data = ws
    runs = tmp_path / "runs"
    run_dir = sft_mod.run_dir_for(base, data, str(runs), OPTS)
    for leftover in ("run.json", ".run.json.tmp"):
        (run_dir / leftover).unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    holder = open(run_dir / ".lock", "w")
    fcntl.flock(holder, fcntl.LOCK_EX)
    errors: list[BaseException] = []

    def second_job():
        try:
            sft_mod.train_sft(base, data, 2, str(tmp_path / "out"), str(runs), OPTS)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    job = threading.Thread(target=second_job)
    job.start()
    try:
        time.sleep(3)
        written = sorted(p.name for p in run_dir.iterdir() if p.name != ".lock")
        assert written == [], f"written into {run_dir} without the lock: {written}"
        assert job.is_alive(), "the second job did not wait for the lock"
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        holder.close()
        job.join(120)
    assert not errors, errors
    assert (run_dir / "run.json").is_file() and (tmp_path / "out" / "config.json").is_file()
