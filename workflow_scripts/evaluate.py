"""Snakemake entry point of rule evaluate: one checkpoint on the ID and OOD hands (rlheals.evaluation.evaluate)."""
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
    {"id": snakemake.input.eval_id, "ood": snakemake.input.eval_ood},
    opts,
    snakemake.output.summary,
    snakemake.output.replies,
    device=snakemake.params.device,
)
