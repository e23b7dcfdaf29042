"""Snakemake entry point of rule sft: the SFT model at one length, from the shared trajectory."""
from rlheals.train.sft import SFTOptions, train_sft
from rlheals.train.common import setup_logging

setup_logging(snakemake.log[0])
opts = SFTOptions(**dict(snakemake.params.sft), seed=int(snakemake.params.seed),
                  device=snakemake.params.device, threads=snakemake.threads)
data = {k: snakemake.input[k] for k in ("train", "heldout_id", "heldout_ood")}
train_sft(snakemake.input.base, data, int(snakemake.wildcards.step), snakemake.output.model,
          snakemake.params.run_root, opts)
