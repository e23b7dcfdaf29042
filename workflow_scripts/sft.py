"""Snakemake entry point of rule sft: the SFT model at one length, from the shared trajectory
(in compute.processes processes when more than one: train_sft launches them)."""
from rlheals.gpus import claim

claim(int(getattr(snakemake.resources, "gpu", 0) or 0))  # this job's own GPUs, before CUDA starts
from rlheals.train.common import ComputeOptions, setup_logging
from rlheals.train.preempt import exit_if_stopped
from rlheals.train.sft import SFTOptions, train_sft

setup_logging(snakemake.log[0])
compute = ComputeOptions.coerce({**snakemake.config["compute"], **dict(snakemake.params.compute)})
opts = SFTOptions(**dict(snakemake.params.sft), seed=int(snakemake.params.seed), device=snakemake.params.device,
                  threads=max(1, snakemake.threads // compute.processes), compute=compute)
data = {k: snakemake.input[k] for k in ("train", "heldout_id", "heldout_ood", "test_id")}
with exit_if_stopped():  # SIGTERM/SIGUSR1: save, requeue in SLURM, exit 75 (resumable)
    train_sft(snakemake.input.base, data, int(snakemake.wildcards.step), snakemake.output.model,
              snakemake.params.run_root, opts)
