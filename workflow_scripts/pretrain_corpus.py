"""Snakemake entry point of rule pretrain_corpus: the tiny model's sub-skill corpus (rlheals.data.corpus)."""
from rlheals.atomic import write_jsonl
from rlheals.data.corpus import CorpusOptions, build_corpus
from rlheals.train.common import LOG, setup_logging

setup_logging(snakemake.log[0])
opts = CorpusOptions(size=int(snakemake.params.size), seed=int(snakemake.params.seed), mix=dict(snakemake.params.mix))
LOG.info("pretraining corpus: %d documents, seed %d, mix %s", opts.size, opts.seed, opts.mix)
write_jsonl(snakemake.output[0], build_corpus(opts))
