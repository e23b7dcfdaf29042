# analysis stage: SVD comparison of every trained (and edited) checkpoint against each
# reference named in analysis.references (base, sft_best), one table per pair + aggregate.


# Each reference model is decomposed once; every comparison against it reuses this.
rule reference_svd:
    input:
        lambda wc: model_dir(wc.ckpt, wc.seed),
    output:
        f"{seed_dir('{seed}')}/analysis/svd/{{ckpt}}.npz",
    params:
        analysis=section("analysis", drop=("references", "rotation_ratio")),
        code=code_version("reference_svd"),
    log:
        "logs/reference_svd/s{seed}-{ckpt}.log",
    benchmark:
        "benchmarks/reference_svd/s{seed}-{ckpt}.tsv"
    threads: config["compute"]["threads"]
    resources:
        mem_mb=svd_mem_mb("reference"),
        gpu=svd_gpus(),
        runtime=by_attempt(60),
    conda:
        "../envs/rlheals.yaml"
    script:
        "../workflow_scripts/reference_svd.py"


rule analyze:
    input:
        ckpt=lambda wc: model_dir(wc.ckpt, wc.seed),
        ref=lambda wc: model_dir(resolve_ckpt(wc.ref, wc.seed), wc.seed),
        cache=lambda wc: f"{seed_dir(wc.seed)}/analysis/svd/{resolve_ckpt(wc.ref, wc.seed)}.npz",
    output:
        analysis_table("{ckpt}", "{ref}", "{seed}"),
    params:
        analysis=section("analysis", drop=("references", "rotation_ratio")),
        ref_ckpt=lambda wc: resolve_ckpt(wc.ref, wc.seed),
        code=code_version("analyze"),
    wildcard_constraints:
        ref=r"base|sft_best|sft_last|rl_best",
    log:
        "logs/analyze/s{seed}-{ckpt}--{ref}.log",
    benchmark:
        "benchmarks/analyze/s{seed}-{ckpt}--{ref}.tsv"
    threads: config["compute"]["threads"]
    resources:
        mem_mb=svd_mem_mb("analyze"),
        gpu=svd_gpus(),
        runtime=by_attempt(60),
    conda:
        "../envs/rlheals.yaml"
    script:
        "../workflow_scripts/analyze.py"


rule aggregate_analysis:
    input:
        lambda wc: [analysis_table(c, r, s) for s in seeds() for c, r in analysis_pairs()],
    output:
        f"{RESULTS}/tables/analysis.csv",
    params:
        code=code_version("aggregate_analysis"),
    log:
        "logs/aggregate_analysis/aggregate_analysis.log",
    conda:
        "../envs/rlheals.yaml"
    script:
        "../workflow_scripts/aggregate_analysis.py"


FINAL_OUTPUTS.append(lambda: [f"{RESULTS}/tables/analysis.csv"])
