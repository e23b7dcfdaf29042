"""Figure legends: success at attempt 1 beside success within N attempts when N > 1, and the
paper's ID test loss as a line of its own beside our held-out losses."""
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


def _skill_table(seeds=(0,)) -> pd.DataFrame:
    """SFT at 0/10/20 and an RL fork from 20, with the face-card reading on OOD rows."""
    rows = []
    for seed in seeds:
        for ckpt, stage, sft, algo, rl, share in [("base", "base", 0, None, None, 0.8), ("sft-10", "sft", 10, None, None, 0.5),
                                                  ("sft-20", "sft", 20, None, None, 0.1),
                                                  ("rl-grpo-20-4", "rl", 20, "grpo", 4, 0.3)]:
            for split in ("id", "ood"):
                rows.append({"seed": seed, "checkpoint": ckpt, "stage": stage, "sft_step": sft, "rl_algo": algo,
                             "rl_step": rl, "split": split, "n": 10, "attempts": 1, "successes": 0,
                             "success_rate": 0.0, "ci_low": 0.0, "ci_high": 0.3, "face_cards": 12,
                             "face_rule_rate": share if split == "ood" else 1.0,
                             "face_10_rate": 1 - share if split == "ood" else 1.0})
    return pd.DataFrame(rows)


def test_skill_panels_beside_success(tmp_path, monkeypatch):
    """The graded skill gets a panel in the SFT and the RL figures; its lines carry the OOD
    shares (not the ID ones, which are 100% under the ID rule by construction)."""
    drawn = {}
    real = plots._save

    def save(fig, path):
        drawn[path.name] = {ax.get_title(): [list(l.get_ydata()) for l in ax.get_lines()] for ax in fig.axes}
        real(fig, path)

    monkeypatch.setattr(plots, "_save", save)
    for seeds in ((0,), (0, 1, 2)):
        plots.sft_curves(_skill_table(seeds), None, tmp_path / "a.png")
        plots.rl_forks(_skill_table(seeds), tmp_path / "b.png")
        panel = drawn["a.png"]["The graded OOD skill: how the first reply writes the face cards' numbers"]
        assert [80.0, 50.0, 10.0] in [[round(v, 6) for v in line] for line in panel]  # as the rule says
        assert [20.0, 50.0, 90.0] in [[round(v, 6) for v in line] for line in panel]  # as 10
        rl_panel = drawn["b.png"]["OOD face cards written as the stated rule (first reply)"]
        assert [30.0] in [[round(v, 6) for v in line] for line in rl_panel]
    # without the columns: no skill panel
    plots.sft_curves(_table(1), None, tmp_path / "c.png")
    assert len(drawn["c.png"]) == 1
    plt.close("all")


def test_rescue_panels_beside_success(tmp_path, monkeypatch):
    """With several attempts and the rescue columns, the SFT and the RL figures get a rescue
    panel whose lines carry the rescue rates (ID and OOD, after SFT and after RL)."""
    drawn = {}
    real = plots._save

    def save(fig, path):
        drawn[path.name] = {ax.get_title(): [[round(v, 6) for v in l.get_ydata()] for l in ax.get_lines()]
                            for ax in fig.axes}
        real(fig, path)

    monkeypatch.setattr(plots, "_save", save)
    table = _table(5)
    rate = {("base", "id"): 0.0, ("base", "ood"): 0.0, ("sft-10", "id"): 0.25, ("sft-10", "ood"): 0.125,
            ("rl-ppo-10-4", "id"): 0.5, ("rl-ppo-10-4", "ood"): 0.375}
    table["rescue_rate"] = [rate[(c, s)] for c, s in zip(table["checkpoint"], table["split"])]
    table["rescue_ci_low"], table["rescue_ci_high"] = table["rescue_rate"] / 2, table["rescue_rate"] + 0.1
    plots.sft_curves(table, None, tmp_path / "a.png")
    plots.rl_forks(table, tmp_path / "b.png")
    title = "Feedback channel: failed at attempt 1, solved by 5"
    assert [0.0, 12.5] in drawn["a.png"][title] and [0.0, 25.0] in drawn["a.png"][title]
    assert [37.5] in drawn["b.png"][title] and [50.0] in drawn["b.png"][title]
    plots.sft_curves(_table(5), None, tmp_path / "c.png")  # no rescue columns: no panel
    assert title not in drawn["c.png"]
    plt.close("all")


def test_both_id_losses_are_drawn_and_named(tmp_path, monkeypatch):
    losses = pd.DataFrame({"step": [10, 20], "train_loss": [1.0, 0.5], "heldout_id_loss": [1.2, 1.4],
                           "heldout_ood_loss": [2.0, 2.5], "test_id_loss": [0.9, 0.6]})
    labels = _labels(monkeypatch, lambda: plots.sft_curves(_table(1), losses, tmp_path / "a.png"))
    assert "ID test loss (paper's: seen problems included)" in labels
    assert "ID held-out loss (ours: unseen problems)" in labels
    assert {"train loss", "OOD held-out loss"} <= set(labels)
    # a loss table logged before the test set: the other lines stay, no empty test line
    older = _labels(monkeypatch, lambda: plots.sft_curves(_table(1), losses.drop(columns="test_id_loss"),
                                                           tmp_path / "b.png"))
    assert "ID held-out loss (ours: unseen problems)" in older and not any("test loss" in t for t in older)
    assert (tmp_path / "a.png").stat().st_size > 0
