"""Snakemake entry point of rule scorecard: the paper's four findings on this run (rlheals.report.scorecard).

Inputs: eval.csv, sft_loss.csv and analysis.csv of every replicate (a `seed` column each),
references.json ({"seeds": {...}}), and each (seed, checkpoint)'s replies.jsonl
(`snakemake.input.replies`, keys in `snakemake.params.reply_keys`) for paired statistics.
Until the scorecard judges pooled per-hand outcomes, it is built per replicate and the
rows are stacked with a `seed` column.
"""
import logging
import sys

import pandas as pd

from rlheals.atomic import write_csv
from rlheals.report import references, scorecard

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
eval_table = pd.read_csv(snakemake.input.eval)
losses = pd.read_csv(snakemake.input.losses)
analysis = pd.read_csv(snakemake.input.analysis)
refs = references.load(snakemake.input.refs)
cards = []
for seed in map(int, snakemake.params.seeds):
    card = scorecard.build(
        eval_table[eval_table["seed"] == seed].drop(columns="seed"),
        losses[losses["seed"] == seed].drop(columns="seed"),
        analysis[analysis["seed"] == seed].drop(columns="seed"),
        snakemake.params.edits,
        references.for_seed(refs, seed),
        alpha=float(snakemake.params.alpha),
        ratio=float(snakemake.params.ratio),
    )
    card.insert(0, "seed", seed)
    cards.append(card)
card = pd.concat(cards, ignore_index=True)
write_csv(snakemake.output[0], card)
logging.getLogger(__name__).info("%s", scorecard.format_table(card))
