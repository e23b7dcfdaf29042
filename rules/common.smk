# Shared helpers: config validation, checkpoint ids, paths, input functions.
# Every stage file uses these; nothing here runs a job.
import functools
from pathlib import Path

import rlheals
import rlheals.config
import rlheals.resources

# Validate (and fill defaults) before any job is scheduled: a bad key stops here.
try:
    config.update(rlheals.config.validate(config))
except rlheals.config.ConfigError as exc:
    raise WorkflowError(str(exc))

RESULTS = "results"
PKG = Path(workflow.basedir) / "rlheals"


# ---------------------------------------------------------------- seed replicates
# Path layout: data shared by all replicates, everything trained or evaluated per seed.
#   results/data/*.jsonl                      data sets and pretraining corpus (master seed)
#   results/s<seed>/models/<ckpt>/            checkpoints of replicate <seed> (the tiny base too;
#                                             a converted smollm2 base is shared: results/models/base)
#   results/s<seed>/train/..., eval/<ckpt>/, analysis/..., tables/...   per-seed work and tables
#   results/tables/*.csv, references.json     all seeds, with a `seed` column / key
#   results/figures/*.png                     every seed, their mean and spread
#   logs/<rule>/s<seed>-<job>.log, benchmarks/<rule>/s<seed>-<job>.tsv
def seeds():
    """Training seeds of the replicates (config `replicates`)."""
    return rlheals.config.replicate_seeds(config)


def seed_dir(seed):
    """Folder of one replicate; `seed` may be the wildcard text "{seed}"."""
    return f"{RESULTS}/s{seed}"


# ---------------------------------------------------------------- checkpoint ids
# base | sft-<step> | rl-<algo>-<sft step>-<rl step> | edit-<name>
def sft_steps():
    return sorted(config["sft"]["steps"])


def shorter_sft_length(step):
    """The configured SFT length just below `step` ([] for the shortest): the job for
    `step` continues that length's trajectory, so it waits for it (rule sft_order)."""
    below = [s for s in sft_steps() if s < int(step)]
    return [max(below)] if below else []


def sft_order_marker(seed, step):
    """Marker that SFT length `step` of replicate `seed` may start (rule sft_order)."""
    return f"{seed_dir(seed)}/train/sft-order/{step}.ready"


def rl_save_steps():
    """RL steps at which a checkpoint is kept: every save_every, plus the last."""
    rl = config["rl"]
    steps = list(range(rl["save_every"], rl["steps"] + 1, rl["save_every"]))
    if rl["steps"] not in steps:
        steps.append(rl["steps"])
    return steps


def rl_forks():
    """(algo, sft_step) pairs, one RL run each."""
    return [(a, s) for a in config["rl"]["algorithms"] for s in sorted(config["rl"]["fork_from"])]


def rl_ckpt_ids(intermediate=True):
    keep = rl_save_steps() if intermediate else [config["rl"]["steps"]]
    return [f"rl-{a}-{s}-{k}" for a, s in rl_forks() for k in keep]


def sft_ckpt_ids():
    return [f"sft-{s}" for s in sft_steps()]


def edit_ckpt_ids():
    return [f"edit-{e['name']}" for e in config["edits"]]


def eval_ckpt_ids():
    """Every checkpoint that gets evaluated."""
    return ["base"] + sft_ckpt_ids() + rl_ckpt_ids(config["evaluation"]["rl_intermediate"]) + edit_ckpt_ids()


# Splits: id and ood report (data sets eval_id, eval_ood); val_id and val_ood decide every
# choice (sft_best, rl_best, hence the edit donors), on the checkpoints chosen among.
REPORT_SPLITS = ["id", "ood"]
VAL_SPLITS = ["val_id", "val_ood"]
SELECTION_SPLIT = "val_ood"
SPLIT_DATA = {"id": "eval_id", "ood": "eval_ood", "val_id": "val_id", "val_ood": "val_ood"}


def eval_splits(ckpt):
    """Splits a checkpoint is evaluated on: the reported ones, plus validation for the
    checkpoints a reference is chosen among (every SFT length, every fork's end), plus the
    OOD validation hands for the directions edits (scorecard finding 4 chooses the share of
    the rank on them)."""
    chosen_among = set(sft_ckpt_ids()) | set(rl_ckpt_ids(False))
    if ckpt in chosen_among:
        return REPORT_SPLITS + VAL_SPLITS
    if ckpt in directions_edit_ids():
        return REPORT_SPLITS + [SELECTION_SPLIT]
    return REPORT_SPLITS


def directions_edit_ids():
    return {f"edit-{e['name']}" for e in config["edits"] if e["kind"] == "directions"}


def trained_ckpt_ids():
    """Checkpoints produced by training (analysed against the references)."""
    return sft_ckpt_ids() + rl_ckpt_ids(True)


# ---------------------------------------------------------------- paths
def model_dir(ckpt, seed):
    """Hugging Face directory of a checkpoint of replicate `seed` (a base that is not
    trained here is shared by every replicate)."""
    if ckpt == "base" and config["model"]["source"] == "local":
        return config["model"]["local_path"]
    if ckpt == "base" and config["model"]["source"] != "tiny":
        return f"{RESULTS}/models/base"
    return f"{seed_dir(seed)}/models/{ckpt}"


def rl_table(algo, step, seed):
    """Reward table of one RL fork of replicate `seed`."""
    return f"{seed_dir(seed)}/tables/rl/{algo}-{step}.csv"


def data_file(name):
    return f"{RESULTS}/data/{name}.jsonl"


@functools.lru_cache(maxsize=None)
def code_version(script):
    """Hash of all the code rule's script `workflow_scripts/<script>.py` runs, as a param, so
    that editing any of it reruns the rule (Snakemake's own code trigger sees only the
    script): the library modules it imports, followed recursively (lazy imports inside
    functions too), plus the extension's sources where it loads the compiled SVD code
    (rlheals.source_closure). Computed once per script and run."""
    path = Path(workflow.basedir) / "workflow_scripts" / f"{script}.py"
    if not path.is_file():
        raise WorkflowError(f"code_version: no workflow script '{path}'")
    return rlheals.code_fingerprint(path, PKG)


def by_attempt(base):
    """A resource (mem_mb, runtime) that grows with the attempt: `base` on the first,
    base x attempt on each retry, so a job killed for memory or time (SLURM's OOM kill,
    a time limit) is resubmitted asking for more instead of failing the same way."""

    def value(wildcards, attempt):
        return int(base * attempt)

    value.__doc__ = f"{base} x attempt"
    return value


#: compute keys that change a training job's numbers, passed as its params (so changing
#: them reruns it); gradient_checkpointing and save_total_limit change no number and the
#: training scripts read them from the config.
COMPUTE_PARAM_KEYS = ("processes", "distributed", "fsdp_sharding", "grad_accumulation", "mixed_precision")


def compute_params(algo=None):
    """The `compute` keys a training job takes as params (PPO stays one process: none)."""
    if algo == "ppo":
        return {}
    return {k: config["compute"][k] for k in COMPUTE_PARAM_KEYS}


def train_processes(algo=None):
    """Processes a training job runs (compute.processes; PPO and pretraining run one)."""
    return 1 if algo in ("ppo", "pretrain") else config["compute"]["processes"]


def train_threads(algo=None):
    """Snakemake threads of a training job: compute.threads for each of its processes."""
    return config["compute"]["threads"] * train_processes(algo)


def section(name, drop=(), at_default=()):
    """A config section as a param, without the keys that only select *which* jobs exist
    (so adding an SFT length or a fork does not rerun the jobs that already ran), nor the
    keys in `at_default` while they hold the schema's default (keys added later, so that
    runs made before them are not rerun; the scripts read them with the same defaults)."""
    schema = rlheals.config.load_schema()["properties"][name]["properties"] if at_default else {}
    return {k: v for k, v in config[name].items()
            if k not in drop and not (k in at_default and v == schema[k]["default"])}


# Final outputs are collected from the stage files that register them.
FINAL_OUTPUTS = []


def get_final_output():
    out = []
    for fn in FINAL_OUTPUTS:
        out.extend(fn())
    return out


# ---------------------------------------------------------------- evaluation, analysis, edits, report
import rlheals.report.references
import rlheals.svd.weights

FIG = f"{RESULTS}/figures"


def eval_summary(ckpt, seed):
    return f"{seed_dir(seed)}/eval/{ckpt}/summary.csv"


def eval_replies(ckpt, seed):
    return f"{seed_dir(seed)}/eval/{ckpt}/replies.jsonl"


def references_file(seed):
    return f"{seed_dir(seed)}/tables/references.json"


def sft_loss_file(seed):
    return f"{seed_dir(seed)}/tables/sft_loss.csv"


def resolve_ckpt(name, seed):
    """Checkpoint id of a config name (sft_best, rl_best, ... or an id) in replicate
    `seed`; a symbolic name makes the calling input function wait for that replicate's
    select_references."""
    refs = None
    if name in rlheals.report.references.SYMBOLS:
        refs = rlheals.report.references.load(checkpoints.select_references.get(seed=seed).output[0])
    try:
        return rlheals.report.references.resolve(name, refs)
    except ValueError as exc:
        raise WorkflowError(str(exc))


def analysis_pairs():
    """(checkpoint, reference) pairs analysed: every trained checkpoint against every
    reference; an edit against one (sft_best where listed: the edits' donor), which is
    enough to see what an edit moved and keeps a sweep of edits cheap."""
    refs = config["analysis"]["references"]
    if not refs:
        return []
    edit_ref = "sft_best" if "sft_best" in refs else refs[0]
    return [(c, r) for c in trained_ckpt_ids() for r in refs] + [(c, edit_ref) for c in edit_ckpt_ids()]


def analysis_table(ckpt, ref, seed):
    return f"{seed_dir(seed)}/analysis/{ckpt}--{ref}.csv"


def edit_config(name):
    for entry in config["edits"]:
        if entry["name"] == name:
            return entry
    raise WorkflowError(f"no edit named '{name}' in config key 'edits'")


# ---------------------------------------------------------------- SVD job resources
def model_arch():
    """config.json fields of the model every checkpoint shares (the base's architecture):
    read from the local model or the built base when it exists, else from model.tiny."""
    src = config["model"]["source"]
    path = Path(config["model"]["local_path"] if src == "local" else model_dir("base", seeds()[0])) / "config.json"
    if path.exists():
        return rlheals.svd.weights.model_config(path.parent)
    if src == "tiny":
        t = config["model"]["tiny"]
        return {"hidden_size": t["hidden_size"], "num_attention_heads": t["num_heads"],
                "num_key_value_heads": t["num_kv_heads"], "intermediate_size": t["intermediate_size"],
                "num_hidden_layers": t["num_layers"], "vocab_size": 256, "tie_word_embeddings": True}
    # SmolLM2-135M-Instruct before its conversion (a local model always has its config.json)
    return {"hidden_size": 576, "num_attention_heads": 9, "num_key_value_heads": 3, "intermediate_size": 1536,
            "num_hidden_layers": 30, "vocab_size": 49152, "tie_word_embeddings": True}


#: Prompt tokens of one hand (the compact prompt ~40, the paper's chat prompt ~350).
PROMPT_TOKENS = {"compact": 40, "chat": 400}


def job_size(stage, algo=None):
    """(mem_mb per process, estimated compute seconds) of one job of `stage` from the
    model's size and the stage's work (rlheals.resources; assumptions there)."""
    size = rlheals.resources.ModelSize.from_config(model_arch())
    c = config["compute"]
    procs = train_processes(algo if stage == "rl" else ("pretrain" if stage == "pretrain" else None))
    gpus, threads = c["gpus"], c["threads"]
    sharded = c["distributed"] == "fsdp"
    prompt = PROMPT_TOKENS[config["model"]["prompt_style"]]
    if stage == "pretrain":
        p = config["pretrain"]
        mem = rlheals.resources.train_mem_mb(size, p["batch_size"], p["max_length"])
        secs = rlheals.resources.train_seconds(size, p["steps"], p["batch_size"], p["max_length"], threads, gpus)
    elif stage == "sft":
        p = config["sft"]
        mem = rlheals.resources.train_mem_mb(size, p["batch_size"], p["max_length"], procs, sharded,
                                             c["gradient_checkpointing"])
        secs = rlheals.resources.train_seconds(size, max(p["steps"]), p["batch_size"], p["max_length"],
                                               threads * procs, gpus)
    elif stage == "rl":
        p = config["rl"]
        length = prompt + p["max_completion_length"] * p["attempts"] + 12 * (p["attempts"] - 1)
        mem = rlheals.resources.train_mem_mb(size, p["batch_size"], length, procs, sharded,
                                             c["gradient_checkpointing"])
        if p["beta"] > 0 and algo != "ppo":  # a frozen reference model for the KL term
            mem += int(4 * size.params / 2**20)
        passes = p["ppo"]["epochs"] if algo == "ppo" else 1
        secs = (rlheals.resources.train_seconds(size, p["steps"] * passes, p["batch_size"], length, threads * procs, gpus)
                + rlheals.resources.generate_seconds(size, p["steps"] * p["batch_size"], length - prompt, prompt,
                                                     threads * procs, gpus))
    elif stage == "evaluate":
        e, d = config["evaluation"], config["data"]
        length = prompt + e["max_new_tokens"] * e["attempts"]
        mem = rlheals.resources.eval_mem_mb(size, e["batch_size"], length)
        hands = 2 * d["eval_size"] + 2 * d["val_size"]
        secs = rlheals.resources.generate_seconds(size, hands * e["attempts"], e["max_new_tokens"], prompt,
                                                  threads, gpus)
    else:
        raise ValueError(f"job_size: unknown stage {stage!r}")
    return mem, secs


def stage_mem_mb(stage, algo=None):
    """mem_mb of a `stage` job from the model's size: per process x processes x attempt
    (resources callable; rlheals.resources)."""

    def value(wildcards, attempt):
        a = getattr(wildcards, "algo", algo)
        procs = train_processes(a if stage == "rl" else ("pretrain" if stage in ("pretrain", "evaluate") else None))
        return int(job_size(stage, a)[0] * procs * attempt)

    value.__doc__ = f"{stage} memory from the model's size x processes x attempt"
    return value


def stage_runtime(stage, algo=None, floor=30):
    """runtime (minutes) of a `stage` job: 3x its estimated compute, at least `floor`, x attempt."""

    def value(wildcards, attempt):
        a = getattr(wildcards, "algo", algo)
        return int(rlheals.resources.runtime_min(job_size(stage, a)[1], floor) * attempt)

    value.__doc__ = f"{stage} time from the model's size x attempt"
    return value


def svd_gpus():
    """GPUs an SVD job asks for: one when analysis.backend is cuda, or auto with GPUs in the
    config (compute.gpus); auto on a CPU job simply runs on the CPU."""
    backend = config["analysis"]["backend"]
    return 1 if backend == "cuda" or (backend == "auto" and config["compute"]["gpus"] > 0) else 0


def svd_mem_mb(task):
    """mem_mb of an SVD job from the model's largest matrix, times the attempt (resources callable)."""

    def mem(wildcards, threads, attempt):
        shape = rlheals.svd.weights.largest_matrix(model_arch())
        mb = rlheals.svd.weights.job_mem_mb(shape, task, threads, svd_gpus() > 0, config["analysis"]["top_k"])
        return int(mb * attempt)  # grows on retries, like by_attempt

    return mem


def report_outputs():
    """Figures and the scorecard of the report stage."""
    figs = [f"{FIG}/sft_curves.png", f"{FIG}/rl_forks.png", f"{FIG}/drift.png", f"{FIG}/edits.png"]
    figs += [f"{FIG}/angles_{ref}.png" for ref in config["analysis"]["references"]]
    return figs + [f"{RESULTS}/tables/scorecard.csv"]


# RL algorithm names come from the one list in rlheals.checkpoints.
import rlheals.checkpoints


wildcard_constraints:
    ckpt=rf"base|sft-\d+|rl-({rlheals.checkpoints.ALGO_PATTERN})-\d+-\d+|edit-[a-z0-9_-]+",
    step=r"\d+",
    algo=rlheals.checkpoints.ALGO_PATTERN,
    split=r"id|ood|val_id|val_ood",
    seed=r"\d+",
