"""Snakemake entry point of rule prepare_data: write the data sets (see rlheals.data.splits)."""
import logging
import sys

from rlheals.data.splits import SET_NAMES, write_all

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
logging.getLogger(__name__).info(
    "data %s, seed %s, prompt style %s", snakemake.params.data, snakemake.params.seed, snakemake.params.style
)
write_all(
    {name: snakemake.output[name] for name in SET_NAMES},
    dict(snakemake.params.data),
    int(snakemake.params.seed),
    snakemake.params.style,
)
