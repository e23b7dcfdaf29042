"""benchmarks/ablation_compare.py: two run folders paired hand by hand (success, rescue)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location("ablation_compare", ROOT / "benchmarks" / "ablation_compare.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _replies(path: Path, solved_at: list[int | None], split: str = "ood") -> None:
    """One hand per entry: solved at that attempt (1..3), or failed all 3 attempts (None)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        for hid, at in enumerate(solved_at):
            for attempt in range(1, (at or 3) + 1):
                fh.write(json.dumps({"split": split, "id": hid, "attempt": attempt,
                                     "outcome": "correct" if attempt == at else "wrong_value"}) + "\n")


def test_ablation_pairs_hands_and_counts_rescues(tmp_path, capsys):
    mod = _module()
    a, b = tmp_path / "a", tmp_path / "b"
    # 10 hands: A solves 2 at attempt 1 and rescues 1; B solves the same 2 and rescues 5 more
    _replies(a / "results/s0/eval/sft-100/replies.jsonl", [1, 1, 2] + [None] * 7)
    _replies(b / "results/s0/eval/sft-100/replies.jsonl", [1, 1, 2, 2, 3, 2, 3, 2] + [None] * 2)
    _replies(b / "results/s0/eval/rl-grpo-100-10/replies.jsonl", [None] * 10)  # in B only
    mod.main(["--a", str(a), "--b", str(b), "--out", str(tmp_path / "out"), "--label-a", "full", "--label-b", "ablated"])
    import pandas as pd

    pooled = pd.read_csv(tmp_path / "out" / "summary.csv")
    row = pooled.iloc[0]
    assert (row.a_within, row.b_within, row.a_at_1, row.b_at_1) == (3, 8, 2, 2)
    assert (row.a_failed_1, row.a_rescued, row.b_failed_1, row.b_rescued) == (8, 1, 8, 6)
    assert (row.within_b_only, row.within_a_only) == (5, 0) and row.within_p == pytest.approx(2 ** -4)
    md = (tmp_path / "out" / "summary.md").read_text()
    assert "# ablated against full" in md and "6/8 (75.0%" in md and "s0 rl-grpo-100-10 ood" in md


def test_ablation_refuses_runs_on_other_hands(tmp_path):
    mod = _module()
    a, b = tmp_path / "a", tmp_path / "b"
    _replies(a / "results/s0/eval/sft-100/replies.jsonl", [1, None, None])
    _replies(b / "results/s0/eval/sft-100/replies.jsonl", [1, None])
    with pytest.raises(SystemExit, match="other hands"):
        mod.main(["--a", str(a), "--b", str(b), "--out", str(tmp_path / "out")])
