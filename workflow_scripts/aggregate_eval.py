"""Snakemake entry point of rule aggregate_eval: results/tables/eval.csv (rlheals.evaluation.evaluate.aggregate)."""
import logging
import sys

from rlheals.atomic import write_csv
from rlheals.evaluation.evaluate import aggregate

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
table = aggregate(dict(zip(snakemake.params.ckpts, snakemake.input.summaries)), snakemake.input.losses,
                  alpha=float(snakemake.params.alpha))
logging.getLogger(__name__).info("%d rows for %d checkpoints", len(table), table["checkpoint"].nunique())
write_csv(snakemake.output[0], table)
