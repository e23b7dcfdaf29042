"""Snakemake entry point of rule evaluate: one checkpoint on the ID and OOD hands, and on
the validation hands where a choice needs it (rlheals.evaluation.evaluate)."""
from rlheals.gpus import claim

claim(int(getattr(snakemake.resources, "gpu", 0) or 0))  # this job's own GPUs, before CUDA starts
import logging
import sys

import torch

from rlheals.evaluation.evaluate import EvalOptions, evaluate_checkpoint

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
torch.set_num_threads(snakemake.threads)
opts = EvalOptions.from_config(dict(snakemake.params.evaluation), snakemake.params.prompt_style, int(snakemake.params.seed))
logging.getLogger(__name__).info("evaluating %s with %s", snakemake.input.model, opts)
evaluate_checkpoint(
    snakemake.input.model,
    {split: snakemake.input[{"id": "eval_id", "ood": "eval_ood"}.get(split, split)] for split in snakemake.params.splits},
    opts,
    snakemake.output.summary,
    snakemake.output.replies,
    device=snakemake.params.device,
)
