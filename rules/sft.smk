# sft stage: one job per SFT length, all on one shared resumable trajectory
# (results/s<seed>/train/sft/<hash>/); the list of lengths is not a param, so adding a
# length runs only the new job, and that job trains at most sft.save_every steps (or
# continues the longest run). Plus the SFT loss table.
#
# The lengths of one trajectory run one after another: the job for a length waits (via
# sft_order's marker) until the next-shorter length is exported, then continues from its
# state. Submitted all at once, they would each hold a GPU while waiting for the
# trajectory's lock. The marker is ancient() for the sft job, so inserting a length
# re-makes only the longer length's marker, never reruns the longer length itself.
SFT_TABLE = f"{RESULTS}/tables/sft_loss.csv"


localrules:
    sft_order,


rule sft_order:
    input:
        lambda wc: [model_dir(f"sft-{s}", wc.seed) for s in shorter_sft_length(wc.step)],
    output:
        touch(sft_order_marker("{seed}", "{step}")),
    log:
        "logs/sft_order/s{seed}-{step}.log",
    conda:
        "../envs/rlheals.yaml"
    shell:
        "echo 'SFT length {wildcards.step} (seed {wildcards.seed}) may start: the shorter length is exported' > {log}"


rule sft:
    input:
        base=lambda wc: model_dir("base", wc.seed),
        train=data_file("sft_train"),
        heldout_id=data_file("sft_heldout_id"),
        heldout_ood=data_file("sft_heldout_ood"),
        test_id=data_file("sft_test_id"),
        order=ancient(sft_order_marker("{seed}", "{step}")),
    output:
        model=directory(model_dir("sft-{step}", "{seed}")),
    params:
        sft=section("sft", drop=("steps",)),
        seed=lambda wc: int(wc.seed),
        device=config["compute"]["device"],
        compute=compute_params(),
        run_root=lambda wc: f"{seed_dir(wc.seed)}/train/sft",
        code=code_version("sft"),
    log:
        "logs/sft/s{seed}-{step}.log",
    benchmark:
        "benchmarks/sft/s{seed}-{step}.tsv"
    threads: train_threads()
    resources:
        mem_mb=stage_mem_mb("sft"),
        runtime=stage_runtime("sft"),
        gpu=config["compute"]["gpus"],
    conda:
        "../envs/rlheals.yaml"
    script:
        "../workflow_scripts/sft.py"


rule sft_losses:
    input:
        models=lambda wc: [model_dir(c, wc.seed) for c in sft_ckpt_ids()],
    output:
        sft_loss_file("{seed}"),
    params:
        code=code_version("sft_losses"),
    log:
        "logs/sft_losses/s{seed}.log",
    threads: 1
    resources:
        mem_mb=by_attempt(1000),
        runtime=by_attempt(5),
    conda:
        "../envs/rlheals.yaml"
    script:
        "../workflow_scripts/sft_losses.py"


# All replicates' loss tables in one, with a `seed` column.
rule aggregate_losses:
    input:
        lambda wc: [sft_loss_file(s) for s in seeds()],
    output:
        SFT_TABLE,
    params:
        seeds=lambda wc: seeds(),
        code=code_version("aggregate_losses"),
    log:
        "logs/aggregate_losses/aggregate_losses.log",
    conda:
        "../envs/rlheals.yaml"
    script:
        "../workflow_scripts/aggregate_losses.py"


FINAL_OUTPUTS.append(lambda: [model_dir(c, s) for s in seeds() for c in sft_ckpt_ids()] + [SFT_TABLE])
