# rl stage: one job per (algorithm, fork) with trl (GRPO or RLOO; trl 1.16 has no PPO).
# Fork step 0 starts from the base model. Each job keeps checkpoints every rl.save_every
# steps as HF folders, writes its reward table, and resumes from its last saved state.


rule rl:
    input:
        start=lambda wc: model_dir("base") if int(wc.step) == 0 else model_dir(f"sft-{wc.step}"),
        prompts=data_file("rl_prompts"),
    output:
        models=[directory(f"{RESULTS}/models/rl-{{algo}}-{{step}}-{k}") for k in rl_save_steps()],
        table=f"{RESULTS}/tables/rl/{{algo}}-{{step}}.csv",
    params:
        rl=section("rl", drop=("fork_from", "algorithms", "steps")),
        keep=rl_save_steps(),
        seed=config["seed"],
        device=config["compute"]["device"],
        run_root=lambda wc: f"{RESULTS}/train/rl/{wc.algo}-{wc.step}",
        code=code_version("train/rl", "task/verifier", "train/models", "train/common"),
    log:
        "logs/rl/{algo}-{step}.log",
    benchmark:
        "benchmarks/rl/{algo}-{step}.tsv"
    threads: config["compute"]["threads"]
    resources:
        mem_mb=TRAIN_MEM_MB["rl"],
        runtime=TRAIN_RUNTIME_MIN["rl"],
        gpu=config["compute"]["gpus"],
    conda:
        "../envs/rlheals.yaml"
    script:
        "../workflow_scripts/rl.py"


FINAL_OUTPUTS.append(
    lambda: [model_dir(c) for c in rl_ckpt_ids(True)] + [f"{RESULTS}/tables/rl/{a}-{s}.csv" for a, s in rl_forks()]
)
