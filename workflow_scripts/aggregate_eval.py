"""Snakemake entry point of rule aggregate_eval: results/tables/eval.csv, every replicate
(a `seed` column first), from rlheals.evaluation.evaluate.aggregate per seed."""
import logging
import sys

import pandas as pd

from rlheals.atomic import write_csv
from rlheals.evaluation.evaluate import add_edit_columns, aggregate, edit_info

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
losses = dict(zip(map(int, snakemake.params.seeds), snakemake.input.losses))
frames = []
for seed in losses:
    summaries = {ckpt: path for (s, ckpt), path in zip(snakemake.params.ckpt_keys, snakemake.input.summaries) if int(s) == seed}
    table = aggregate(summaries, losses[seed], alpha=float(snakemake.params.alpha))
    edits = {ckpt: edit_info(path) for (s, ckpt), path in zip(snakemake.params.edit_keys, snakemake.input.edit_models)
             if int(s) == seed}
    table = add_edit_columns(table, edits)
    table.insert(0, "seed", seed)
    frames.append(table)
table = pd.concat(frames, ignore_index=True)
logging.getLogger(__name__).info("%d rows for %d checkpoints x %d seeds", len(table), table["checkpoint"].nunique(),
                                 len(losses))
write_csv(snakemake.output[0], table)
