# data stage: the nine JSONL data sets (SFT, held-out, the paper's ID test set, RL prompts,
# ID/OOD validation and evaluation), kept apart by problem (rlheals.data.splits).
# The pretraining corpus of the tiny base model has its own rule (base stage).

DATA_SETS = [
    "sft_train", "sft_heldout_id", "sft_heldout_ood", "sft_test_id", "rl_prompts", "val_id", "val_ood", "eval_id",
    "eval_ood",
]


rule prepare_data:
    output:
        sft_train=data_file("sft_train"),
        sft_heldout_id=data_file("sft_heldout_id"),
        sft_heldout_ood=data_file("sft_heldout_ood"),
        sft_test_id=data_file("sft_test_id"),
        rl_prompts=data_file("rl_prompts"),
        val_id=data_file("val_id"),
        val_ood=data_file("val_ood"),
        eval_id=data_file("eval_id"),
        eval_ood=data_file("eval_ood"),
    params:
        data=section("data"),
        seed=config["seed"],
        style=config["model"]["prompt_style"],
        code=code_version("prepare_data"),
    log:
        "logs/prepare_data/prepare_data.log",
    benchmark:
        "benchmarks/prepare_data/prepare_data.tsv"
    threads: 1
    resources:
        mem_mb=by_attempt(1000),
        runtime=by_attempt(10),
    conda:
        "../envs/rlheals.yaml"
    script:
        "../workflow_scripts/prepare_data.py"


FINAL_OUTPUTS.append(lambda: [data_file(name) for name in DATA_SETS])
