"""The package layout: stages import one way (task at the bottom, report at the top), and the
flat module names of earlier versions still import.

The import graph is read from the source with `ast`, so a lazy import inside a function
counts as much as one at the top of a module.
"""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "rlheals"
# rank of each stage; a module may import its own stage, lower stages and the top-level helpers
ORDER = ["task", "data", "train", "evaluation", "svd", "report"]
FOUNDATION = {"atomic", "checks", "checkpoints", "config", "docs_config", "gpus", "resources"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rlheals"):
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("rlheals"))
    return out


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ORDER else None


def test_every_library_module_lives_in_a_stage_or_is_a_top_level_helper():
    top = {p.stem for p in PKG.glob("*.py")} - {"__init__"}
    assert top == FOUNDATION | {"cli"}, f"flat modules outside a stage: {sorted(top - FOUNDATION - {'cli'})}"
    assert {p.name for p in PKG.iterdir() if (p / "__init__.py").exists()} == set(ORDER)


def test_imports_run_one_way():
    bad = []
    for path in PKG.rglob("*.py"):
        me = _module_name(path)
        mine = _stage(me)
        for imp in _imports(path):
            theirs = _stage(imp)
            if me.split(".")[-1] in FOUNDATION and imp.split(".")[1] not in FOUNDATION and imp != "rlheals":
                bad.append(f"{me} (a top-level helper) imports {imp}")
            if mine and theirs and ORDER.index(theirs) > ORDER.index(mine):
                bad.append(f"{me} ({mine}) imports {imp} ({theirs}), a stage above it")
            if mine and imp.split(".")[1:2] == ["cli"]:
                bad.append(f"{me} imports the CLI")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("old,new", [
    ("linalg", "svd.linalg"), ("verifier", "task.verifier"), ("solver", "task.solver"),
    ("cards", "task.cards"), ("scorecard", "report.scorecard"), ("stats", "evaluation.stats"),
    ("trainutil", "train.common"),
])
def test_flat_names_still_import(old, new):
    import rlheals
    real = importlib.import_module(f"rlheals.{new}")
    assert getattr(rlheals, old) is real                         # from rlheals import linalg
    assert importlib.import_module(f"rlheals.{old}") is real     # import rlheals.linalg
    ns: dict = {}
    exec(f"from rlheals.{old} import __name__ as n", ns)        # from rlheals.linalg import ...
    assert ns["n"] == f"rlheals.{new}"


def test_data_functions_import_from_the_old_module_path():
    from rlheals.data import write_all
    from rlheals.data.splits import write_all as real
    assert write_all is real
