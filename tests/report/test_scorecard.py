"""Scorecard verdicts on synthetic tables: holds, does not hold and inconclusive cases."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rlheals.report.references import parse_ckpt, resolve, select
from rlheals.report.scorecard import COLUMNS, FAILS, HOLDS, UNSURE, build, finding1, finding2, finding3, finding4, format_table

N = 400


def _table(ood: dict[str, float], n: int = N, id_rate: float = 0.5) -> pd.DataFrame:
    rows = []
    for ckpt, rate in ood.items():
        for split, p in (("id", id_rate), ("ood", rate)):
            k = int(round(p * n))
            rows.append({"checkpoint": ckpt, **parse_ckpt(ckpt), "split": split, "n": n, "successes": k,
                         "success_rate": k / n})
    return pd.DataFrame(rows)


def _loss(steps_losses: dict[int, float]) -> pd.DataFrame:
    return pd.DataFrame({"step": list(steps_losses), "train_loss": list(steps_losses.values()),
                         "heldout_id_loss": list(steps_losses.values())})


SFT = {"base": 0.0, "sft-100": 0.10, "sft-200": 0.30, "sft-300": 0.20, "sft-400": 0.08}


# ---------------------------------------------------------------- finding 1
def test_f1_holds_when_peak_is_early_and_loss_misses_it():
    v, text = finding1(_table(SFT), _loss({100: 1.0, 200: 0.5, 300: 0.3, 400: 0.2}), 0.05)
    assert v == HOLDS and "step 200" in text and "step 400" in text


def test_f1_fails_when_ood_peaks_at_the_end():
    v, _ = finding1(_table({"sft-100": 0.1, "sft-200": 0.2, "sft-300": 0.3}), _loss({100: 1, 200: 0.5, 300: 0.2}), 0.05)
    assert v == FAILS


def test_f1_fails_when_loss_picks_the_peak():
    v, text = finding1(_table(SFT), _loss({100: 1.0, 200: 0.1, 300: 0.3, 400: 0.2}), 0.05)
    assert v == FAILS and "picks the peak" in text


def test_f1_inconclusive_within_noise():
    small = {"sft-100": 0.10, "sft-200": 0.13, "sft-300": 0.11}
    v, _ = finding1(_table(small, n=100), _loss({100: 1.0, 200: 0.5, 300: 0.2}), 0.05)
    assert v == UNSURE
    v, _ = finding1(_table(SFT), None, 0.05)
    assert v == UNSURE


# ---------------------------------------------------------------- findings 2 and 3
def _rl(gains: dict[int, float], base=SFT, algo="grpo", steps=(50, 100)):
    ood = dict(base)
    for step, after in gains.items():
        for s in steps:
            ood[f"rl-{algo}-{step}-{s}"] = after if s == steps[-1] else np.nan
    return {k: v for k, v in ood.items() if not (isinstance(v, float) and np.isnan(v))}


def test_f2_holds_with_partial_recovery():
    v, text = finding2(_table(_rl({300: 0.26, 400: 0.12})), 0.05)
    assert v == HOLDS and "recovered 60%*" in text


def test_f2_fails_when_rl_exceeds_the_peak():
    v, text = finding2(_table(_rl({300: 0.45})), 0.05)
    assert v == FAILS and "exceeds" in text


def test_f2_fails_when_no_fork_rises():
    v, _ = finding2(_table(_rl({300: 0.15, 400: 0.05})), 0.05)
    assert v == FAILS


def test_f2_inconclusive_within_noise():
    v, _ = finding2(_table(_rl({300: 0.21, 400: 0.09})), 0.05)
    assert v == UNSURE
    assert finding2(_table(SFT), 0.05)[0] == UNSURE  # no forks


def test_f3_window_holds():
    v, text = finding3(_table(_rl({100: 0.10, 300: 0.33, 400: 0.09})), 0.05)
    assert v == HOLDS and "best interior fork 300" in text


def test_f3_fails_when_an_end_recovers_most():
    v, _ = finding3(_table(_rl({100: 0.10, 300: 0.21, 400: 0.25})), 0.05)
    assert v == FAILS


def test_f3_inconclusive_with_two_forks_or_noise():
    assert finding3(_table(_rl({300: 0.28, 400: 0.09})), 0.05)[0] == UNSURE
    assert finding3(_table(_rl({100: 0.10, 300: 0.21, 400: 0.085})), 0.05)[0] == UNSURE


# ---------------------------------------------------------------- finding 4
def _analysis(sigma: float, angle: float, ckpt="sft-400", ref_ckpt="sft-200") -> pd.DataFrame:
    rows = [{"checkpoint": ckpt, "reference": "sft_best", "reference_ckpt": ref_ckpt, "layer": layer, "matrix": m,
             "sigma_rel_change_mean": sigma, "angle_left_mean": angle, "angle_right_mean": angle}
            for layer in range(2) for m in ("q_proj", "down_proj")]
    return pd.DataFrame(rows)


EDITS = [
    {"name": "dirs", "kind": "directions", "donor": "sft_best", "target": "sft_last", "k": 4},
    {"name": "vals", "kind": "values", "donor": "sft_best", "target": "sft_last", "k": 4},
]
REFS = {"sft_best": "sft-200", "sft_last": "sft-400", "rl_best": None}


def test_f4_holds():
    table = _table({**SFT, "edit-dirs": 0.2, "edit-vals": 0.08})
    v, text = finding4(table, _analysis(0.004, 0.5), EDITS, REFS, 0.05, 10)
    assert v == HOLDS and "sft-400 vs sft_best (sft-200)" in text


def test_f4_fails_on_either_part():
    table = _table({**SFT, "edit-dirs": 0.2, "edit-vals": 0.08})
    assert finding4(table, _analysis(0.2, 0.05), EDITS, REFS, 0.05, 10)[0] == FAILS  # sigma moves more
    table = _table({**SFT, "edit-dirs": 0.05, "edit-vals": 0.2})
    assert finding4(table, _analysis(0.004, 0.5), EDITS, REFS, 0.05, 10)[0] == FAILS  # values win


def test_f4_inconclusive_without_edits_or_within_noise():
    assert finding4(_table(SFT), _analysis(0.004, 0.5), EDITS, REFS, 0.05, 10)[0] == UNSURE
    table = _table({**SFT, "edit-dirs": 0.10, "edit-vals": 0.09})
    assert finding4(table, _analysis(0.004, 0.5), EDITS, REFS, 0.05, 10)[0] == UNSURE


def test_build_has_the_documented_columns():
    table = _table({**_rl({100: 0.10, 300: 0.33, 400: 0.09}), "edit-dirs": 0.2, "edit-vals": 0.08})
    card = build(table, _loss({100: 1.0, 200: 0.5, 300: 0.3, 400: 0.2}), _analysis(0.004, 0.5), EDITS, REFS)
    assert list(card.columns) == COLUMNS and card["finding"].tolist() == [1, 2, 3, 4]
    assert card["verdict"].tolist() == [HOLDS] * 4
    text = format_table(card)
    assert "[3] HOLDS" in text and "figure: rl_forks.png" in text


# ---------------------------------------------------------------- references
def test_references_select_best_last_and_rl_best():
    ood = {"sft-10": 0.2, "sft-20": 0.3, "sft-30": 0.3, "sft-40": 0.1, "rl-grpo-10-4": 0.25, "rl-grpo-10-2": 0.9,
           "rl-grpo-40-4": 0.25, "rl-rloo-10-4": 0.1}
    refs = select(ood, rl_final_step=4)
    assert (refs["sft_best"], refs["sft_last"], refs["rl_best"]) == ("sft-20", "sft-40", "rl-grpo-10-4")
    assert select(ood)["rl_best"] == "rl-grpo-10-4"
    assert select({"sft-5": 0.0})["rl_best"] is None
    assert resolve("sft_best", refs) == "sft-20" and resolve("base", None) == "base"
    with pytest.raises(ValueError, match="undefined"):
        resolve("rl_best", {"rl_best": None})
    with pytest.raises(ValueError, match="expected"):
        resolve("best", refs)
