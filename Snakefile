# rlheals: SFT -> RL on GeneralPoints, evaluation, SVD analysis, edits and report.
# Run: snakemake --cores 2            (default experiment, config.yaml)
#      snakemake --cores 2 --configfile configs/smollm2.yaml
import os

from snakemake.utils import min_version

min_version("9.0")


# The default experiment; --configfile FILE merges another config on top.
configfile: os.path.join(workflow.basedir, "config.yaml")


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/base.smk"
include: "rules/sft.smk"
include: "rules/rl.smk"
include: "rules/evaluate.smk"
include: "rules/analysis.smk"
include: "rules/edits.smk"
include: "rules/report.smk"


rule all:
    input:
        get_final_output(),
    default_target: True


# Before any job: remove what killed jobs left half-written under results/ (temporaries
# whose writer is dead; a live writer's are kept) and undo an interrupted folder swap.
onstart:
    from rlheals.atomic import sweep_tree

    if os.path.isdir(RESULTS):
        for path in sweep_tree(RESULTS):
            print(f"removed the leftover of a killed job: {path}")


# At the end of a successful run, print the scorecard of the paper's findings (if built).
onsuccess:
    from rlheals.report.scorecard import print_scorecard

    print_scorecard(f"{RESULTS}/tables/scorecard.csv")
