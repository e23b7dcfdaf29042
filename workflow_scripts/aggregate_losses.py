"""Snakemake entry point of rule aggregate_losses: results/tables/sft_loss.csv, every
replicate's SFT loss table stacked with a `seed` column first."""
import logging
import sys

import pandas as pd

from rlheals.atomic import write_csv

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
frames = []
for seed, path in zip(snakemake.params.seeds, snakemake.input):
    frame = pd.read_csv(path)
    frame.insert(0, "seed", int(seed))
    frames.append(frame)
table = pd.concat(frames, ignore_index=True)
logging.getLogger(__name__).info("%d rows for %d seeds", len(table), len(frames))
write_csv(snakemake.output[0], table)
