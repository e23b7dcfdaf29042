# rl stage: one job per (algorithm, fork): grpo/rloo with trl (rlheals.train.rl), ppo with
# our own trainer and value head (rlheals.train.ppo). Fork step 0 starts from the base model.
# With rl.attempts > 1 an episode is reply, feedback, reply ... as evaluation plays it.
# Each job keeps checkpoints every rl.save_every steps as HF folders, writes its reward
# table, and resumes from its last saved state.

rule rl:
    input:
        start=lambda wc: model_dir("base" if int(wc.step) == 0 else f"sft-{wc.step}", wc.seed),
        prompts=data_file("rl_prompts"),
    output:
        models=[directory(model_dir(f"rl-{{algo}}-{{step}}-{k}", "{seed}")) for k in rl_save_steps()],
        table=rl_table("{algo}", "{step}", "{seed}"),
    params:
        rl=lambda wc: rlheals.config.rl_job_options(config["rl"], wc.algo),
        keep=rl_save_steps(),
        seed=lambda wc: int(wc.seed),
        device=config["compute"]["device"],
        compute=lambda wc: compute_params(wc.algo),
        run_root=lambda wc: f"{seed_dir(wc.seed)}/train/rl/{wc.algo}-{wc.step}",
        code=code_version("rl"),
    log:
        "logs/rl/s{seed}-{algo}-{step}.log",
    benchmark:
        "benchmarks/rl/s{seed}-{algo}-{step}.tsv"
    threads: lambda wc: train_threads(getattr(wc, "algo", None))
    resources:
        mem_mb=stage_mem_mb("rl"),
        runtime=stage_runtime("rl"),
        gpu=config["compute"]["gpus"],
    conda:
        "../envs/rlheals.yaml"
    script:
        "../workflow_scripts/rl.py"


FINAL_OUTPUTS.append(
    lambda: [model_dir(c, seed) for seed in seeds() for c in rl_ckpt_ids(True)]
    + [rl_table(a, s, seed) for seed in seeds() for a, s in rl_forks()]
)
