"""Snakemake entry point of rule plot_edits: edits beside their donor and target (rlheals.report.plots)."""
import logging
import sys

import pandas as pd

from rlheals.report import plots
from rlheals.report import references

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
combined = references.load(snakemake.input.refs)
rows = []
for seed in combined["seeds"]:
    refs = references.for_seed(combined, seed)
    rows += [{**e, "seed": int(seed), "donor_name": e["donor"], "target_name": e["target"],
              "donor": references.resolve(e["donor"], refs),
              "target": references.resolve(e["target"], refs)} for e in snakemake.params.edits]
plots.edits(pd.read_csv(snakemake.input.eval), rows, snakemake.output[0])
