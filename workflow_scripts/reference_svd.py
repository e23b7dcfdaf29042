"""Snakemake entry point of rule reference_svd: decompose a reference model once (rlheals.svd.analysis)."""
from rlheals.gpus import claim

claim(int(getattr(snakemake.resources, "gpu", 0) or 0))  # this job's own GPUs, before CUDA starts
import logging
import os
import sys

from rlheals.svd.analysis import save_reference

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
os.environ.setdefault("RLHEALS_SVD_THREADS", str(snakemake.threads))
cfg = snakemake.params.analysis
save_reference(snakemake.input[0], cfg["matrices"], snakemake.output[0], cfg["backend"], top_k=int(cfg["top_k"]))
