# evaluate stage: every checkpoint on the fixed ID and OOD hands, the aggregate table, and
# the named references (sft_best, sft_last, rl_best) that the analysis and edits resolve.


rule evaluate:
    input:
        model=lambda wc: model_dir(wc.ckpt),
        eval_id=data_file("eval_id"),
        eval_ood=data_file("eval_ood"),
    output:
        summary=f"{RESULTS}/eval/{{ckpt}}/summary.csv",
        replies=f"{RESULTS}/eval/{{ckpt}}/replies.jsonl",
    params:
        evaluation=section("evaluation", drop=("rl_intermediate", "alpha")),
        prompt_style=config["model"]["prompt_style"],
        seed=config["seed"],
        device=config["compute"]["device"],
        code=code_version("evaluation/evaluate", "evaluation/generation", "task/verifier", "task/prompts", "train/models", "evaluation/stats"),
    log:
        "logs/evaluate/{ckpt}.log",
    benchmark:
        "benchmarks/evaluate/{ckpt}.tsv"
    threads: config["compute"]["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=config["compute"]["gpus"],
    conda:
        "../envs/rlheals.yaml"
    script:
        "../workflow_scripts/evaluate.py"


rule aggregate_eval:
    input:
        summaries=lambda wc: [eval_summary(c) for c in eval_ckpt_ids()],
        losses=f"{RESULTS}/tables/sft_loss.csv",
    output:
        f"{RESULTS}/tables/eval.csv",
    params:
        ckpts=lambda wc: eval_ckpt_ids(),
        alpha=config["evaluation"]["alpha"],
        code=code_version("evaluation/evaluate", "report/references", "evaluation/stats"),
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
        summaries=lambda wc: [eval_summary(c) for c in sft_ckpt_ids() + rl_ckpt_ids(False)],
    output:
        f"{RESULTS}/tables/references.json",
    params:
        ckpts=lambda wc: sft_ckpt_ids() + rl_ckpt_ids(False),
        rl_final_step=config["rl"]["steps"],
        code=code_version("report/references"),
    log:
        "logs/select_references/select_references.log",
    conda:
        "../envs/rlheals.yaml"
    script:
        "../workflow_scripts/select_references.py"


FINAL_OUTPUTS.append(lambda: [f"{RESULTS}/tables/eval.csv", f"{RESULTS}/tables/references.json"])
