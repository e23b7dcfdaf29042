"""Snakemake entry point of rule rl: one RL fork (algorithm x start checkpoint): trl's GRPO/RLOO
(rlheals.train.rl) or our PPO (rlheals.train.ppo)."""
from rlheals.train.common import setup_logging

setup_logging(snakemake.log[0])
rl = dict(snakemake.params.rl)
common = dict(seed=int(snakemake.params.seed), device=snakemake.params.device, threads=snakemake.threads)
args = (snakemake.input.start, snakemake.input.prompts, list(snakemake.params.keep), list(snakemake.output.models),
        snakemake.output.table, snakemake.params.run_root)
if snakemake.wildcards.algo == "ppo":
    from rlheals.train.ppo import PPOOptions, train_ppo

    train_ppo(*args, PPOOptions(**rl, **common))
else:
    from rlheals.train.rl import RLOptions, train_rl

    train_rl(*args, RLOptions(algo=snakemake.wildcards.algo, **rl, **common))
