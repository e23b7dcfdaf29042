"""Load and check an experiment configuration before any job runs.

The JSON schema (rlheals/schemas/config.schema.yaml) catches unknown keys, wrong types
and out-of-range values; `check_semantics` catches what a schema cannot express (a fork
from an SFT length that is not trained, a missing local model, CUDA requested on a
machine without it). Every message names the key and what was expected.
"""
from __future__ import annotations

import copy
import importlib.util
import os
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).parent / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key."""


#: Why compute.distributed deepspeed is refused (the schema lists it so the error can say why).
DEEPSPEED_UNAVAILABLE = (
    "config key 'compute.distributed': deepspeed (ZeRO-3) is not available in rlheals: the deepspeed package is "
    "not part of its environment (it compiles CUDA ops when installed) and no deepspeed launch path is tested; "
    "use ddp, or fsdp with compute.fsdp_sharding full_shard (ZeRO-3's sharding of parameters, gradients and "
    "optimizer state)"
)


def load_schema() -> dict:
    """The schema, with the RL algorithm names filled in from `rlheals.checkpoints.ALGORITHMS`
    (rl.algorithms and the checkpoint-reference pattern), so the names live in one list."""
    from rlheals.checkpoints import ALGO_PATTERN, ALGORITHMS

    with open(SCHEMA_PATH) as fh:
        schema = yaml.safe_load(fh)
    schema["properties"]["rl"]["properties"]["algorithms"]["items"]["enum"] = list(ALGORITHMS)
    ref = schema["definitions"]["ckpt_ref"]
    ref["pattern"] = ref["pattern"].replace("{ALGORITHMS}", ALGO_PATTERN)
    return schema


def _key(path) -> str:
    parts = []
    for p in path:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts) or "<top level>"


def _fill_defaults(schema: dict, instance: Any, root: dict) -> None:
    if "$ref" in schema:
        ref = schema["$ref"].split("/")[-1]
        schema = {**root["definitions"][ref], **{k: v for k, v in schema.items() if k != "$ref"}}
    if isinstance(instance, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in instance and "default" in sub:
                instance[name] = copy.deepcopy(sub["default"])
            if name in instance:
                _fill_defaults(sub, instance[name], root)
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for item in instance:
            _fill_defaults(schema["items"], item, root)


def _describe(error: jsonschema.ValidationError) -> str:
    key = _key(error.absolute_path)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        where = f"under '{key}'" if error.absolute_path else "at the top level"
        return f"unknown config key {', '.join(repr(e) for e in extra)} {where}; allowed keys: {allowed}"
    expected = error.schema.get("description")
    msg = f"config key '{key}': {error.message}"
    if expected and error.validator in ("pattern", "enum", "type", "anyOf", "oneOf"):
        msg += f" (expected: {expected})"
    return msg


def validate(config: dict, check_paths: bool = True) -> dict:
    """Return a copy of `config` with defaults filled; raise ConfigError on any problem."""
    schema = load_schema()
    cfg = copy.deepcopy(config) if config is not None else {}
    if not isinstance(cfg, dict):
        raise ConfigError("the configuration must be a mapping of keys to values")
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(cfg), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(_describe(e) for e in errors))
    _fill_defaults(schema, cfg, schema)
    cfg["edits"] = expand_edits(cfg["edits"])
    check_semantics(cfg, check_paths=check_paths)
    return cfg


def edit_suffix(k: int | float) -> str:
    """Name suffix of one value of a k sweep: a share in thousandths (0.125 -> '125', 1.0 ->
    '1000'), a count as 'k16'."""
    return f"{round(1000 * k):03d}" if isinstance(k, float) else f"k{int(k)}"


def expand_edits(edits: list[dict]) -> list[dict]:
    """Edits with a list of k become one edit per value, named <name>-<suffix> and tagged
    `sweep: <name>`, in the list's order; the others are kept as they are."""
    out = []
    for entry in edits:
        if not isinstance(entry.get("k"), list):
            out.append(entry)
            continue
        for k in entry["k"]:
            one = {**entry, "k": k, "name": f"{entry['name']}-{edit_suffix(k)}", "sweep": entry["name"]}
            out.append(one)
    return out


def cuda_available() -> bool:
    """True when a CUDA device is usable; asks torch only if it is already installed."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


#: How to get vLLM (evaluation.backend vllm, rl.vllm).
VLLM_INSTALL = "pip install '.[vllm]'"


def vllm_available() -> bool:
    """True when the vllm package is importable (found without importing it: that starts CUDA)."""
    return importlib.util.find_spec("vllm") is not None


def check_semantics(cfg: dict, check_paths: bool = True) -> None:
    """Cross-key checks that a JSON schema cannot express."""
    problems: list[str] = []
    sft_steps = cfg["sft"]["steps"]
    for i, step in enumerate(cfg["rl"]["fork_from"]):
        if step != 0 and step not in sft_steps:
            problems.append(
                f"config key 'rl.fork_from[{i}]': SFT step {step} is not trained; "
                f"expected 0 (the base model) or one of sft.steps {sorted(sft_steps)}"
            )
    rl = cfg["rl"]
    if rl["attempts"] > 1 and "rloo" in rl["algorithms"]:
        problems.append(
            f"config key 'rl.attempts': {rl['attempts']} attempts need trl's rollout_func, which RLOOTrainer "
            "lacks in trl 1.16; expected rl.algorithms without rloo (grpo, ppo) or rl.attempts: 1"
        )
    if set(rl["algorithms"]) & {"grpo", "rloo"} and rl["batch_size"] % rl["num_generations"]:
        problems.append(
            f"config key 'rl.batch_size': {rl['batch_size']} must be divisible by "
            f"rl.num_generations ({rl['num_generations']})"
        )
    if rl["save_every"] > rl["steps"]:
        problems.append(f"config key 'rl.save_every': {rl['save_every']} is larger than rl.steps ({rl['steps']})")
    model = cfg["model"]
    if model["source"] == "local":
        path = model.get("local_path")
        if not path:
            problems.append("config key 'model.local_path': required when model.source is 'local'")
        elif check_paths and not (Path(path) / "config.json").is_file():
            problems.append(
                f"config key 'model.local_path': '{path}' is not a Hugging Face model directory "
                "(expected a folder with config.json and weights)"
            )
    tiny = model["tiny"]
    if tiny["hidden_size"] % tiny["num_heads"]:
        problems.append(
            f"config key 'model.tiny.hidden_size': {tiny['hidden_size']} must be divisible by model.tiny.num_heads ({tiny['num_heads']})"
        )
    if tiny["num_heads"] % tiny["num_kv_heads"]:
        problems.append(
            f"config key 'model.tiny.num_kv_heads': {tiny['num_kv_heads']} must divide model.tiny.num_heads ({tiny['num_heads']})"
        )
    if model["source"] == "tiny":
        head_dim = tiny["hidden_size"] // max(tiny["num_heads"], 1)
        smallest = min(tiny["hidden_size"], tiny["intermediate_size"], head_dim * tiny["num_kv_heads"])
        if cfg["analysis"]["top_k"] > smallest:
            problems.append(
                f"config key 'analysis.top_k': {cfg['analysis']['top_k']} exceeds the rank of the smallest "
                f"analysed matrix ({smallest}) of the tiny model"
            )
        for i, edit in enumerate(cfg["edits"]):
            if not isinstance(edit["k"], float) and edit["k"] > smallest:
                problems.append(
                    f"config key 'edits[{i}].k': {edit['k']} exceeds the rank of the smallest edited matrix "
                    f"({smallest}; a share of each matrix's rank, e.g. 0.75, or 1.0 for full rank, fits every matrix)"
                )
            layers = edit.get("layers")
            if isinstance(layers, list) and layers[1] >= tiny["num_layers"]:
                problems.append(
                    f"config key 'edits[{i}].layers': last layer {layers[1]} does not exist "
                    f"(model.tiny.num_layers is {tiny['num_layers']})"
                )
            if isinstance(layers, str) and tiny["num_layers"] < 3:
                problems.append(
                    f"config key 'edits[{i}].layers': '{layers}' is a third of the layers, but model.tiny.num_layers "
                    f"is {tiny['num_layers']} (thirds need at least 3)"
                )
    for i, edit in enumerate(cfg["edits"]):
        if isinstance(edit["k"], float) and not 0.0 < edit["k"] <= 1.0:
            problems.append(
                f"config key 'edits[{i}].k': {edit['k']} is a number, so a share of the rank, which must be in "
                "(0, 1]; write a count as an integer (16, not 16.0)"
            )
        layers = edit.get("layers")
        if isinstance(layers, list) and layers[0] > layers[1]:
            problems.append(f"config key 'edits[{i}].layers': expected [first, last] with first <= last")
    problems.extend(_edit_ref_problems(cfg))
    problems.extend(_edit_pair_problems(cfg["edits"]))
    names = [e["name"] for e in cfg["edits"]]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"config key 'edits': name '{name}' is used more than once")
    for key, value in (("compute.device", cfg["compute"]["device"]), ("analysis.backend", cfg["analysis"]["backend"])):
        if value == "cuda" and not os.environ.get("RLHEALS_SKIP_DEVICE_CHECK") and not cuda_available():
            problems.append(
                f"config key '{key}': 'cuda' requested but no CUDA device is available here (use auto or cpu; "
                "on a login node without GPUs set RLHEALS_SKIP_DEVICE_CHECK=1)"
            )
    problems.extend(_compute_problems(cfg))
    problems.extend(_vllm_problems(cfg))
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))


def _vllm_problems(cfg: dict) -> list[str]:
    """vLLM (evaluation.backend vllm, rl.vllm): installed, on GPUs, and only where our own
    loops do not generate (placement by device_map, multi-turn episodes)."""
    evaluation, rl, compute = cfg["evaluation"], cfg["rl"], cfg["compute"]
    wanted = [key for key, on in (("evaluation.backend", evaluation.get("backend") == "vllm"),
                                  ("rl.vllm", rl.get("vllm", False))) if on]
    problems = []
    for key in wanted:
        if compute["device"] == "cpu" or compute["gpus"] < 1:
            problems.append(f"config key '{key}': vLLM runs on CUDA GPUs only; expected compute.device auto or "
                            f"cuda and compute.gpus >= 1 (got device {compute['device']}, gpus {compute['gpus']})")
        if not os.environ.get("RLHEALS_SKIP_DEVICE_CHECK") and not vllm_available():
            problems.append(f"config key '{key}': vllm is not installed here; {VLLM_INSTALL} "
                            "(on a login node without it set RLHEALS_SKIP_DEVICE_CHECK=1)")
    if evaluation.get("backend") == "vllm" and evaluation.get("device_map", "single") != "single":
        problems.append("config key 'evaluation.device_map': applies to the hf backend; vLLM shards the model "
                        "over the job's GPUs itself (expected single with backend vllm)")
    if rl.get("vllm", False) and rl["attempts"] > 1 and set(rl["algorithms"]) & {"grpo", "rloo"}:
        problems.append(f"config key 'rl.vllm': multi-turn episodes (rl.attempts {rl['attempts']}) are played by "
                        "our own rollout with transformers' generate; vLLM serves single-turn GRPO/RLOO "
                        "(expected rl.attempts: 1, or rl.vllm: false)")
    return problems


def _compute_problems(cfg: dict) -> list[str]:
    """The multi-process keys: the global batches split evenly over processes x
    accumulation, one GPU per process, precision the device supports, no deepspeed."""
    compute, rl = cfg["compute"], cfg["rl"]
    split = compute["processes"] * compute["grad_accumulation"]
    problems = []
    batches = [("sft.batch_size", cfg["sft"]["batch_size"])]
    if set(rl["algorithms"]) & {"grpo", "rloo"}:
        batches.append(("rl.batch_size", rl["batch_size"]))
    for key, batch in batches:
        if batch % split:
            problems.append(
                f"config key '{key}': {batch} is not divisible by compute.processes x compute.grad_accumulation "
                f"({compute['processes']} x {compute['grad_accumulation']} = {split}); the global batch stays {key}, "
                "each process takes an equal share of it"
            )
    if compute["processes"] > 1 and compute["gpus"] > 0 and compute["processes"] != compute["gpus"]:
        problems.append(
            f"config key 'compute.processes': {compute['processes']} processes on {compute['gpus']} GPUs "
            "(compute.gpus); expected one process per GPU (processes equal to gpus), or gpus: 0 for CPU processes"
        )
    if compute["distributed"] == "deepspeed":
        problems.append(DEEPSPEED_UNAVAILABLE)
    if compute["distributed"] == "fsdp" and compute["processes"] == 1:
        problems.append("config key 'compute.distributed': fsdp shards over processes; expected compute.processes > 1 (or ddp)")
    if compute["mixed_precision"] in ("bf16", "fp16") and compute["device"] == "cpu":
        problems.append(
            f"config key 'compute.mixed_precision': {compute['mixed_precision']} with compute.device cpu; "
            "training on the CPU is fp32 here (expected auto or fp32)"
        )
    return problems


def _edit_ref_problems(cfg: dict) -> list[str]:
    """Edit donors/targets must name checkpoints this config trains (a typo such as
    sft-50 for sft-500 would otherwise fail only when the edit job runs)."""
    rl = cfg["rl"]
    rl_keep = set(range(rl["save_every"], rl["steps"] + 1, rl["save_every"])) | {rl["steps"]}
    problems = []
    for i, edit in enumerate(cfg["edits"]):
        for role in ("donor", "target"):
            ref = edit[role]
            parts = ref.split("-")
            if ref == "rl_best" and not rl["fork_from"]:
                why = "rl.fork_from is empty, so no RL checkpoint exists"
            elif parts[0] == "sft" and int(parts[1]) not in cfg["sft"]["steps"]:
                why = f"SFT step {parts[1]} is not in sft.steps {sorted(cfg['sft']['steps'])}"
            elif parts[0] == "rl" and parts[1] not in rl["algorithms"]:
                why = f"algorithm {parts[1]} is not in rl.algorithms {rl['algorithms']}"
            elif parts[0] == "rl" and int(parts[2]) not in rl["fork_from"]:
                why = f"no RL fork from SFT step {parts[2]} (rl.fork_from is {sorted(rl['fork_from'])})"
            elif parts[0] == "rl" and int(parts[3]) not in rl_keep:
                why = f"RL step {parts[3]} is not kept (kept: {sorted(rl_keep)})"
            else:
                continue
            problems.append(f"config key 'edits[{i}].{role}': '{ref}' names a checkpoint that is not trained: {why}")
    return problems


def replicate_seeds(cfg: dict) -> list[int]:
    """Training seeds of the replicates (config `replicates`): N gives seed, seed+1, ...,
    seed+N-1, so `replicates: 1` trains with the master seed alone; a list is taken as is.

    Only training (base pretraining, SFT, RL) and sampling take these seeds; the data
    sets always come from the master `seed`, so every replicate answers the same hands.
    """
    reps = cfg.get("replicates", 1)
    if isinstance(reps, list):
        return [int(s) for s in reps]
    return [int(cfg.get("seed", 0)) + i for i in range(int(reps))]


def edit_key(edit: dict) -> tuple:
    """What a directions and a values edit must share to be compared (scorecard finding 4):
    donor, target, k (same type: a share is not a count), layers and matrices."""
    layers = edit.get("layers")
    return (edit["donor"], edit["target"], type(edit["k"]).__name__, edit["k"],
            tuple(layers) if isinstance(layers, list) else layers, tuple(edit.get("matrices") or ()))


def _edit_pair_problems(edits: list[dict]) -> list[str]:
    """Every `values` edit needs a `directions` edit with the same donor, target, k, layers and
    matrices (`edit_key`): scorecard finding 4 compares the two, and only then is it fair."""
    dirs = [e for e in edits if e.get("kind") == "directions"]
    listed = ", ".join(f"'{e['name']}' ({e['donor']} -> {e['target']}, k {e['k']})" for e in dirs) or "none"
    problems = []
    for i, edit in enumerate(edits):
        if edit.get("kind") != "values":
            continue
        if any(edit_key(d) == edit_key(edit) for d in dirs):
            continue
        problems.append(
            f"config key 'edits[{i}]': the values edit '{edit['name']}' ({edit['donor']} -> {edit['target']}, "
            f"k {edit['k']}) needs a directions edit with the same donor, target, k, layers and matrices, which "
            "scorecard finding 4 "
            f"compares it with; directions edits: {listed}"
        )
    return problems


def load(path: str | os.PathLike, overrides: list[str | os.PathLike] = ()) -> dict:
    """Load a YAML config (plus override files merged on top) and validate it."""
    cfg: dict = {}
    for p in [path, *overrides]:
        try:
            with open(p) as fh:
                data = yaml.safe_load(fh) or {}
        except FileNotFoundError as exc:
            raise ConfigError(f"config file '{p}' does not exist") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file '{p}' is not valid YAML: {exc}") from exc
        cfg = merge(cfg, data)
    return validate(cfg)


def merge(base: dict, over: dict) -> dict:
    """Recursive dict merge as Snakemake does for --configfile: dicts merge, other values replace."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


#: rl keys that only select which RL jobs exist (changing them reruns no finished job).
RL_SELECT_KEYS = ("fork_from", "algorithms", "steps")
#: rl keys only trl's trainers read.
RL_TRL_ONLY_KEYS = ("num_generations", "beta", "vllm")


def rl_job_options(rl: dict, algo: str) -> dict:
    """The options one algorithm's RL job takes from config `rl` (validated): PPO gets
    `rl.ppo` flattened in and not the trl-only keys; trl's GRPO/RLOO get no `rl.ppo`, and
    single-turn runs neither `attempts` nor `gamma`, so jobs rerun only when what they
    read changes."""
    opts = {k: copy.deepcopy(v) for k, v in rl.items() if k not in RL_SELECT_KEYS}
    ppo = opts.pop("ppo", {}) or {}
    if algo == "ppo":
        return {**{k: v for k, v in opts.items() if k not in RL_TRL_ONLY_KEYS}, **ppo}
    if opts.get("attempts", 1) == 1:
        opts.pop("attempts", None)
        opts.pop("gamma", None)
    if not opts.get("vllm", False):
        opts.pop("vllm", None)
    return opts
