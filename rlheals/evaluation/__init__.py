"""Evaluation: batched generation with the verifier's feedback, per-checkpoint tables, statistics.

Owns how a checkpoint is scored on a split (attempts, decoding, per-hand outcomes) and the
statistics of rates (intervals, tests). Imports `rlheals.train` (to load models),
`rlheals.data` and `rlheals.task`; never svd or report.
"""
