"""Snakemake entry point of rule rl: one RL fork (algorithm x start checkpoint): trl's GRPO/RLOO
(rlheals.train.rl, in compute.processes processes when more than one) or our PPO
(rlheals.train.ppo, one process)."""
from rlheals.gpus import claim

claim(int(getattr(snakemake.resources, "gpu", 0) or 0))  # this job's own GPUs, before CUDA starts
from rlheals.train.common import ComputeOptions, setup_logging
from rlheals.train.preempt import exit_if_stopped

setup_logging(snakemake.log[0])
rl = dict(snakemake.params.rl)
compute = ComputeOptions.coerce({**snakemake.config["compute"], **dict(snakemake.params.compute)})
common = dict(seed=int(snakemake.params.seed), device=snakemake.params.device)
args = (snakemake.input.start, snakemake.input.prompts, list(snakemake.params.keep), list(snakemake.output.models),
        snakemake.output.table, snakemake.params.run_root)
with exit_if_stopped():  # SIGTERM/SIGUSR1: save, requeue in SLURM, exit 75 (resumable)
    if snakemake.wildcards.algo == "ppo":
        from rlheals.train.ppo import PPOOptions, train_ppo

        train_ppo(*args, PPOOptions(**rl, **common, threads=snakemake.threads, save_total_limit=compute.save_total_limit))
    else:
        from rlheals.train.rl import RLOptions, train_rl

        train_rl(*args, RLOptions(algo=snakemake.wildcards.algo, **rl, **common, compute=compute,
                                  threads=max(1, snakemake.threads // compute.processes)))
