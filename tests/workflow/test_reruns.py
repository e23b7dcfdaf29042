"""Partial reruns: after a completed smoke run, a change reruns only what depends on it.

One smoke run (module fixture) in a copy of the repository (so that a test may edit a
library file without touching the real tree); each test adds a config file or edits the
copy, asks `snakemake -n` which jobs it would run, and restores the copy. Slow: the
smoke run takes minutes on 2 cores (`make test-slow`).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import rlheals

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SKIP = {".git", ".venv", ".snakemake", "results", "logs", "benchmarks", "__pycache__", ".pytest_cache",
        "build", ".hypothesis", "report.html"}

# Stages, by rule: a change may schedule a later stage but never an earlier one.
DATA = {"prepare_data", "pretrain_corpus"}
BASE = {"base_model"}
TRAINING = {"sft", "sft_order", "sft_losses", "aggregate_losses", "rl"}
EVALUATION = {"evaluate", "aggregate_eval", "select_references", "aggregate_references"}
DOWNSTREAM_OF_EVAL = {"analyze", "reference_svd", "aggregate_analysis", "edit",
                      "plot_eval", "plot_analysis", "plot_edits", "scorecard", "all"}


def _copy_tree(dst: Path) -> Path:
    shutil.copytree(ROOT, dst, ignore=lambda d, names: [n for n in names if n in SKIP or n.endswith(".egg-info")])
    return dst


# Loaded by every job's Python (on PYTHONPATH during the smoke run only): at exit it
# records which library files the job really imported, for the closure check below.
IMPORT_TRACE = """
import atexit, json, os, sys

def _record():
    mods = {name: getattr(m, "__file__", None) for name, m in list(sys.modules.items())
            if name == "rlheals" or name.startswith("rlheals.")}
    out = os.environ.get("RLHEALS_IMPORT_TRACE")
    if out and any(mods.values()):
        with open(os.path.join(out, f"{os.getpid()}.json"), "w") as fh:
            json.dump({"argv": sys.argv, "modules": mods}, fh)

atexit.register(_record)
"""


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """(repo copy, work dir, import traces) after one complete smoke run.

    RLHEALS_RERUNS_REUSE=<folder> reuses the finished run a previous session of these tests
    left in <folder> (its repo, work and traces), instead of running the workflow again."""
    reuse = os.environ.get("RLHEALS_RERUNS_REUSE")
    if reuse:
        base = Path(reuse)
        return base / "repo", base / "work", base / "traces"
    base = tmp_path_factory.mktemp("reruns")
    repo = _copy_tree(base / "repo")
    work = base / "work"
    work.mkdir()
    hook, traces = base / "hook", base / "traces"
    hook.mkdir()
    traces.mkdir()
    (hook / "sitecustomize.py").write_text(IMPORT_TRACE)
    path = os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))
    t0 = time.time()
    proc = _snakemake(repo, work, "--cores", "2", extra_env={"PYTHONPATH": path, "RLHEALS_IMPORT_TRACE": str(traces)})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    print(f"\nsmoke run: {time.time() - t0:.0f} s")
    return repo, work, traces


def _env(repo: Path) -> dict:
    # Jobs import the installed (editable) library; Snakemake hashes the copy's
    # rlheals/*.py (code_version), which is what a test edits before a dry run.
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _snakemake(repo: Path, work: Path, *args: str, configs: tuple[Path, ...] = (),
               extra_env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [str(Path(sys.executable).with_name("snakemake")), "--snakefile", str(repo / "Snakefile"),
           "--directory", str(work), "--configfile", str(repo / "tests" / "configs" / "smoke.yaml"),
           *map(str, configs), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env={**_env(repo), **(extra_env or {})}, timeout=1800)


def scheduled(repo: Path, work: Path, configs: tuple[Path, ...] = ()) -> dict[str, int]:
    """{rule: job count} that `snakemake -n` would run."""
    proc = _snakemake(repo, work, "-n", "--quiet=rules", configs=configs)
    return _job_table(proc)


def _job_table(proc: subprocess.CompletedProcess) -> dict[str, int]:
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
    repo, work, _ = done
    t0 = time.time()
    jobs = scheduled(repo, work)
    took = time.time() - t0
    print(f"\nunchanged dry run: {took:.1f} s")
    assert jobs == {}
    assert took < 15


def test_evaluation_parameter_reruns_evaluation_and_downstream_only(done, tmp_path):
    repo, work, _ = done
    jobs = scheduled(repo, work, _override(tmp_path, {"evaluation": {"max_new_tokens": 20}}))
    print(f"\nevaluation.max_new_tokens changed: {jobs}")
    assert "evaluate" in jobs
    assert set(jobs) <= EVALUATION | DOWNSTREAM_OF_EVAL, set(jobs) - EVALUATION - DOWNSTREAM_OF_EVAL


def test_sft_parameter_reruns_sft_and_downstream_not_data_or_base(done, tmp_path):
    repo, work, _ = done
    jobs = scheduled(repo, work, _override(tmp_path, {"sft": {"lr": 0.0002}}))
    print(f"\nsft.lr changed: {jobs}")
    assert jobs.get("sft") == 2 * len(_smoke_seeds(repo)) and "rl" in jobs and "evaluate" in jobs
    assert not set(jobs) & (DATA | BASE), set(jobs) & (DATA | BASE)


def test_evaluation_code_change_reruns_evaluation_and_downstream_only(done):
    repo, work, _ = done
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
    repo, work, _ = done
    jobs = scheduled(repo, work, _override(tmp_path, {"sft": {"steps": [10, 20, 30]}}))
    print(f"\nsft.steps + [30]: {jobs}")
    assert jobs.get("sft") == len(_smoke_seeds(repo))  # one new length per replicate
    assert not set(jobs) & (DATA | BASE | {"rl"}), jobs


def test_inserting_an_sft_length_reruns_no_longer_length(done, tmp_path):
    """sft-20 waits for the next-shorter length through an ancient marker: inserting 15
    re-makes that marker but neither reruns sft-20 nor anything trained from it."""
    repo, work, _ = done
    jobs = scheduled(repo, work, _override(tmp_path, {"sft": {"steps": [10, 15, 20]}}))
    print(f"\nsft.steps [10, 20] -> [10, 15, 20]: {jobs}")
    n = len(_smoke_seeds(repo))
    assert jobs.get("sft") == n and jobs.get("sft_order") == 2 * n, jobs
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
    repo, work, _ = done
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


# ------------------------------------------------------------------ code triggers, every file
def _library_files(repo: Path) -> list[str]:
    files = sorted(str(p.relative_to(repo)) for p in (repo / "rlheals").rglob("*.py") if "__pycache__" not in p.parts)
    return files + ["csrc/cpu/svd_cpu.cpp", "csrc/cuda/svd_cuda.cu", "csrc/svd.cpp", "setup.py"]


def _rule_scripts(repo: Path) -> dict[str, Path]:
    """{rule: its workflow script}, read from the rule files."""
    out = {}
    for smk in (repo / "rules").glob("*.smk"):
        for m in re.finditer(r"(?ms)^\s*(?:rule|checkpoint) (\w+):(.*?)(?=^\s*(?:rule|checkpoint) \w+:|\Z)", smk.read_text()):
            script = re.search(r'script:\s*"\.\./workflow_scripts/(\w+\.py)"', m.group(2))
            if script:
                out[m.group(1)] = repo / "workflow_scripts" / script.group(1)
    return out


def _runs(repo: Path, rel: str) -> set[str]:
    """Rules whose script runs file `rel` (its import closure, or the extension's sources)."""
    out = set()
    for rule, script in _rule_scripts(repo).items():
        files, ext = rlheals.source_closure(script, repo / "rlheals")
        if (repo / rel).resolve() in {f.resolve() for f in files} or (ext and not rel.startswith("rlheals/")):
            out.add(rule)
    return out


@pytest.fixture(scope="module")
def full_run(done):
    """({rule: jobs of a full run}, {rule: rules that consume its outputs}) of the finished run."""
    repo, work, _ = done
    proc = _snakemake(repo, work, "-n", "--forceall", "--quiet=rules")
    counts = _job_table(proc)
    dot = _snakemake(repo, work, "--forceall", "--rulegraph").stdout
    names = dict(re.findall(r'(\d+)\[label = "(\w+)"', dot))
    consumers: dict[str, set[str]] = {}
    for a, b in re.findall(r"(\d+) -> (\d+)", dot):
        consumers.setdefault(names[a], set()).add(names[b])
    return counts, consumers


def _downstream(rules: set[str], consumers: dict[str, set[str]]) -> set[str]:
    seen, todo = set(rules), list(rules)
    while todo:
        for nxt in consumers.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_jobs_import_only_files_of_their_computed_closure(done):
    """The import closure is checked against what the smoke run's jobs really imported."""
    repo, work, traces = done
    scripts = {p.name: rule for rule, p in _rule_scripts(repo).items()}
    checked = set()
    for trace in traces.glob("*.json"):
        rec = json.loads(trace.read_text())
        argv0 = Path(rec["argv"][0]).name if rec["argv"] else ""
        rule = next((r for name, r in scripts.items() if argv0.endswith("." + name) or argv0 == name), None)
        if rule is None:
            continue
        files, ext = rlheals.source_closure(_rule_scripts(repo)[rule], repo / "rlheals")
        closure = {str(f.relative_to(repo)) for f in files}
        pkg = Path(rlheals.__file__).parent
        for name, path in rec["modules"].items():
            if not path:
                continue
            p = Path(path)
            if p.suffix == ".py":
                assert str(p.relative_to(pkg.parent)) in closure, f"rule {rule} imported {name}, missing from its closure"
            else:  # the compiled extension
                assert ext, f"rule {rule} loaded the extension {name}; its closure does not say so"
        checked.add(rule)
    print(f"\njobs traced for {len(checked)} rules: {sorted(checked)}")
    assert {"sft", "rl", "evaluate", "analyze", "edit", "scorecard"} <= checked


@pytest.mark.parametrize("rel", _library_files(ROOT))
def test_editing_any_file_reruns_exactly_the_rules_that_run_it_and_their_consumers(done, full_run, rel):
    repo, work, _ = done
    counts, consumers = full_run
    direct = _runs(repo, rel)
    path = repo / rel
    original = path.read_bytes()
    try:
        path.write_bytes(original + (b"\n// edited\n" if path.suffix in (".cpp", ".cu") else b"\n# edited\n"))
        jobs = scheduled(repo, work)
    finally:
        path.write_bytes(original)
    print(f"\n{rel}: runs in {sorted(direct)}; scheduled {jobs}")
    for rule in direct:  # every job of a rule that runs the file reruns
        assert jobs.get(rule) == counts[rule], f"{rel}: {rule} {jobs.get(rule)} of {counts[rule]} jobs"
    allowed = _downstream(direct, consumers) | {"all"}
    assert set(jobs) <= allowed, f"{rel}: scheduled rules that neither run it nor consume its results: {set(jobs) - allowed}"
    assert bool(jobs) == bool(direct)
