"""Snakemake entry point of rule plot_eval: success vs SFT length and RL forks (rlheals.report.plots)."""
import logging
import sys

import pandas as pd

from rlheals.report import plots

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
table = pd.read_csv(snakemake.input.eval)
losses = pd.read_csv(snakemake.input.losses)
plots.sft_curves(table, losses, snakemake.output.sft)
plots.rl_forks(table, snakemake.output.rl)
