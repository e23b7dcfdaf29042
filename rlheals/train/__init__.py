"""Training: model building and loading, pretraining of the tiny base, SFT, the RL forks.

Owns every stage that changes weights and its checkpoint/resume contract (`common`: run
locks, fingerprints, seeding, trainer arguments). Imports `rlheals.data` and
`rlheals.task` (rewards come from the verifier), never evaluation, svd or report.
"""
