"""Snakemake entry point of rule sft_losses: train/held-out loss per step along the SFT run."""
from rlheals.train.sft import sft_loss_table
from rlheals.train.common import setup_logging

setup_logging(snakemake.log[0])
sft_loss_table(list(snakemake.input.models), snakemake.output[0])
