# edits stage: SVD-edited checkpoints (results/models/edit-<name>), evaluated by the
# evaluate rule like any other checkpoint (ckpt edit-<name>).


rule edit:
    input:
        target=lambda wc: model_dir(resolve_ckpt(edit_config(wc.name)["target"])),
        donor=lambda wc: model_dir(resolve_ckpt(edit_config(wc.name)["donor"])),
    output:
        directory(f"{RESULTS}/models/edit-{{name}}"),
    params:
        edit=lambda wc: edit_config(wc.name),
        target_ckpt=lambda wc: resolve_ckpt(edit_config(wc.name)["target"]),
        donor_ckpt=lambda wc: resolve_ckpt(edit_config(wc.name)["donor"]),
        code=code_version("svd/edits", "svd/linalg"),
    wildcard_constraints:
        name=r"[a-z0-9][a-z0-9_]*(-[a-z0-9_]+)*",
    log:
        "logs/edit/{name}.log",
    benchmark:
        "benchmarks/edit/{name}.tsv"
    threads: config["compute"]["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/rlheals.yaml"
    script:
        "../workflow_scripts/edit.py"


FINAL_OUTPUTS.append(lambda: [model_dir(c) for c in edit_ckpt_ids()])
