"""Retries ask for more: a job resubmitted after running out of memory or time gets more
`mem_mb` and `runtime` on each attempt, in the rules and in the profiles' defaults."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

PROBE = r'''
import inspect, json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings

root, work = Path(sys.argv[1]), Path(sys.argv[2])
out = {}
with SnakemakeApi(OutputSettings()) as api:
    wf = api.workflow(resource_settings=ResourceSettings(), storage_settings=StorageSettings(),
                      config_settings=ConfigSettings(configfiles=[root / "tests/configs/smoke.yaml"]),
                      snakefile=root / "Snakefile", workdir=work)
    for rule in wf._workflow.rules:
        for name in ("mem_mb", "runtime"):
            if name not in rule.resources:
                continue
            res = rule.resources[name]
            if res.is_evaluable():  # the rule's function of (wildcards, [input, threads,] attempt)
                fn = res._evaluator
                params = inspect.signature(fn).parameters
                given = {"wildcards": None, "input": None, "threads": 1}

                def call(attempt):
                    if list(params) == ["wildcards", "attempt"]:
                        return fn(None, attempt)  # snakemake's Resources wrapper of a plain value
                    return fn(**{k: v for k, v in given.items() if k in params}, attempt=attempt)

                out[f"{rule.name}.{name}"] = [call(attempt) for attempt in (1, 2, 3)]
            else:
                out[f"{rule.name}.{name}"] = [res.value] * 3
print("RES=" + json.dumps(out))
'''


@pytest.fixture(scope="module")
def rule_resources(tmp_path_factory):
    work = tmp_path_factory.mktemp("work")
    proc = subprocess.run([sys.executable, "-c", PROBE, str(ROOT), str(work)], capture_output=True, text=True,
                          env={**os.environ, "RLHEALS_SKIP_DEVICE_CHECK": "1"}, timeout=300)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RES=")]
    assert proc.returncode == 0 and line, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(line[0][4:])


def test_every_rule_asks_for_more_memory_and_time_on_each_retry(rule_resources):
    assert {"sft.mem_mb", "rl.runtime", "evaluate.mem_mb", "analyze.runtime"} <= set(rule_resources)
    flat = {k: v for k, v in rule_resources.items() if not v[0] < v[1] < v[2]}
    assert not flat, f"resources that do not grow with the attempt: {flat}"
    sft = rule_resources["sft.mem_mb"]
    assert sft[1] == 2 * sft[0] and sft[2] == 3 * sft[0]


def _eval(expr, attempt):
    return eval(str(expr), {"attempt": attempt})  # as Snakemake evaluates profile resources


@pytest.mark.parametrize("profile", ["slurm", "local"])
def test_profile_defaults_and_overrides_grow_with_the_attempt(profile):
    cfg = yaml.safe_load((ROOT / "profiles" / profile / "config.v8+.yaml").read_text())
    entries = [("default-resources", cfg.get("default-resources") or {})]
    entries += [(f"set-resources.{rule}", res) for rule, res in (cfg.get("set-resources") or {}).items()]
    checked = 0
    for where, res in entries:
        for name in ("mem_mb", "runtime"):
            if name in res:
                values = [_eval(res[name], a) for a in (1, 2, 3)]
                assert values[0] < values[1] < values[2], f"{profile}: {where}.{name} = {res[name]!r} does not grow"
                checked += 1
    assert checked or profile == "local"
