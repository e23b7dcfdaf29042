"""Seed replicates: `replicates` gives the training seeds, and the workflow runs one
trajectory per seed under results/s<seed>/ while the data stay shared."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rlheals.config import ConfigError, replicate_seeds, validate

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "tests" / "configs" / "smoke.yaml"


def test_replicate_seeds_from_a_count_or_a_list():
    assert replicate_seeds(validate({"seed": 0})) == [0]  # default: one replicate, the master seed
    assert replicate_seeds(validate({"seed": 5, "replicates": 3})) == [5, 6, 7]
    assert replicate_seeds(validate({"seed": 5, "replicates": [9, 2]})) == [9, 2]
    with pytest.raises(ConfigError, match="replicates"):
        validate({"replicates": []})


def _dry_run(tmp_path: Path, *configs: str) -> str:
    files = []
    for i, text in enumerate(configs):
        path = tmp_path / f"extra{i}.yaml"
        path.write_text(text)
        files.append(str(path))
    cmd = [str(Path(sys.executable).with_name("snakemake")), "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(tmp_path / "work"), "--configfile", str(SMOKE), *files, "-n", "--cores", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc.stdout


def _outputs(out: str, rule: str) -> list[str]:
    """Output paths of every job of `rule` in a dry run's listing."""
    paths, current = [], None
    for line in out.splitlines():
        m = re.match(r"^(?:local)?(?:rule|checkpoint) (\w+):", line.strip())
        if m:
            current = m.group(1)
        elif current == rule and line.strip().startswith("output:"):
            paths += [p.strip() for p in line.split(":", 1)[1].split(",")]
    return paths


def test_each_seed_gets_its_own_trajectory_and_the_data_are_shared(tmp_path):
    out = _dry_run(tmp_path, "replicates: [3, 7]\n")
    bases = _outputs(out, "base_model")
    assert sorted(p for p in bases if p.endswith("models/base")) == ["results/s3/models/base", "results/s7/models/base"]
    sft = _outputs(out, "sft")
    assert sorted(sft) == [f"results/s{s}/models/sft-{k}" for s in (3, 7) for k in (10, 20)]
    rl = [p for p in _outputs(out, "rl") if p.endswith(".csv")]
    assert sorted(rl) == [f"results/s{s}/tables/rl/grpo-{k}.csv" for s in (3, 7) for k in (10, 20)]
    evals = {p for p in _outputs(out, "evaluate") if p.endswith("summary.csv")}
    assert "results/s3/eval/base/summary.csv" in evals and "results/s7/eval/sft-20/summary.csv" in evals
    data = _outputs(out, "prepare_data")
    assert data and all(p.startswith("results/data/") for p in data)  # one data set for both seeds
    assert len(_outputs(out, "pretrain_corpus")) == 1


def test_one_replicate_keeps_one_trajectory(tmp_path):
    out = _dry_run(tmp_path, "replicates: 1\n")
    assert sorted(_outputs(out, "sft")) == ["results/s0/models/sft-10", "results/s0/models/sft-20"]
