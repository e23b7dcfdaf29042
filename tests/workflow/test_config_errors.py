"""Wrong configurations are rejected before any job runs, with a message naming the key.

Each row of CASES changes one thing in the smoke config (config.yaml + tests/configs/
smoke.yaml) and names the key the error message must mention. A few rows also go
through `snakemake -n` to show that the workflow stops before scheduling anything.
"""
from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import yaml

from rlheals import config as rc

ROOT = Path(__file__).resolve().parents[2]


def smoke_config() -> dict:
    with open(ROOT / "config.yaml") as fh:
        base = yaml.safe_load(fh)
    with open(ROOT / "tests" / "configs" / "smoke.yaml") as fh:
        return rc.merge(base, yaml.safe_load(fh))


def setter(dotted: str, value) -> Callable[[dict], None]:
    """Set a dotted key (`sft.lr`, `edits.0.k`) in a config."""

    def apply(cfg: dict) -> None:
        *parents, last = dotted.split(".")
        node = cfg
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return apply


def deleter(dotted: str) -> Callable[[dict], None]:
    def apply(cfg: dict) -> None:
        *parents, last = dotted.split(".")
        node = cfg
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        del node[last]

    return apply


def both(*fns: Callable[[dict], None]) -> Callable[[dict], None]:
    def apply(cfg: dict) -> None:
        for fn in fns:
            fn(cfg)

    return apply


# (case id, change, text the message must contain)
CASES = [
    ("unknown top-level key", setter("sft_steps", [10]), "'sft_steps'"),
    ("unknown nested key", setter("sft.learning_rate", 0.1), "'learning_rate' under 'sft'"),
    ("unknown key in an edit", setter("edits.0.strength", 2), "'strength' under 'edits[0]'"),
    ("wrong type: string for a number", setter("sft.lr", "fast"), "sft.lr"),
    ("wrong type: scalar for a list", setter("sft.steps", 10), "sft.steps"),
    ("wrong type: string for a boolean", setter("evaluation.rl_intermediate", "yes"), "evaluation.rl_intermediate"),
    ("negative learning rate", setter("sft.lr", -1e-4), "sft.lr"),
    ("zero learning rate", setter("rl.lr", 0), "rl.lr"),
    ("zero batch size", setter("sft.batch_size", 0), "sft.batch_size"),
    ("negative data size", setter("data.sft_size", -5), "data.sft_size"),
    ("zero evaluation set", setter("data.eval_size", 0), "data.eval_size"),
    ("zero validation set", setter("data.val_size", 0), "data.val_size"),
    ("unseen fraction above one", setter("data.eval_unseen", 1.5), "data.eval_unseen"),
    ("zero pretraining steps", setter("pretrain.steps", 0), "pretrain.steps"),
    ("negative seed", setter("seed", -1), "seed"),
    ("zero replicates", setter("replicates", 0), "replicates"),
    ("a replicate seed twice", setter("replicates", [1, 1]), "replicates"),
    ("replicates as text", setter("replicates", "three"), "replicates"),
    ("negative replicate seed", setter("replicates", [0, -2]), "replicates"),
    ("no SFT lengths", setter("sft.steps", []), "sft.steps"),
    ("SFT length zero", setter("sft.steps", [0, 10]), "sft.steps[0]"),
    ("fork from an untrained SFT length", setter("rl.fork_from", [10, 15]), "rl.fork_from[1]"),
    ("unknown RL algorithm", setter("rl.algorithms", ["ppx"]), "rl.algorithms[0]"),
    ("multi-turn RLOO", both(setter("rl.algorithms", ["rloo"]), setter("rl.attempts", 5)), "rl.attempts"),
    ("zero RL attempts", setter("rl.attempts", 0), "rl.attempts"),
    ("discount above one", setter("rl.gamma", 1.5), "rl.gamma"),
    ("unknown PPO key", setter("rl.ppo.kl_coef", 0.1), "'kl_coef' under 'rl.ppo'"),
    ("zero PPO clip", setter("rl.ppo.clip_range", 0), "rl.ppo.clip_range"),
    ("GAE lambda above one", setter("rl.ppo.lam", 2), "rl.ppo.lam"),
    ("edit ref to an unknown RL algorithm", setter("edits.2.target", "rl-dpo-10-4"), "edits[2].target"),
    ("RL batch not divisible by group size", setter("rl.batch_size", 6), "rl.batch_size"),
    ("one generation per prompt", setter("rl.num_generations", 1), "rl.num_generations"),
    ("RL save interval beyond the run", setter("rl.save_every", 10), "rl.save_every"),
    ("unknown model source", setter("model.source", "gpt5"), "model.source"),
    ("local model without a path", setter("model.source", "local"), "model.local_path"),
    (
        "missing local model dir",
        both(setter("model.source", "local"), setter("model.local_path", "/nonexistent/model")),
        "model.local_path",
    ),
    ("heads do not divide hidden size", setter("model.tiny.hidden_size", 33), "model.tiny.hidden_size"),
    ("kv heads do not divide heads", setter("model.tiny.num_kv_heads", 3), "model.tiny.num_kv_heads"),
    ("analysis k above matrix rank", setter("analysis.top_k", 1000), "analysis.top_k"),
    ("edit k above matrix rank", setter("edits.0.k", 1000), "edits[0].k"),
    ("edit k zero", setter("edits.0.k", 0), "edits[0].k"),
    ("unknown edit kind", setter("edits.1.kind", "rotate"), "edits[1].kind"),
    ("malformed edit ref", setter("edits.0.donor", "best"), "edits[0].donor"),
    ("values edit with another k than its directions edit", setter("edits.1.k", 2), "edits[1]': the values edit"),
    ("values edit with another donor than its directions edit", setter("edits.1.donor", "sft-10"),
     "edits[1]': the values edit"),
    ("values edit with another target than its directions edit", setter("edits.1.target", "sft-10"),
     "needs a directions edit with the same donor, target, k, layers and matrices"),
    ("edit share of the rank above 1", setter("edits.0.k", 1.5), "edits[0].k': 1.5 is not valid under any of the "
     "given schemas (expected: singular triplets edited per matrix: a count"),
    ("edit count written as a number", setter("edits.0.k", 4.0), "write a count as an integer (16, not 16.0)"),
    ("edit k sweep with a repeated value", setter("edits.0.k", [0.5, 0.5]), "edits[0].k'"),
    ("edit on a third of a 2-layer model", setter("edits.0.layers", "top"), "thirds need at least 3"),
    ("edit layers neither a range nor a third", setter("edits.0.layers", "upper"), "edits[0].layers'"),
    ("edit ref to an untrained SFT step", setter("edits.0.donor", "sft-15"), "edits[0].donor"),
    ("edit ref to an RL fork that does not exist", setter("edits.2.target", "rl-grpo-15-4"), "edits[2].target"),
    ("edit ref to an RL algorithm not run", setter("edits.2.target", "rl-rloo-10-4"), "edits[2].target"),
    ("edit ref to an RL step not kept", setter("edits.2.target", "rl-grpo-10-3"), "edits[2].target"),
    ("rl_best without RL forks", setter("rl.fork_from", []), "edits[2].target"),
    ("edit without k", deleter("edits.0.k"), "edits[0]"),
    ("edit layers reversed", setter("edits.0.layers", [1, 0]), "edits[0].layers"),
    ("edit layer beyond the model", setter("edits.0.layers", [0, 5]), "edits[0].layers"),
    ("edit name with capitals", setter("edits.0.name", "DirRestore"), "edits[0].name"),
    ("duplicate edit names (one from a sweep)", setter("edits.2.name", "dir-500"), "name 'dir-500' is used more than once"),
    ("too many attempts", setter("evaluation.attempts", 11), "evaluation.attempts"),
    ("top_p above one", setter("evaluation.top_p", 1.5), "evaluation.top_p"),
    ("unknown analysed matrix", setter("analysis.matrices", ["qkv"]), "analysis.matrices[0]"),
    ("unknown LR schedule", setter("sft.lr_schedule", "cosine"), "sft.lr_schedule"),
    ("negative GPU count", setter("compute.gpus", -1), "compute.gpus"),
    ("zero threads", setter("compute.threads", 0), "compute.threads"),
    ("zero processes", setter("compute.processes", 0), "compute.processes"),
    ("SFT batch not split by processes", setter("compute.processes", 3), "sft.batch_size"),
    ("RL batch not split by processes x accumulation",
     both(setter("compute.processes", 2), setter("compute.grad_accumulation", 4)), "rl.batch_size"),
    ("zero accumulation", setter("compute.grad_accumulation", 0), "compute.grad_accumulation"),
    ("more processes than GPUs", both(setter("compute.processes", 2), setter("compute.gpus", 1)), "compute.processes"),
    ("unknown parallelism", setter("compute.distributed", "zero3"), "compute.distributed"),
    ("deepspeed is not available", setter("compute.distributed", "deepspeed"), "compute.distributed"),
    ("FSDP in one process", setter("compute.distributed", "fsdp"), "compute.distributed"),
    ("unknown FSDP sharding", setter("compute.fsdp_sharding", "zero3"), "compute.fsdp_sharding"),
    ("bf16 on the CPU", setter("compute.mixed_precision", "bf16"), "compute.mixed_precision"),
    ("unknown precision", setter("compute.mixed_precision", "fp8"), "compute.mixed_precision"),
    ("zero kept states", setter("compute.save_total_limit", 0), "compute.save_total_limit"),
    ("unknown evaluation backend", setter("evaluation.backend", "tgi"), "evaluation.backend"),
    ("unknown device map", setter("evaluation.device_map", "everywhere"), "evaluation.device_map"),
    ("vLLM evaluation without GPUs", setter("evaluation.backend", "vllm"), "evaluation.backend"),
    ("vLLM RL without GPUs", setter("rl.vllm", True), "rl.vllm"),
    ("vLLM with a device map", both(setter("evaluation.backend", "vllm"), setter("evaluation.device_map", "auto")),
     "evaluation.device_map"),
    ("vLLM for multi-turn RL", both(setter("rl.vllm", True), setter("rl.attempts", 3)), "rl.vllm"),
    ("gradient checkpointing not a boolean", setter("compute.gradient_checkpointing", "yes"),
     "compute.gradient_checkpointing"),
]

NEEDS_NO_CUDA = [
    ("CUDA requested on a machine without it", setter("compute.device", "cuda"), "compute.device"),
    ("CUDA SVD backend on a machine without it", setter("analysis.backend", "cuda"), "analysis.backend"),
]


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def test_smoke_and_default_configs_are_valid():
    rc.validate(smoke_config())
    with open(ROOT / "config.yaml") as fh:
        rc.validate(yaml.safe_load(fh))


def test_enough_cases():
    assert len(CASES) + len(NEEDS_NO_CUDA) >= 20


@pytest.mark.parametrize("change, key", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_wrong_config_rejected(change, key):
    cfg = smoke_config()
    change(cfg)
    with pytest.raises(rc.ConfigError) as err:
        rc.validate(cfg)
    assert key in str(err.value), str(err.value)


@pytest.mark.skipif(_has_cuda(), reason="CUDA is available here")
@pytest.mark.parametrize("change, key", [c[1:] for c in NEEDS_NO_CUDA], ids=[c[0] for c in NEEDS_NO_CUDA])
def test_cuda_request_rejected_without_cuda(change, key, monkeypatch):
    monkeypatch.delenv("RLHEALS_SKIP_DEVICE_CHECK", raising=False)
    cfg = smoke_config()
    change(cfg)
    with pytest.raises(rc.ConfigError) as err:
        rc.validate(cfg)
    assert key in str(err.value), str(err.value)


def test_all_problems_reported_at_once():
    cfg = smoke_config()
    setter("rl.fork_from", [10, 15])(cfg)
    setter("edits.0.k", 1000)(cfg)
    with pytest.raises(rc.ConfigError) as err:
        rc.validate(cfg)
    assert "rl.fork_from[1]" in str(err.value) and "edits[0].k" in str(err.value)


def test_config_must_be_a_mapping():
    with pytest.raises(rc.ConfigError, match="mapping"):
        rc.validate([1, 2])


def test_unreadable_config_files(tmp_path):
    with pytest.raises(rc.ConfigError, match="does not exist"):
        rc.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sft: {steps: [10, 20\n")
    with pytest.raises(rc.ConfigError, match="not valid YAML"):
        rc.load(bad)


# Through the workflow: `snakemake -n` stops before any job, naming the key.
SNAKEMAKE_CASES = [
    ("unknown nested key", {"sft": {"learning_rate": 0.1}}, "learning_rate"),
    ("fork from an untrained SFT length", {"rl": {"fork_from": [15]}}, "rl.fork_from[0]"),
    ("missing local model dir", {"model": {"source": "local", "local_path": "/nonexistent/model"}}, "model.local_path"),
    ("negative size", {"data": {"eval_size": -3}}, "data.eval_size"),
]


@pytest.mark.parametrize("override, key", [c[1:] for c in SNAKEMAKE_CASES], ids=[c[0] for c in SNAKEMAKE_CASES])
def test_snakemake_dry_run_rejects(override, key, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(override))
    work = tmp_path / "work"
    work.mkdir()
    snakemake = Path(sys.executable).with_name("snakemake")
    cmd = [
        str(snakemake), "-n", "--cores", "1", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work),
        "--configfile", str(ROOT / "tests" / "configs" / "smoke.yaml"), str(bad),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert key in out, out
    assert "invalid configuration" in out, out
    assert "Job stats" not in out and "Building DAG" not in out, out
    assert not (work / "results").exists()


def test_rl_algorithm_names_come_from_one_list():
    from rlheals.checkpoints import ALGORITHMS, parse_ckpt

    schema = rc.load_schema()
    assert schema["properties"]["rl"]["properties"]["algorithms"]["items"]["enum"] == list(ALGORITHMS)
    assert "ppo" in ALGORITHMS
    cfg = smoke_config()
    cfg["rl"]["algorithms"] = list(ALGORITHMS)
    cfg["rl"]["attempts"] = 1  # rloo is single-turn
    cfg["edits"][2]["target"] = "rl-ppo-10-4"
    rc.validate(cfg)
    assert parse_ckpt("rl-ppo-10-4")["rl_algo"] == "ppo"


def test_edit_sweeps_expand_in_order():
    """A list of k becomes one edit per value (<name>-<thousandths>, a count as k<n>), tagged
    with its sweep; a share of 1.0 (full rank) is legal; values pair with directions per value."""
    cfg = smoke_config()
    cfg["edits"] = [
        {"name": "dir", "kind": "directions", "donor": "sft_best", "target": "sft_last", "k": [0.125, 1.0, 4]},
        {"name": "val", "kind": "values", "donor": "sft_best", "target": "sft_last", "k": [0.125, 1.0, 4]},
    ]
    out = rc.validate(cfg)["edits"]
    assert [(e["name"], e["k"], e["sweep"]) for e in out] == [
        ("dir-125", 0.125, "dir"), ("dir-1000", 1.0, "dir"), ("dir-k4", 4, "dir"),
        ("val-125", 0.125, "val"), ("val-1000", 1.0, "val"), ("val-k4", 4, "val")]
    assert rc.validate(out and {**cfg, "edits": out})["edits"] == out  # validating twice changes nothing
    # a values edit at a share has no partner at the same count (0.125 of rank 32 is 4, but a share is not a count)
    cfg["edits"][1]["k"] = [0.125, 1.0]
    cfg["edits"][0]["k"] = [4, 1.0]
    with pytest.raises(rc.ConfigError, match="the values edit 'val-125'"):
        rc.validate(cfg)
