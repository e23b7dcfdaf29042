"""Partial reruns: after a completed smoke run, a change reruns only what depends on it.

One smoke run (module fixture) in a copy of the repository (so that a test may edit a
library file without touching the real tree); each test adds a config file or edits the
copy, asks `snakemake -n` which jobs it would run, and restores the copy. Slow: the
smoke run takes minutes on 2 cores (`make test-slow`).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SKIP = {".git", ".venv", ".snakemake", "results", "logs", "benchmarks", "__pycache__", ".pytest_cache",
        "build", ".hypothesis", "report.html"}

# Stages, by rule: a change may schedule a later stage but never an earlier one.
DATA = {"prepare_data", "pretrain_corpus"}
BASE = {"base_model"}
TRAINING = {"sft", "sft_losses", "rl"}
EVALUATION = {"evaluate", "aggregate_eval", "select_references"}
DOWNSTREAM_OF_EVAL = {"analyze", "reference_svd", "aggregate_analysis", "edit",
                      "plot_eval", "plot_analysis", "plot_edits", "scorecard", "all"}


def _copy_tree(dst: Path) -> Path:
    shutil.copytree(ROOT, dst, ignore=lambda d, names: [n for n in names if n in SKIP or n.endswith(".egg-info")])
    return dst


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """(repo copy, work dir) after one complete smoke run."""
    base = tmp_path_factory.mktemp("reruns")
    repo = _copy_tree(base / "repo")
    work = base / "work"
    work.mkdir()
    t0 = time.time()
    proc = _snakemake(repo, work, "--cores", "2")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    print(f"\nsmoke run: {time.time() - t0:.0f} s")
    return repo, work


def _env(repo: Path) -> dict:
    # Jobs import the installed (editable) library; Snakemake hashes the copy's
    # rlheals/*.py (code_version), which is what a test edits before a dry run.
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _snakemake(repo: Path, work: Path, *args: str, configs: tuple[Path, ...] = ()) -> subprocess.CompletedProcess:
    cmd = [str(Path(sys.executable).with_name("snakemake")), "--snakefile", str(repo / "Snakefile"),
           "--directory", str(work), "--configfile", str(repo / "tests" / "configs" / "smoke.yaml"),
           *map(str, configs), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(repo), timeout=1800)


def scheduled(repo: Path, work: Path, configs: tuple[Path, ...] = ()) -> dict[str, int]:
    """{rule: job count} that `snakemake -n` would run."""
    proc = _snakemake(repo, work, "-n", "--quiet=rules", configs=configs)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    if "Nothing to be done" in out:
        return {}
    jobs: dict[str, int] = {}
    in_table = False
    for line in out.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
        elif in_table and parts and parts[0] == "total":
            break
        elif in_table and len(parts) == 2 and parts[1].isdigit():
            jobs[parts[0]] = int(parts[1])
    assert jobs, out[-4000:]
    return jobs


def _smoke_seeds(repo: Path) -> list[int]:
    from rlheals.config import replicate_seeds

    return replicate_seeds(yaml.safe_load((repo / "tests" / "configs" / "smoke.yaml").read_text()))


def _override(tmp_path: Path, data: dict) -> tuple[Path, ...]:
    path = tmp_path / "change.yaml"
    path.write_text(yaml.safe_dump(data))
    return (path,)


def test_unchanged_rerun_schedules_nothing_fast(done):
    repo, work = done
    t0 = time.time()
    jobs = scheduled(repo, work)
    took = time.time() - t0
    print(f"\nunchanged dry run: {took:.1f} s")
    assert jobs == {}
    assert took < 15


def test_evaluation_parameter_reruns_evaluation_and_downstream_only(done, tmp_path):
    repo, work = done
    jobs = scheduled(repo, work, _override(tmp_path, {"evaluation": {"max_new_tokens": 20}}))
    print(f"\nevaluation.max_new_tokens changed: {jobs}")
    assert "evaluate" in jobs
    assert set(jobs) <= EVALUATION | DOWNSTREAM_OF_EVAL, set(jobs) - EVALUATION - DOWNSTREAM_OF_EVAL


def test_sft_parameter_reruns_sft_and_downstream_not_data_or_base(done, tmp_path):
    repo, work = done
    jobs = scheduled(repo, work, _override(tmp_path, {"sft": {"lr": 0.0002}}))
    print(f"\nsft.lr changed: {jobs}")
    assert jobs.get("sft") == 2 * len(_smoke_seeds(repo)) and "rl" in jobs and "evaluate" in jobs
    assert not set(jobs) & (DATA | BASE), set(jobs) & (DATA | BASE)


def test_evaluation_code_change_reruns_evaluation_and_downstream_only(done):
    repo, work = done
    lib = repo / "rlheals" / "evaluation" / "evaluate.py"
    original = lib.read_text()
    try:
        lib.write_text(original + "\n# a change to evaluation code only\n")
        jobs = scheduled(repo, work)
    finally:
        lib.write_text(original)
    print(f"\nrlheals/evaluation/evaluate.py changed: {jobs}")
    assert "evaluate" in jobs
    assert set(jobs) <= EVALUATION | DOWNSTREAM_OF_EVAL, set(jobs) - EVALUATION - DOWNSTREAM_OF_EVAL


def test_adding_an_sft_length_runs_only_the_new_jobs(done, tmp_path):
    repo, work = done
    jobs = scheduled(repo, work, _override(tmp_path, {"sft": {"steps": [10, 20, 30]}}))
    print(f"\nsft.steps + [30]: {jobs}")
    assert jobs.get("sft") == len(_smoke_seeds(repo))  # one new length per replicate
    assert not set(jobs) & (DATA | BASE | {"rl"}), jobs


def _jobs_with_wildcards(repo: Path, work: Path, configs: tuple[Path, ...]) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job `snakemake -n` would run."""
    proc = _snakemake(repo, work, "-n", configs=configs)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    jobs, rule = [], None
    for line in out.splitlines():
        text = line.strip()
        head = text.split(":")[0].split()
        if len(head) == 2 and head[0] in ("rule", "localrule", "checkpoint", "localcheckpoint") and text.endswith(":"):
            rule = head[1]
            jobs.append((rule, {}))
        elif text.startswith("wildcards:") and jobs:
            jobs[-1][1].update(dict(kv.split("=", 1) for kv in text[len("wildcards:"):].replace(" ", "").split(",")))
    return jobs


def test_adding_a_seed_runs_only_that_seeds_jobs(done, tmp_path):
    repo, work = done
    seeds = _smoke_seeds(repo)
    new = max(seeds) + 1
    jobs = _jobs_with_wildcards(repo, work, _override(tmp_path, {"replicates": seeds + [new]}))
    print(f"\nseed {new} added: {sorted({r for r, _ in jobs})}")
    seeded = [(r, wc) for r, wc in jobs if "seed" in wc]
    assert seeded and {wc["seed"] for _, wc in seeded} == {str(new)}, seeded
    assert {"base_model", "sft", "rl", "evaluate"} <= {r for r, _ in seeded}
    # jobs without a seed are only the tables and figures that collect every seed
    unseeded = {r for r, wc in jobs if "seed" not in wc}
    assert unseeded <= {"aggregate_losses", "aggregate_references", "aggregate_eval", "aggregate_analysis",
                        "plot_eval", "plot_analysis", "plot_edits", "scorecard", "all"}, unseeded
