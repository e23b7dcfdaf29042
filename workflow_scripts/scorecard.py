"""Snakemake entry point of rule scorecard: the paper's four findings on this run (rlheals.report.scorecard)."""
import logging
import sys

import pandas as pd

from rlheals.report import references
from rlheals.report import scorecard
from rlheals.atomic import write_csv

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
card = scorecard.build(
    pd.read_csv(snakemake.input.eval),
    pd.read_csv(snakemake.input.losses),
    pd.read_csv(snakemake.input.analysis),
    snakemake.params.edits,
    references.load(snakemake.input.refs),
    alpha=float(snakemake.params.alpha),
    ratio=float(snakemake.params.ratio),
)
write_csv(snakemake.output[0], card)
logging.getLogger(__name__).info("%s", scorecard.format_table(card))
