"""Snakemake entry point of checkpoint select_references: sft_best, sft_last, rl_best of one
replicate, chosen on the validation split (rlheals.report.references)."""
import logging
import sys

from rlheals.report import references

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
refs = references.select_from_summaries(
    dict(zip(snakemake.params.ckpts, snakemake.input.summaries)), int(snakemake.params.rl_final_step),
    split=snakemake.params.split,
)
logging.getLogger(__name__).info("references: %s", {k: v for k, v in refs.items() if k in references.SYMBOLS})
references.write(snakemake.output[0], refs)
