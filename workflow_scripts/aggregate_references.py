"""Snakemake entry point of rule aggregate_references: results/tables/references.json,
every replicate's references (rlheals.report.references.combine)."""
import logging
import sys

from rlheals.report import references

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
combined = references.combine({int(s): references.load(p) for s, p in zip(snakemake.params.seeds, snakemake.input)})
logging.getLogger(__name__).info("references of seeds %s", list(combined["seeds"]))
references.write(snakemake.output[0], combined)
