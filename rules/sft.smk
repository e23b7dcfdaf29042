# sft stage: one job per SFT length, all on one shared resumable trajectory
# (results/train/sft/<hash>/); the list of lengths is not a param, so adding a length
# runs only the new job, and that job trains at most sft.save_every steps (or continues
# the longest run). Plus the SFT loss table.
SFT_TABLE = f"{RESULTS}/tables/sft_loss.csv"


rule sft:
    input:
        base=model_dir("base"),
        train=data_file("sft_train"),
        heldout_id=data_file("sft_heldout_id"),
        heldout_ood=data_file("sft_heldout_ood"),
    output:
        model=directory(f"{RESULTS}/models/sft-{{step}}"),
    params:
        sft=section("sft", drop=("steps",)),
        seed=config["seed"],
        device=config["compute"]["device"],
        run_root=f"{RESULTS}/train/sft",
        code=code_version("train/sft", "train/models", "data/tokenizer", "train/common"),
    log:
        "logs/sft/{step}.log",
    benchmark:
        "benchmarks/sft/{step}.tsv"
    threads: config["compute"]["threads"]
    resources:
        mem_mb=TRAIN_MEM_MB["sft"],
        runtime=TRAIN_RUNTIME_MIN["sft"],
        gpu=config["compute"]["gpus"],
    conda:
        "../envs/rlheals.yaml"
    script:
        "../workflow_scripts/sft.py"


rule sft_losses:
    input:
        models=expand(f"{RESULTS}/models/sft-{{step}}", step=sft_steps()),
    output:
        SFT_TABLE,
    params:
        code=code_version("train/sft"),
    log:
        "logs/sft_losses/sft_losses.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/rlheals.yaml"
    script:
        "../workflow_scripts/sft_losses.py"


FINAL_OUTPUTS.append(lambda: [model_dir(c) for c in sft_ckpt_ids()] + [SFT_TABLE])
