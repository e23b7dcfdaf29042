"""rlheals: reproduce and extend "RL Fine-Tuning Heals OOD Forgetting in SFT".

The package is the library behind the Snakemake workflow, split by stage like `rules/`:

- `rlheals.task`: cards, solver, verifier, prompts (the bottom: imports nothing above)
- `rlheals.data`: hand splits, pretraining corpus, tokenizer
- `rlheals.train`: models, pretraining, SFT, RL
- `rlheals.evaluation`: generation, evaluation, statistics
- `rlheals.svd`: the SVD extension (`linalg`), analysis, edits
- `rlheals.report`: references, scorecard, plots (the top)

with `config`, `checks`, `atomic`, `checkpoints` and `cli` beside them. Imports run one
way, up this list. Importing the package is cheap: heavy dependencies (torch,
transformers) are imported only by the modules that need them.

The flat names of earlier versions (`from rlheals import linalg`, `import rlheals.verifier`)
still import: they are aliases of the modules' new homes (see `_ALIASES`).
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"

# old flat module name -> its home in the stage layout
_ALIASES = {
    "cards": "task.cards", "solver": "task.solver", "verifier": "task.verifier",
    "prompts": "task.prompts",
    "corpus": "data.corpus", "tokenizer": "data.tokenizer",
    "models": "train.models", "pretrain": "train.pretrain", "sft": "train.sft", "rl": "train.rl",
    "smollm2": "train.smollm2", "trainutil": "train.common",
    "evaluate": "evaluation.evaluate", "generation": "evaluation.generation",
    "stats": "evaluation.stats",
    "linalg": "svd.linalg", "analysis": "svd.analysis", "edits": "svd.edits",
    "references": "report.references", "scorecard": "report.scorecard", "plots": "report.plots",
}


class _AliasLoader(importlib.abc.Loader):
    """Hands out the module at its new home under the old name (one module object, not a copy)."""

    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module):
        pass


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        prefix, _, leaf = fullname.partition(".")
        if prefix != __name__ or leaf not in _ALIASES:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(f"{__name__}.{_ALIASES[leaf]}"))


if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
    sys.meta_path.append(_AliasFinder())


def __getattr__(name: str):
    if name in _ALIASES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
