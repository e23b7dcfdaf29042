# evaluate stage: every checkpoint on the fixed ID and OOD hands (they only report), the
# checkpoints a choice is made among (SFT, RL fork ends) on the validation hands too, the
# aggregate table, and the named references (sft_best, sft_last, rl_best), chosen on the
# validation hands, that the analysis and edits resolve.


rule evaluate:
    input:
        model=lambda wc: model_dir(wc.ckpt, wc.seed),
        eval_id=data_file("eval_id"),
        eval_ood=data_file("eval_ood"),
        val_id=data_file("val_id"),
        val_ood=data_file("val_ood"),
    output:
        summary=eval_summary("{ckpt}", "{seed}"),
        replies=eval_replies("{ckpt}", "{seed}"),
    params:
        evaluation=section("evaluation", drop=("rl_intermediate", "alpha"), at_default=("backend", "device_map")),
        splits=lambda wc: eval_splits(wc.ckpt),
        prompt_style=config["model"]["prompt_style"],
        seed=lambda wc: int(wc.seed),
        device=config["compute"]["device"],
        code=code_version("evaluate"),
    log:
        "logs/evaluate/s{seed}-{ckpt}.log",
    benchmark:
        "benchmarks/evaluate/s{seed}-{ckpt}.tsv"
    threads: config["compute"]["threads"]
    resources:
        mem_mb=stage_mem_mb("evaluate"),
        runtime=stage_runtime("evaluate"),
        gpu=config["compute"]["gpus"],
    conda:
        "../envs/rlheals.yaml"
    script:
        "../workflow_scripts/evaluate.py"


rule aggregate_eval:
    input:
        summaries=lambda wc: [eval_summary(c, s) for s in seeds() for c in eval_ckpt_ids()],
        losses=lambda wc: [sft_loss_file(s) for s in seeds()],
        edit_models=lambda wc: [model_dir(c, s) for s in seeds() for c in edit_ckpt_ids()],
    output:
        f"{RESULTS}/tables/eval.csv",
    params:
        ckpt_keys=lambda wc: [(s, c) for s in seeds() for c in eval_ckpt_ids()],
        edit_keys=lambda wc: [(s, c) for s in seeds() for c in edit_ckpt_ids()],
        seeds=lambda wc: seeds(),
        alpha=config["evaluation"]["alpha"],
        code=code_version("aggregate_eval"),
    log:
        "logs/aggregate_eval/aggregate_eval.log",
    conda:
        "../envs/rlheals.yaml"
    script:
        "../workflow_scripts/aggregate_eval.py"


# sft_best / sft_last / rl_best are known only once SFT and RL checkpoints are evaluated;
# rules that need them call resolve_ckpt(), which waits for this checkpoint.
checkpoint select_references:
    input:
        summaries=lambda wc: [eval_summary(c, wc.seed) for c in sft_ckpt_ids() + rl_ckpt_ids(False)],
    output:
        references_file("{seed}"),
    params:
        ckpts=lambda wc: sft_ckpt_ids() + rl_ckpt_ids(False),
        rl_final_step=config["rl"]["steps"],
        split=SELECTION_SPLIT,
        code=code_version("select_references"),
    log:
        "logs/select_references/s{seed}.log",
    conda:
        "../envs/rlheals.yaml"
    script:
        "../workflow_scripts/select_references.py"


# Every replicate's references in one file: {"seeds": {"<seed>": references}}.
rule aggregate_references:
    input:
        lambda wc: [references_file(s) for s in seeds()],
    output:
        f"{RESULTS}/tables/references.json",
    params:
        seeds=lambda wc: seeds(),
        code=code_version("aggregate_references"),
    log:
        "logs/aggregate_references/aggregate_references.log",
    conda:
        "../envs/rlheals.yaml"
    script:
        "../workflow_scripts/aggregate_references.py"


FINAL_OUTPUTS.append(lambda: [f"{RESULTS}/tables/eval.csv", f"{RESULTS}/tables/references.json"])
