"""sft_curves draws the paper's ID test loss as a line of its own beside our held-out losses."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from rlheals.report import plots


def _eval_table() -> pd.DataFrame:
    rows = []
    for ckpt, stage, sft in [("base", "base", 0), ("sft-10", "sft", 10), ("sft-20", "sft", 20)]:
        for split in ("id", "ood"):
            rows.append({"checkpoint": ckpt, "stage": stage, "sft_step": sft, "rl_algo": None, "rl_step": None,
                         "split": split, "n": 10, "attempts": 1, "successes": 4, "success_rate": 0.4,
                         "ci_low": 0.2, "ci_high": 0.6})
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


def test_both_id_losses_are_drawn_and_named(tmp_path, monkeypatch):
    losses = pd.DataFrame({"step": [10, 20], "train_loss": [1.0, 0.5], "heldout_id_loss": [1.2, 1.4],
                           "heldout_ood_loss": [2.0, 2.5], "test_id_loss": [0.9, 0.6]})
    labels = _labels(monkeypatch, lambda: plots.sft_curves(_eval_table(), losses, tmp_path / "a.png"))
    assert "ID test loss (paper's: seen problems included)" in labels
    assert "ID held-out loss (ours: unseen problems)" in labels
    assert {"train loss", "OOD held-out loss"} <= set(labels)
    # a loss table logged before the test set: the other lines stay, no empty test line
    older = _labels(monkeypatch, lambda: plots.sft_curves(_eval_table(), losses.drop(columns="test_id_loss"),
                                                           tmp_path / "b.png"))
    assert "ID held-out loss (ours: unseen problems)" in older and not any("test loss" in t for t in older)
    assert (tmp_path / "a.png").stat().st_size > 0
