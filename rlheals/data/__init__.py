"""Data: the hand splits and their SFT/RL/evaluation files, the pretraining corpus, the tokenizer.

Owns what the models read: which hands go to which split (and that splits stay apart),
the text of every record, and the tiny model's tokenizer. Imports `rlheals.task` and the
top-level helpers only.
"""

# `from rlheals.data import write_all` (the flat module of earlier versions) keeps working.
_SPLITS = ("SET_NAMES", "ANSWERS", "derive_seed", "eval_records", "heldout_records", "sft_records",
           "rl_records", "build_all", "write_all")


def __getattr__(name: str):
    if name in _SPLITS:
        from rlheals.data import splits
        return getattr(splits, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
