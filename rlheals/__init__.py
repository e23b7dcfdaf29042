"""rlheals: reproduce and extend "RL Fine-Tuning Heals OOD Forgetting in SFT".

The package is the library behind the Snakemake workflow: the GeneralPoints task
(cards, solver, verifier, prompts), data preparation, training, evaluation, SVD
analysis and edits. Importing it is cheap: heavy dependencies (torch, transformers)
are imported only by the modules that need them.
"""

__version__ = "0.1.0"
