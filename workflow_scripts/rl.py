"""Snakemake entry point of rule rl: one RL fork (algorithm x start checkpoint) with trl."""
from rlheals.train.rl import RLOptions, train_rl
from rlheals.train.common import setup_logging

setup_logging(snakemake.log[0])
rl = {k: v for k, v in dict(snakemake.params.rl).items()}
opts = RLOptions(algo=snakemake.wildcards.algo, **rl, seed=int(snakemake.params.seed),
                 device=snakemake.params.device, threads=snakemake.threads)
train_rl(snakemake.input.start, snakemake.input.prompts, list(snakemake.params.keep),
         list(snakemake.output.models), snakemake.output.table, snakemake.params.run_root, opts)
