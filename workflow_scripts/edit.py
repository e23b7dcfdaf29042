"""Snakemake entry point of rule edit: build one SVD-edited checkpoint (rlheals.svd.edits)."""
from rlheals.gpus import claim

claim(int(getattr(snakemake.resources, "gpu", 0) or 0))  # this job's own GPUs, before CUDA starts
import logging
import os
import sys

from rlheals.svd.edits import EditSpec, build_edited_model

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
os.environ.setdefault("RLHEALS_SVD_THREADS", str(snakemake.threads))
entry = dict(snakemake.params.edit)
spec = EditSpec.from_config(entry)
provenance = {"target": snakemake.params.target_ckpt, "donor": snakemake.params.donor_ckpt,
              "target_name": entry["target"], "donor_name": entry["donor"]}
logging.getLogger(__name__).info("edit %s: %s", spec, provenance)
build_edited_model(snakemake.input.target, snakemake.input.donor, snakemake.output[0], spec, provenance,
                   backend=snakemake.params.backend)
