"""Figures show success at attempt 1 beside success within N attempts when N > 1."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from rlheals.report import plots


def _table(attempts: int) -> pd.DataFrame:
    rows = []
    for ckpt, stage, sft, algo, rl in [("base", "base", 0, None, None), ("sft-10", "sft", 10, None, None),
                                        ("rl-ppo-10-4", "rl", 10, "ppo", 4)]:
        for split in ("id", "ood"):
            rows.append({"checkpoint": ckpt, "stage": stage, "sft_step": sft, "rl_algo": algo, "rl_step": rl,
                         "split": split, "n": 10, "attempts": attempts, "successes": 4, "success_rate": 0.4,
                         "ci_low": 0.2, "ci_high": 0.6, "successes_at_1": 2, "success_rate_at_1": 0.2})
    return pd.DataFrame(rows)


def _labels(monkeypatch, draw) -> list[str]:
    seen = []
    real = plots._save

    def save(fig, path):
        seen.extend(t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts())
        real(fig, path)

    monkeypatch.setattr(plots, "_save", save)
    draw()
    plt.close("all")
    return seen


def test_attempt_one_is_drawn_only_with_several_attempts(tmp_path, monkeypatch):
    many = _labels(monkeypatch, lambda: (plots.sft_curves(_table(5), None, tmp_path / "a.png"),
                                         plots.rl_forks(_table(5), tmp_path / "b.png")))
    assert "ID success (within 5)" in many and "ID success (attempt 1)" in many
    assert "after RL (ppo, attempt 1)" in many and "after RL (ppo, within 5)" in many
    one = _labels(monkeypatch, lambda: plots.sft_curves(_table(1), None, tmp_path / "c.png"))
    assert "ID success" in one and not any("attempt 1" in t for t in one)
    assert (tmp_path / "a.png").stat().st_size > 0 and (tmp_path / "b.png").stat().st_size > 0
