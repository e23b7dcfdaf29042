"""Snakemake entry point of rule plot_analysis: angle heatmaps and sigma vs angle drift (rlheals.report.plots)."""
import logging
import sys

import pandas as pd

from rlheals.report import plots

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
table = pd.read_csv(snakemake.input[0])
for ref, path in zip(snakemake.params.references, snakemake.output.angles):
    plots.angle_heatmaps(table, ref, path)
plots.drift(table, snakemake.output.drift)
