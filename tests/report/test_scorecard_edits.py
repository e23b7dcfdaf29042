"""Scorecard finding 4's edit half on a sweep of shares of the rank: Holm over the shares,
the share to quote chosen on the OOD validation hands, the paper's measures beside ours."""
from __future__ import annotations

import numpy as np
import pandas as pd

from test_scorecard import LOSS, N, SFT, _refs, _rotation_pairs, _rows, _verdict, _world

from rlheals.config import expand_edits
from rlheals.svd import linalg
from rlheals.report.scorecard import FAILS, HOLDS, UNSURE, build, edit_pairs

SHARES = [0.25, 0.5, 0.75]
SWEEP = expand_edits([
    {"name": "dir", "kind": "directions", "donor": "sft_best", "target": "sft_last", "k": SHARES},
    {"name": "val", "kind": "values", "donor": "sft_best", "target": "sft_last", "k": SHARES},
    {"name": "dir-top", "kind": "directions", "donor": "sft_best", "target": "sft_last", "k": 0.75, "layers": "top"},
    {"name": "reverse", "kind": "directions", "donor": "sft_last", "target": "rl_best", "k": 0.75},
])


def _sweep_card(dirs: list[float], vals: list[float], val_ood: dict | None = None):
    """SFT (peak sft-200 at 30%, target sft-400 at 8%) plus the sweep at the given OOD rates;
    val_ood: {edit ckpt: validation rate} adds the OOD validation outcomes."""
    ood = {**SFT, **{f"edit-dir-{round(1000 * s):03d}": r for s, r in zip(SHARES, dirs)},
           **{f"edit-val-{round(1000 * s):03d}": r for s, r in zip(SHARES, vals)},
           "edit-dir-top": 0.10, "rl-grpo-400-10": 0.10, "edit-reverse": 0.02}
    table, outcomes = _world({0: ood})
    for ckpt, rate in (val_ood or {}).items():
        ids = [f"val_ood-{i:05d}" for i in range(100)]
        outcomes[(0, ckpt, "val_ood")] = pd.Series(np.arange(100) < round(100 * rate), index=ids)
    refs = _refs({c: r for c, r in ood.items() if not c.startswith("edit")}, "val_ood")
    pairs = _rotation_pairs()
    rows = _rows(pairs)
    for side in ("left", "right"):
        rows[f"proj_dist_{side}"] = [linalg.compare(w0, w, 4)[f"proj_dist_{side}"] for w0, w in pairs]
    return build(table, LOSS, rows, SWEEP, refs, outcomes=outcomes)


def test_pairs_are_matched_by_share_and_layers():
    pairs = [(d["name"], v["name"]) for d, v in edit_pairs(SWEEP)]
    assert pairs == [("dir-250", "val-250"), ("dir-500", "val-500"), ("dir-750", "val-750")]


def test_one_strong_share_holds_after_holm():
    card = _sweep_card([0.08, 0.09, 0.20], [0.08, 0.08, 0.08])
    v, text = _verdict(card, 4)
    assert v == HOLDS, text
    assert "Holm over 3 shares" in text and "75% of the rank" in text
    # the layer-range and reverse edits are reported beside, not tested
    assert "dir-top (directions 75% of the rank, layers top" in text and "reverse (directions" in text


def test_a_weak_share_does_not_survive_holm():
    """+4 hands of 400 at one share (4 vs 0 discordant): p = 0.125 alone, not below alpha."""
    card = _sweep_card([0.08, 0.08, 0.08 + 4 / N], [0.08, 0.08, 0.08])
    v, text = _verdict(card, 4)
    assert v == UNSURE and "within noise at every share" in text


def test_values_beating_directions_fails():
    v, text = _verdict(_sweep_card([0.02, 0.08, 0.08], [0.15, 0.08, 0.08]), 4)
    assert v == FAILS and "a value swap beats the direction restore" in text


def test_share_to_quote_is_chosen_on_validation_hands():
    """The report hands favour 75%, the validation hands 50%: the quoted share is 50%."""
    val = {"edit-dir-250": 0.05, "edit-dir-500": 0.30, "edit-dir-750": 0.10}
    v, text = _verdict(_sweep_card([0.08, 0.12, 0.20], [0.08, 0.08, 0.08], val), 4)
    assert "share chosen on val_ood (30.0% (30/100) of the validation hands): 50% of the rank" in text
    # ties on the validation hands go to the larger share (the paper's 62-87%)
    tie = {"edit-dir-250": 0.0, "edit-dir-500": 0.0, "edit-dir-750": 0.0}
    _, text = _verdict(_sweep_card([0.08, 0.12, 0.20], [0.08, 0.08, 0.08], tie), 4)
    assert "of the validation hands): 75% of the rank" in text


def test_paper_measures_beside_ours_per_seed():
    card = _sweep_card([0.08, 0.09, 0.20], [0.08, 0.08, 0.08])
    row = card[card["finding"] == 4].iloc[0]
    assert row["skill"].startswith("PAPER'S MEASURES beside ours, per seed: seed 0")
    assert "mean |dsigma|/sigma all singular values" in row["skill"] and "chordal distance U/V top-k q_proj" in row["skill"]
    assert "the rule asks >= 10" in row["skill"]
    chord = float(row["skill"].split("q_proj ")[1].split("/")[0])
    assert 0 < chord <= 1
