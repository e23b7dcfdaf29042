"""Snakemake entry point of rule scorecard: the paper's four findings on this run (rlheals.report.scorecard).

Inputs: eval.csv, sft_loss.csv, analysis.csv (a `seed` column each once there are
replicates), references.json (one replicate's references, or {"seeds": {...}}), and each
(seed, checkpoint)'s replies.jsonl (`snakemake.input.replies`, keys in
`snakemake.params.reply_keys`), whose per-hand outcomes (and
face-card readings, for finding 1's skill line) every paired test reads.
"""
import logging
import sys

import pandas as pd

from rlheals.atomic import write_csv
from rlheals.evaluation.outcomes import load_outcomes, load_readings
from rlheals.report import references, scorecard

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
keys = [tuple(k) for k in snakemake.params.reply_keys]
replies = dict(zip(keys, snakemake.input.replies))
outcomes = load_outcomes(replies)
card = scorecard.build(
    pd.read_csv(snakemake.input.eval),
    pd.read_csv(snakemake.input.losses),
    pd.read_csv(snakemake.input.analysis),
    snakemake.params.edits,
    references.load(snakemake.input.refs),
    alpha=float(snakemake.params.alpha),
    ratio=float(snakemake.params.ratio),
    outcomes=outcomes,
    readings=load_readings(replies),
    outcomes_at_1=load_outcomes(replies, max_attempt=1),
    attempts=int(snakemake.params.attempts),
    seeds=list(dict.fromkeys(k[0] for k in keys)),
    boot_seed=int(snakemake.params.boot_seed),
)
write_csv(snakemake.output[0], card)
logging.getLogger(__name__).info("%s", scorecard.format_table(card))
