"""rlheals: reproduce and extend "RL Fine-Tuning Heals OOD Forgetting in SFT".

The package is the library behind the Snakemake workflow, split by stage like `rules/`:

- `rlheals.task`: cards, solver, verifier, prompts (the bottom: imports nothing above)
- `rlheals.data`: hand splits, pretraining corpus, tokenizer
- `rlheals.train`: models, pretraining, SFT, RL
- `rlheals.evaluation`: generation, evaluation, statistics
- `rlheals.svd`: the SVD extension (`linalg`), analysis, edits
- `rlheals.report`: references, scorecard, plots (the top)

with `config`, `checks`, `atomic`, `checkpoints`, `resources` (job sizes), `gpus` (a job's own
GPUs) and `cli` beside them. Imports run one
way, up this list. Importing the package is cheap: heavy dependencies (torch,
transformers) are imported only by the modules that need them.

The flat names of earlier versions (`from rlheals import linalg`, `import rlheals.verifier`)
still import: they are aliases of the modules' new homes (see `_ALIASES`).

`source_closure` / `code_fingerprint` say which of the package's source files a script
or module runs (its imports, followed recursively, lazy ones inside functions included,
plus the compiled extension's sources): the workflow's code triggers and the training
trajectories' keys hash exactly that, so editing any code a job runs reruns the job.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import importlib.abc
import importlib.util
import os
import sys
from pathlib import Path

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


# ---------------------------------------------------------------- which code a job runs
#: Compiled modules of the package (built from csrc/ by setup.py); dotted, under rlheals.
EXTENSIONS = ("rlheals.svd._svd_cpu", "rlheals.svd._svd_cuda")
#: Files the extension is built from, relative to the source tree (the folder above the package).
EXTENSION_SOURCES = ("csrc", "setup.py")


def _module_file(pkg: Path, name: str) -> Path | None:
    """Source file of a dotted rlheals module inside the package folder `pkg` (None: not a module)."""
    parts = name.split(".")[1:]
    if parts and parts[0] in _ALIASES:
        parts = _ALIASES[parts[0]].split(".") + parts[1:]
    base = pkg.joinpath(*parts)
    for cand in (base / "__init__.py", base.with_suffix(".py")):
        if cand.is_file():
            return cand
    return None


def _imported_names(path: Path, pkg: Path) -> set[str]:
    """Every rlheals name an import statement in `path` mentions (anywhere, lazy ones too)."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    # the package a relative import is relative to (scripts outside the package have none)
    here = list(path.relative_to(pkg.parent).parts[:-1]) if path.is_relative_to(pkg) else None
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if here is None:
                    continue
                anchor = here[: len(here) - node.level + 1]
                mod = ".".join(anchor + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names if a.name != "*")
    return {n for n in out if n == "rlheals" or n.startswith("rlheals.")}


@functools.lru_cache(maxsize=None)
def _closure(entry: str, pkg: str) -> tuple[tuple[str, ...], bool]:
    pkg_path = Path(pkg)
    start = Path(entry) if entry.endswith(".py") else _module_file(pkg_path, entry)
    if start is None:
        raise ModuleNotFoundError(f"source_closure: no module {entry!r} in {pkg}")
    seen: set[Path] = set()
    uses_ext = False
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imported_names(path, pkg_path):
            canon = name
            parts = name.split(".")
            if len(parts) > 1 and parts[1] in _ALIASES:
                canon = ".".join(["rlheals"] + _ALIASES[parts[1]].split(".") + parts[2:])
            if canon in EXTENSIONS:
                uses_ext = True
            # importing a.b.c runs the __init__ of every package on the way
            for i in range(1, len(canon.split(".")) + 1):
                f = _module_file(pkg_path, ".".join(canon.split(".")[:i]))
                if f is not None and f not in seen:
                    todo.append(f)
    files = sorted(str(p) for p in seen if p.is_relative_to(pkg_path))
    return tuple(files), uses_ext


def source_closure(entry: str | os.PathLike, package_dir: str | os.PathLike | None = None) -> tuple[list[Path], bool]:
    """(library source files `entry` runs, whether it loads the compiled extension).

    `entry` is a script path (``workflow_scripts/sft.py``) or a dotted module name
    (``rlheals.train.sft``). Imports are read with `ast`, so a lazy import inside a
    function counts; they are followed through the package recursively, every package
    `__init__` on the way included, and old flat names are resolved through the aliases.
    `package_dir` is the rlheals folder to read (default: this one). Computed once per
    entry and process (a workflow run reads the sources once).
    """
    pkg = Path(package_dir or Path(__file__).parent).resolve()
    entry = str(Path(entry).resolve()) if str(entry).endswith(".py") else str(entry)
    files, ext = _closure(entry, str(pkg))
    return [Path(f) for f in files], ext


def _hash_tree(h, root: Path, rel: str) -> None:
    target = root / rel
    paths = sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() else [target]
    for p in paths:
        if p.is_file() and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() + b"\0")


def code_fingerprint(entry: str | os.PathLike, package_dir: str | os.PathLike | None = None) -> str:
    """Short hash of the code `entry` runs: its source closure, plus, when it loads the
    compiled extension, the extension's sources (csrc/, setup.py) or, in an installed
    package without them, the built binaries."""
    pkg = Path(package_dir or Path(__file__).parent).resolve()
    files, ext = source_closure(entry, pkg)
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(pkg.parent)).encode() + b"\0" + f.read_bytes() + b"\0")
    if ext:
        tree = pkg.parent
        if (tree / EXTENSION_SOURCES[0]).is_dir():
            for rel in EXTENSION_SOURCES:
                if (tree / rel).exists():
                    _hash_tree(h, tree, rel)
        else:
            for name in EXTENSIONS:
                leaf = name.split(".")
                for so in sorted(pkg.joinpath(*leaf[1:-1]).glob(leaf[-1] + ".*")):
                    if so.suffix in (".so", ".pyd"):
                        h.update(so.name.encode() + b"\0" + so.read_bytes())
    return h.hexdigest()[:16]
