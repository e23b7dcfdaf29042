"""Snakemake entry point of rule analyze: one checkpoint against one reference (rlheals.svd.analysis)."""
from rlheals.gpus import claim

claim(int(getattr(snakemake.resources, "gpu", 0) or 0))  # this job's own GPUs, before CUDA starts
import logging
import os
import sys

from rlheals.svd.analysis import analyze

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
os.environ.setdefault("RLHEALS_SVD_THREADS", str(snakemake.threads))
cfg = snakemake.params.analysis
labels = {"checkpoint": snakemake.wildcards.ckpt, "reference": snakemake.wildcards.ref,
          "reference_ckpt": snakemake.params.ref_ckpt}
labels["seed"] = int(snakemake.wildcards.seed)  # a leading column, as in every table of a seed
# rows are written as each group of matrices finishes, renamed into place at the end
analyze(snakemake.input.ckpt, snakemake.input.ref, int(cfg["top_k"]), cfg["matrices"], labels, cfg["backend"],
        cache=snakemake.input.cache, out=snakemake.output[0], seed=int(snakemake.wildcards.seed))
