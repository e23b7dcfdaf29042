"""Snakemake entry point of rule base_model (model.source tiny): build and pretrain the tiny model."""
from rlheals.gpus import claim

claim(int(getattr(snakemake.resources, "gpu", 0) or 0))  # this job's own GPUs, before CUDA starts
from rlheals.train.pretrain import PretrainOptions, pretrain
from rlheals.train.common import setup_logging
from rlheals.train.preempt import exit_if_stopped

setup_logging(snakemake.log[0])
p = dict(snakemake.params.pretrain)
opts = PretrainOptions(
    steps=p["steps"], batch_size=p["batch_size"], lr=p["lr"], warmup_steps=p["warmup_steps"],
    max_length=p["max_length"], seed=int(snakemake.params.seed), device=snakemake.params.device,
    threads=snakemake.threads,
)
with exit_if_stopped():  # SIGTERM/SIGUSR1: save, requeue in SLURM, exit 75 (resumable)
    pretrain(dict(snakemake.params.tiny), snakemake.input.corpus, snakemake.output.model, snakemake.output.table,
             snakemake.params.run_root, opts)
