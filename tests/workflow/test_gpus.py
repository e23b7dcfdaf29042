"""Jobs on one machine claim their own GPUs (rlheals.gpus), simulated with RLHEALS_GPU_COUNT."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from rlheals import gpus

HOLDER = """
import os, sys, time
from rlheals.gpus import claim
ids = claim(int(sys.argv[1]))
print(os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
time.sleep(60)
"""


@pytest.fixture
def machine(tmp_path, monkeypatch):
    monkeypatch.setenv("RLHEALS_GPU_COUNT", "3")
    monkeypatch.setenv("RLHEALS_GPU_LOCKS", str(tmp_path / "locks"))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    yield tmp_path
    gpus.release()


def _holder(n: int) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(n)], stdout=subprocess.PIPE, text=True, env=env)
    return proc, proc.stdout.readline().strip()


def test_parallel_jobs_get_disjoint_gpus_and_a_killed_job_frees_its_own(machine, monkeypatch):
    other, visible = _holder(2)
    try:
        theirs = {int(x) for x in visible.split(",")}
        assert len(theirs) == 2
        mine = gpus.claim(1)
        assert len(mine) == 1 and not theirs & set(mine)
        assert os.environ["CUDA_VISIBLE_DEVICES"] == str(mine[0])
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
        with pytest.raises(TimeoutError, match="fewer than 1 of 3 GPUs free"):
            gpus.claim(1, poll_s=0.05, timeout_s=0.3)  # all three are held
    finally:
        other.kill()
        other.wait()
    gpus.release()
    start = time.monotonic()
    assert sorted(gpus.claim(3, poll_s=0.05, timeout_s=10)) == [0, 1, 2]  # the kill released its locks
    assert time.monotonic() - start < 10


def test_nothing_changes_when_the_scheduler_chose_or_none_is_asked(machine, monkeypatch):
    assert gpus.claim(0) is None and "CUDA_VISIBLE_DEVICES" not in os.environ
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")  # e.g. SLURM's --gpus
    assert gpus.claim(1) is None and os.environ["CUDA_VISIBLE_DEVICES"] == "5"
    monkeypatch.setenv("RLHEALS_GPU_COUNT", "0")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert gpus.claim(1) is None  # a CPU machine: the job runs on the CPU


def test_asking_for_more_gpus_than_the_machine_has_says_so(machine, monkeypatch):
    with pytest.raises(ValueError, match="asks for 4 GPUs .* this machine has 3"):
        gpus.claim(4)
    monkeypatch.setenv("RLHEALS_GPU_COUNT", "two")
    with pytest.raises(ValueError, match="RLHEALS_GPU_COUNT"):
        gpus.claim(1)
