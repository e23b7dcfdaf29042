# edits stage: SVD-edited checkpoints (results/models/edit-<name>), evaluated by the
# evaluate rule like any other checkpoint (ckpt edit-<name>).


rule edit:
    input:
        target=lambda wc: model_dir(resolve_ckpt(edit_config(wc.name)["target"], wc.seed), wc.seed),
        donor=lambda wc: model_dir(resolve_ckpt(edit_config(wc.name)["donor"], wc.seed), wc.seed),
    output:
        directory(model_dir("edit-{name}", "{seed}")),
    params:
        edit=lambda wc: edit_config(wc.name),
        target_ckpt=lambda wc: resolve_ckpt(edit_config(wc.name)["target"], wc.seed),
        donor_ckpt=lambda wc: resolve_ckpt(edit_config(wc.name)["donor"], wc.seed),
        backend=config["analysis"]["backend"],
        code=code_version("edit"),
    wildcard_constraints:
        name=r"[a-z0-9][a-z0-9_]*(-[a-z0-9_]+)*",
    log:
        "logs/edit/s{seed}-{name}.log",
    benchmark:
        "benchmarks/edit/s{seed}-{name}.tsv"
    threads: config["compute"]["threads"]
    resources:
        mem_mb=svd_mem_mb("edit"),
        gpu=svd_gpus(),
        runtime=by_attempt(60),
    conda:
        "../envs/rlheals.yaml"
    script:
        "../workflow_scripts/edit.py"


FINAL_OUTPUTS.append(lambda: [model_dir(c, s) for s in seeds() for c in edit_ckpt_ids()])
