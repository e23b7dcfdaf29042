"""Snakemake entry point of rule aggregate_analysis: results/tables/analysis.csv."""
import logging
import sys

from rlheals.svd.analysis import aggregate
from rlheals.atomic import write_csv

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
table = aggregate(list(snakemake.input))
logging.getLogger(__name__).info("%d rows from %d comparisons", len(table), len(snakemake.input))
write_csv(snakemake.output[0], table)
