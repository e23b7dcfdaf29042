"""Code triggers: a rule's `code` param hashes every library file its script runs.

Fast: the workflow is loaded (Snakemake's API, no job runs) in a copy of the source tree;
each case appends a comment to one file of the copy and reads which rules' `code` param
changed. The expectation is written out by hand from what each workflow script imports,
so it checks the computed import closure rather than restating it. The slow variant,
with a finished run and dry runs, is in test_reruns.py.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rlheals

ROOT = Path(__file__).resolve().parents[2]
COPY = ["Snakefile", "rules", "rlheals", "workflow_scripts", "csrc", "setup.py", "config.yaml", "report", "envs",
        "tests/configs"]

# Edited file -> the rules that run it (read from the scripts' imports, by hand).
SVD = {"reference_svd", "analyze", "edit", "aggregate_analysis"}   # aggregate: svd.analysis.aggregate
EXPECTED = {
    "rlheals/svd/_linalg_ref.py": SVD,                      # linalg imports it at the top
    "rlheals/svd/_linalg_gpu.py": SVD,                      # linalg imports it lazily
    "csrc/cpu/svd_cpu.cpp": SVD,                            # the extension linalg loads
    "csrc/cuda/svd_cuda.cu": SVD,
    "setup.py": SVD,
    "rlheals/svd/edits.py": {"edit"},                       # only the edit script runs it
    # aggregate_eval runs evaluation.evaluate.aggregate: that module imports the verifier
    # at the top and train.models (checks, tokenizer) lazily; the corpus's retry documents
    # take their feedback from it
    "rlheals/task/verifier.py": {"evaluate", "aggregate_eval", "rl", "pretrain_corpus"},
    "rlheals/evaluation/stats.py": {"evaluate", "aggregate_eval", "scorecard", "plot_eval", "plot_analysis", "plot_edits"},  # the plots pool with Wilson intervals
    "rlheals/data/tokenizer.py": {"base_model", "sft", "sft_losses", "rl", "evaluate", "aggregate_eval"},
    "rlheals/checks.py": {"base_model", "sft", "sft_losses", "rl", "evaluate", "aggregate_eval"},
    "rlheals/report/plots.py": {"plot_eval", "plot_analysis", "plot_edits"},
    "rlheals/train/sft.py": {"sft", "sft_losses", "rl"},     # rl imports the completion-marker callback
}

PROBE = r'''
import json, sys
from pathlib import Path
import rlheals
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings

repo, work, edits = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])

def params():
    rlheals._closure.cache_clear()
    with SnakemakeApi(OutputSettings()) as api:
        wf = api.workflow(resource_settings=ResourceSettings(), storage_settings=StorageSettings(),
                          config_settings=ConfigSettings(configfiles=[repo / "tests/configs/smoke.yaml"]),
                          snakefile=repo / "Snakefile", workdir=work)
        return {r.name: dict(r.params.items()).get("code") for r in wf._workflow.rules if r.name != "all"}

out = {"": params()}
with SnakemakeApi(OutputSettings()) as api:
    wf = api.workflow(resource_settings=ResourceSettings(), storage_settings=StorageSettings(),
                      config_settings=ConfigSettings(configfiles=[repo / "tests/configs/smoke.yaml"]),
                      snakefile=repo / "Snakefile", workdir=work)
    out["scripts"] = {r.name: r.script for r in wf._workflow.rules if r.name != "all"}
for rel in edits:
    f = repo / rel
    before = f.read_bytes()
    f.write_bytes(before + (b"\n// edited\n" if f.suffix in (".cpp", ".cu") else b"\n# edited\n"))
    try:
        out[rel] = params()
    finally:
        f.write_bytes(before)
print("PARAMS=" + json.dumps(out))
'''


@pytest.fixture(scope="module")
def code_params(tmp_path_factory):
    """{edited file: {rule: code param}}, with "" for the unedited tree."""
    base = tmp_path_factory.mktemp("triggers")
    repo, work = base / "repo", base / "work"
    work.mkdir()
    for rel in COPY:
        src, dst = ROOT / rel, repo / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RLHEALS_SKIP_DEVICE_CHECK": "1"}
    proc = subprocess.run([sys.executable, "-c", PROBE, str(repo), str(work), json.dumps(sorted(EXPECTED))],
                          capture_output=True, text=True, env=env, timeout=600)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("PARAMS=")]
    assert proc.returncode == 0 and line, proc.stdout[-3000:] + proc.stderr[-3000:]
    return repo, json.loads(line[0][len("PARAMS="):])


def test_every_rule_hashes_the_closure_of_its_own_script(code_params):
    repo, params = code_params
    for rule, code in params[""].items():
        script = params["scripts"][rule]
        if script is None and code is None:
            continue  # a shell rule: Snakemake's own code trigger hashes its command
        assert code is not None and script, f"rule {rule}: no code param or no script"
        path = (repo / "rules" / script).resolve()
        assert code == rlheals.code_fingerprint(path, repo / "rlheals"), f"rule {rule}: code param is not its script's"


@pytest.mark.parametrize("edited", sorted(EXPECTED))
def test_editing_a_file_changes_the_code_of_exactly_the_rules_that_run_it(code_params, edited):
    before, after = code_params[1][""], code_params[1][edited]
    changed = {rule for rule in before if before[rule] != after[rule]}
    assert changed == EXPECTED[edited], f"{edited}: changed {sorted(changed)}, expected {sorted(EXPECTED[edited])}"


def test_lazy_imports_and_aliases_are_followed(tmp_path):
    pkg = tmp_path / "rlheals"
    (pkg / "svd").mkdir(parents=True)
    (pkg / "task").mkdir()
    shutil.copy2(ROOT / "rlheals" / "__init__.py", pkg / "__init__.py")
    (pkg / "svd" / "__init__.py").write_text("")
    (pkg / "task" / "__init__.py").write_text("")
    (pkg / "svd" / "linalg.py").write_text("def f():\n    from . import _svd_cpu\n    from .helper import g\n")
    (pkg / "svd" / "helper.py").write_text("import rlheals.verifier\n")      # old flat name
    (pkg / "task" / "verifier.py").write_text("x = 1\n")
    script = tmp_path / "script.py"
    script.write_text("def main():\n    import rlheals.linalg\n")
    files, ext = rlheals.source_closure(script, pkg)
    names = {str(p.relative_to(pkg)) for p in files}
    assert names == {"__init__.py", "svd/__init__.py", "svd/linalg.py", "svd/helper.py", "task/__init__.py",
                     "task/verifier.py"}
    assert ext


def test_the_extension_list_matches_the_build():
    text = (ROOT / "csrc" / "build_svd.py").read_text()
    for name in rlheals.EXTENSIONS:
        assert name in text, f"{name} is not built by csrc/build_svd.py"
