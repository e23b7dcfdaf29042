"""Fault tolerance: a killed training job resumes from its last complete state, half-written
outputs are never used, broken checkpoint files and unwritable/full disks give clear
errors naming the file, and two Snakemake runs on one folder are refused by its lock.
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from rlheals.atomic import OutputError, atomic_path, write_jsonl
from rlheals.checks import CheckpointError, check_model_dir
from rlheals.train.models import build_tiny_model, load_model, save_model
from rlheals.data.tokenizer import build_tokenizer
from rlheals.train.common import COMPLETE, latest_at_most

ROOT = Path(__file__).resolve().parents[2]
TINY = {"hidden_size": 32, "intermediate_size": 64, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1}
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
       "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    tok = build_tokenizer()
    out = tmp_path_factory.mktemp("model") / "base"
    save_model(build_tiny_model(TINY, tok, 0), tok, out)
    return out


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory) -> dict[str, str]:
    from rlheals.data.splits import SET_NAMES, write_all

    d = tmp_path_factory.mktemp("data")
    paths = {n: str(d / f"{n}.jsonl") for n in SET_NAMES}
    write_all(paths, {"sft_size": 200, "heldout_size": 16, "rl_size": 8, "eval_size": 8,
                      "sft_answer": "simplest", "exclude_ood_hands": True}, 0, "compact")
    return {"train": paths["sft_train"], "heldout_id": paths["sft_heldout_id"], "heldout_ood": paths["sft_heldout_ood"]}


# ------------------------------------------------------------------ kill -9 and resume
SFT_SCRIPT = textwrap.dedent(
    """
    import json, sys, torch
    torch.set_num_threads(1)
    from rlheals.train.sft import SFTOptions, train_sft
    from rlheals.train.common import setup_logging
    setup_logging()
    base, data, target, out, runs = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    opts = SFTOptions(batch_size=8, save_every=25, eval_every=10000, warmup_steps=2, threads=1, device="cpu")
    train_sft(base, data, target, out, runs, opts)
    """
)


def _sft_cmd(base, data, target, out, runs) -> list[str]:
    import json

    return [sys.executable, "-c", SFT_SCRIPT, str(base), json.dumps(data), str(target), str(out), str(runs)]


def _steps_logged(text: str) -> int:
    """Training steps the Trainer printed (one log line per step, logging_steps=1)."""
    return sum(1 for line in text.splitlines() if line.startswith("{'loss'"))


def test_sft_killed_resumes_from_last_complete_state(tmp_path, tiny_model_dir, sft_data):
    runs = tmp_path / "runs"
    log = tmp_path / "killed.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(_sft_cmd(tiny_model_dir, sft_data, 5000, tmp_path / "never", runs),
                                stdout=fh, stderr=subprocess.STDOUT, env=ENV)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            done = [s for s in _complete_steps(runs) if s >= 50]
            if done:
                break
            time.sleep(0.05)
        time.sleep(0.3)  # let it train past the checkpoint, so the kill lands mid-run
        assert proc.poll() is None, "training ended before it could be killed:\n" + log.read_text()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    steps_at_kill = _steps_logged(log.read_text())
    assert not (tmp_path / "never").exists(), "a killed run left a final output"

    # A half-written state (no completion marker) beyond the last complete one is ignored.
    run_dir = next(runs.iterdir())
    last = max(_complete_steps(runs))
    fake = run_dir / f"checkpoint-{last + 5}"
    fake.mkdir(exist_ok=True)
    (fake / "model.safetensors").write_bytes(b"half written")
    assert latest_at_most(run_dir, 10**6)[0] == last

    target = last + 25
    resumed = subprocess.run(_sft_cmd(tiny_model_dir, sft_data, target, tmp_path / "resumed", runs),
                             capture_output=True, text=True, env=ENV, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    out = resumed.stdout + resumed.stderr
    assert f"SFT to step {target} from step {last}" in out, out[-3000:]
    assert _steps_logged(out) == target - last, "the resumed run repeated or skipped steps"
    lost = steps_at_kill - last
    print(f"\nkilled at step ~{steps_at_kill}; resumed from step {last}; steps lost: {lost} (save_every 25)")
    assert 0 <= lost < 25 + 5

    # The resumed model is the model of a run that never stopped.
    straight = subprocess.run(_sft_cmd(tiny_model_dir, sft_data, target, tmp_path / "straight", tmp_path / "runs2"),
                              capture_output=True, text=True, env=ENV, timeout=300)
    assert straight.returncode == 0, straight.stderr[-3000:]
    a, _ = load_model(tmp_path / "resumed", "cpu")
    b, _ = load_model(tmp_path / "straight", "cpu")
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6, msg=f"{name} differs after resume")


def _complete_steps(runs: Path) -> list[int]:
    if not runs.is_dir():
        return []
    out = []
    for d in runs.glob("*/checkpoint-*"):
        m = re.fullmatch(r"checkpoint-(\d+)", d.name)
        if m and (d / COMPLETE).is_file():
            out.append(int(m.group(1)))
    return out


# ------------------------------------------------------------------ half-written outputs
WRITER = textwrap.dedent(
    """
    import sys, time
    from rlheals.atomic import atomic_path
    with atomic_path(sys.argv[1], is_dir=True) as tmp:
        (tmp / "config.json").write_text("{}")
        (tmp / "model.safetensors").write_bytes(b"x" * 1000)
        print("writing", flush=True)
        time.sleep(60)
    """
)


def test_killed_writer_leaves_only_a_temporary_folder(tmp_path):
    final = tmp_path / "results" / "models" / "sft-10"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(final)], stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert proc.stdout.readline().strip() == "writing"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert not final.exists()
    leftovers = sorted(final.parent.iterdir())  # the temporary folder and its writer's lock
    assert len(leftovers) == 2 and all(p.name.startswith(".tmp-sft-10-") for p in leftovers)
    assert leftovers[1].name == leftovers[0].name + ".lock"
    with pytest.raises(CheckpointError, match="half-written"):
        check_model_dir(leftovers[0])
    # the next job sweeps them: the lock's holder is dead
    from rlheals.atomic import sweep

    assert sorted(sweep(final.parent)) == leftovers and list(final.parent.iterdir()) == []


def test_failed_writer_cleans_up(tmp_path):
    with pytest.raises(ValueError):
        with atomic_path(tmp_path / "out.csv") as tmp:
            tmp.write_text("half")
            raise ValueError("crash in the middle")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ broken checkpoint files
def _copy_model(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize(
    "damage",
    ["truncated weights", "empty weights", "garbage weights", "truncated config", "missing shard"],
)
def test_corrupted_checkpoint_error_names_the_file(tmp_path, tiny_model_dir, damage):
    d = _copy_model(tiny_model_dir, tmp_path / "ckpt")
    weights = d / "model.safetensors"
    data = weights.read_bytes()
    if damage == "truncated weights":
        weights.write_bytes(data[: len(data) // 2])
        bad = weights
    elif damage == "empty weights":
        weights.write_bytes(b"")
        bad = weights
    elif damage == "garbage weights":
        weights.write_bytes(os.urandom(len(data)))
        bad = weights
    elif damage == "truncated config":
        cfg = d / "config.json"
        cfg.write_text(cfg.read_text()[:40])
        bad = cfg
    else:
        (d / "model.safetensors.index.json").write_text(
            '{"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}'
        )
        bad = d / "model-00001-of-00002.safetensors"
    with pytest.raises(CheckpointError) as err:
        load_model(d, "cpu")
    assert str(bad) in str(err.value)


# ------------------------------------------------------------------ full or read-only disk
@contextlib.contextmanager
def _mounted_tmpfs(where: Path, options: str):
    """A tmpfs at `where` (root only); skips the test where mounting is not allowed."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {r.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_disk_full_gives_output_error(tmp_path, tiny_model_dir):
    with _mounted_tmpfs(tmp_path / "results", "size=64k") as results:
        model, tok = load_model(tiny_model_dir, "cpu")
        with pytest.raises(OutputError, match="no space left") as err:
            save_model(model, tok, results / "models" / "sft-10")
        assert "results/models/sft-10" in str(err.value)
        with pytest.raises(OutputError, match="no space left"):
            write_jsonl(results / "data" / "big.jsonl", ({"x": "y" * 1000} for _ in range(1000)))
        with pytest.raises(OutputError, match="no space left"):
            with atomic_path(results / "state.pt") as tmp:
                torch.save({"w": torch.zeros(100_000)}, tmp)
        leftovers = [p for p in results.rglob("*") if p.is_file()]
        assert leftovers == [], f"partial files left behind: {leftovers}"


def test_unwritable_results_folder_gives_output_error(tmp_path):
    results = tmp_path / "results"
    if os.geteuid() == 0:
        ctx = _mounted_tmpfs(results, "size=1m,ro")
    else:
        results.mkdir()
        results.chmod(0o500)
        ctx = contextlib.nullcontext(results)
    with ctx:
        with pytest.raises(OutputError, match="permission denied") as err:
            write_jsonl(results / "data" / "eval_id.jsonl", [{"a": 1}])
        assert "results/data/eval_id.jsonl" in str(err.value)


# ------------------------------------------------------------------ Snakemake's lock
def _snakemake(work: Path, *args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("snakemake")), "--snakefile", str(ROOT / "Snakefile"),
            "--directory", str(work), "--configfile", str(ROOT / "tests" / "configs" / "smoke.yaml"), *args]


def test_second_snakemake_is_refused_and_unlock_clears_a_stale_lock(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    first = subprocess.Popen(_snakemake(work, "--cores", "1"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=ENV, start_new_session=True)
    try:
        locks = work / ".snakemake" / "locks"
        deadline = time.time() + 90
        while time.time() < deadline and first.poll() is None and not any(locks.glob("*")):
            time.sleep(0.2)
        assert first.poll() is None and any(locks.glob("*")), "the first run did not take the lock"
        second = subprocess.run(_snakemake(work, "--cores", "1"), capture_output=True, text=True, env=ENV, timeout=120)
        assert second.returncode != 0
        assert "cannot be locked" in second.stdout + second.stderr
        # kill -9 the first run (and its job): the lock stays behind, stale.
        os.killpg(first.pid, signal.SIGKILL)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert any(locks.glob("*"))
    # The stale lock refuses the next run until `snakemake --unlock` (README).
    third = subprocess.run(_snakemake(work, "--cores", "1"), capture_output=True, text=True, env=ENV, timeout=120)
    # Refused either for the lock or, when the kill caught the first job writing, for its
    # incomplete outputs (Snakemake checks those first); both name their remedy.
    said = third.stdout + third.stderr
    assert third.returncode != 0 and ("cannot be locked" in said or "incomplete" in said.lower()), said[-2000:]
    unlock = subprocess.run(_snakemake(work, "--unlock"), capture_output=True, text=True, env=ENV, timeout=120)
    assert unlock.returncode == 0, unlock.stderr
    assert not any(locks.glob("*"))
