"""SFT lengths of one trajectory run one after another: the job for a length starts only
once the next-shorter length is exported, so no job holds a GPU (a SLURM allocation)
while it waits for the trajectory's lock. Inserting a length reruns nothing that exists
(tested with a finished run in test_reruns.py)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _dry_run_jobs(work: Path) -> list[dict]:
    """Every job `snakemake -n` lists: rule, wildcards, input and output paths."""
    cmd = [str(Path(sys.executable).with_name("snakemake")), "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(work), "--configfile", str(ROOT / "tests" / "configs" / "smoke.yaml"), "-n"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs: list[dict] = []
    for line in (proc.stdout + proc.stderr).splitlines():
        text = line.strip()
        m = re.fullmatch(r"(?:local)?(?:rule|checkpoint) (\w+):", text)
        if m:
            jobs.append({"rule": m.group(1), "input": [], "output": [], "wildcards": {}})
        elif jobs and text.startswith(("input:", "output:")):
            key, _, rest = text.partition(":")
            jobs[-1][key] = [p.strip() for p in rest.split(",") if p.strip()]
        elif jobs and text.startswith("wildcards:"):
            jobs[-1]["wildcards"] = dict(kv.strip().split("=", 1) for kv in text[len("wildcards:"):].split(","))
    return jobs


def test_each_sft_length_waits_for_the_shorter_one_of_its_replicate(tmp_path):
    jobs = _dry_run_jobs(tmp_path)
    producer = {out: i for i, job in enumerate(jobs) for out in job["output"]}

    def ancestors(i):
        seen, todo = set(), [i]
        while todo:
            for path in jobs[todo.pop()]["input"]:
                j = producer.get(path)
                if j is not None and j not in seen:
                    seen.add(j)
                    todo.append(j)
        return seen

    sft = {(j["wildcards"]["seed"], int(j["wildcards"]["step"])): i for i, j in enumerate(jobs) if j["rule"] == "sft"}
    seeds = {seed for seed, _ in sft}
    assert sft and {step for _, step in sft} == {10, 20}, sft
    for seed in seeds:
        before = {key for key, i in sft.items() if i in ancestors(sft[(seed, 20)])}
        assert before == {(seed, 10)}, f"sft step 20 of seed {seed} waits for {before}, not for its step 10"
        assert not {key for key, i in sft.items() if i in ancestors(sft[(seed, 10)])}
