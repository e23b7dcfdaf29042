# report stage: figures (PNG) and the scorecard of the paper's findings, registered for
# `snakemake --report report.html`; the scorecard is also printed at the end of a run.

rule plot_eval:
    input:
        eval=f"{RESULTS}/tables/eval.csv",
        losses=f"{RESULTS}/tables/sft_loss.csv",
    output:
        sft=report(f"{FIG}/sft_curves.png", caption="../report/sft_curves.rst", category="1 Evaluation"),
        rl=report(f"{FIG}/rl_forks.png", caption="../report/rl_forks.rst", category="1 Evaluation"),
    params:
        code=code_version("plot_eval"),
    log:
        "logs/plot_eval/plot_eval.log",
    conda:
        "../envs/rlheals.yaml"
    script:
        "../workflow_scripts/plot_eval.py"


rule plot_analysis:
    input:
        f"{RESULTS}/tables/analysis.csv",
    output:
        angles=report(
            expand(f"{FIG}/angles_{{ref}}.png", ref=config["analysis"]["references"]),
            caption="../report/angles.rst",
            category="2 SVD analysis",
        ),
        drift=report(f"{FIG}/drift.png", caption="../report/drift.rst", category="2 SVD analysis"),
    params:
        references=config["analysis"]["references"],
        code=code_version("plot_analysis"),
    log:
        "logs/plot_analysis/plot_analysis.log",
    conda:
        "../envs/rlheals.yaml"
    script:
        "../workflow_scripts/plot_analysis.py"


rule plot_edits:
    input:
        eval=f"{RESULTS}/tables/eval.csv",
        refs=f"{RESULTS}/tables/references.json",
    output:
        report(f"{FIG}/edits.png", caption="../report/edits.rst", category="3 Edits"),
    params:
        edits=config["edits"],
        code=code_version("plot_edits"),
    log:
        "logs/plot_edits/plot_edits.log",
    conda:
        "../envs/rlheals.yaml"
    script:
        "../workflow_scripts/plot_edits.py"


rule scorecard:
    input:
        eval=f"{RESULTS}/tables/eval.csv",
        losses=f"{RESULTS}/tables/sft_loss.csv",
        analysis=f"{RESULTS}/tables/analysis.csv",
        refs=f"{RESULTS}/tables/references.json",
        # per-hand outcomes of every (seed, checkpoint), in params.reply_keys' order
        replies=lambda wc: [eval_replies(c, s) for s in seeds() for c in eval_ckpt_ids()],
    output:
        report(f"{RESULTS}/tables/scorecard.csv", caption="../report/scorecard.rst", category="0 Scorecard"),
    params:
        edits=config["edits"],
        alpha=config["evaluation"]["alpha"],
        ratio=config["analysis"]["rotation_ratio"],
        reply_keys=lambda wc: [(s, c) for s in seeds() for c in eval_ckpt_ids()],
        boot_seed=config["seed"],
        attempts=config["evaluation"]["attempts"],
        code=code_version("scorecard"),
    log:
        "logs/scorecard/scorecard.log",
    conda:
        "../envs/rlheals.yaml"
    script:
        "../workflow_scripts/scorecard.py"


FINAL_OUTPUTS.append(report_outputs)
