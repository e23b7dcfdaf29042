"""Scorecard verdicts on synthetic per-hand outcomes: holds, does not hold and inconclusive cases.

Hands are ordered by difficulty and a checkpoint with rate p solves the easiest round(p * n),
so two checkpoints differ on exactly |k1 - k2| hands, all one way: McNemar's p-value is then
2^(1 - d) for d discordant hands (d = 5: 0.0625, within noise; d = 6: 0.031, outside).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rlheals.report.references import parse_ckpt, resolve, select
from rlheals.report.scorecard import COLUMNS, FAILS, HOLDS, UNSURE, build, format_table
from rlheals.svd import linalg
from rlheals.svd.null import null_columns

N = 400


def _world(ood_by_seed: dict, n: int = N) -> tuple[pd.DataFrame, dict]:
    """eval table (seed column) and per-hand outcomes from {seed: {ckpt: OOD rate}}."""
    rows, outcomes = [], {}
    ids = [f"eval_ood-{i:05d}" for i in range(n)]
    for seed, ood in ood_by_seed.items():
        for ckpt, rate in ood.items():
            k = int(round(rate * n))
            outcomes[(seed, ckpt, "ood")] = pd.Series(np.arange(n) < k, index=ids)
            for split, kk in (("id", n // 2), ("ood", k)):
                rows.append({"seed": seed, "checkpoint": ckpt, **parse_ckpt(ckpt), "split": split, "n": n,
                             "successes": kk, "success_rate": kk / n})
    return pd.DataFrame(rows), outcomes


def _loss(steps_losses: dict[int, float]) -> pd.DataFrame:
    return pd.DataFrame({"step": list(steps_losses), "train_loss": list(steps_losses.values()),
                         "heldout_id_loss": list(steps_losses.values())})


def _refs(ood: dict, chosen_on: str | None = None) -> dict:
    refs = select({c: r for c, r in ood.items() if c.startswith(("sft", "rl"))})
    if chosen_on:
        refs["chosen_on"] = chosen_on
    return refs


def _card(ood: dict, loss=None, chosen_on="val_ood", analysis=None, edits=(), seeds=(0,), **kw) -> pd.DataFrame:
    table, outcomes = _world({s: ood for s in seeds})
    return build(table, loss, analysis, list(edits), _refs(ood, chosen_on), outcomes=outcomes, **kw)


def _verdict(card: pd.DataFrame, finding: int) -> tuple[str, str]:
    row = card[card["finding"] == finding].iloc[0]
    return row["verdict"], row["value"]


SFT = {"base": 0.0, "sft-100": 0.10, "sft-200": 0.30, "sft-300": 0.20, "sft-400": 0.08}
LOSS = _loss({100: 1.0, 200: 0.5, 300: 0.3, 400: 0.2})


# ---------------------------------------------------------------- finding 1
def test_f1_holds_when_peak_is_early_and_loss_misses_it():
    v, text = _verdict(_card(SFT, LOSS), 1)
    assert v == HOLDS and "step 200" in text and "McNemar" in text


def test_f1_peak_chosen_on_the_report_hands_pays_for_the_choice():
    """A 6-hand drop (p = 2/64) holds for a peak chosen on validation hands but not after Holm
    over the 3 candidate lengths when the peak was picked on the same hands (3 * 2/64 > 0.05)."""
    ood = {"sft-100": 0.05, "sft-200": 0.05 + 6 / N, "sft-300": 0.05, "sft-400": 0.05}
    loss = _loss({100: 1.0, 200: 0.5, 300: 0.3, 400: 0.2})
    assert _verdict(_card(ood, loss, chosen_on="val_ood"), 1)[0] == HOLDS
    v, text = _verdict(_card(ood, loss, chosen_on=None), 1)
    assert v == UNSURE and "Holm over 3 candidate SFT lengths" in text
    card = _card(ood, loss, chosen_on=None)
    assert "chosen on eval (the report hands)" in card["chosen_on"].iloc[0]
    assert "chosen on val_ood (validation hands)" in _card(ood, loss)["chosen_on"].iloc[0]


def test_f1_fails_only_outside_noise():
    rising = {"sft-100": 0.1, "sft-200": 0.2, "sft-300": 0.3}
    loss = _loss({100: 1, 200: 0.5, 300: 0.2})
    v, text = _verdict(_card(rising, loss), 1)
    assert v == FAILS and "above every earlier length" in text
    # OOD highest at the end but within noise of the earlier lengths: not "does not hold"
    flat = {"sft-100": 0.100, "sft-200": 0.105, "sft-300": 0.11}
    assert _verdict(_card(flat, loss), 1)[0] == UNSURE


def test_f1_loss_picking_the_peak_fails_only_when_it_stands_out():
    v, text = _verdict(_card(SFT, _loss({100: 1.0, 200: 0.1, 300: 0.3, 400: 0.2})), 1)
    assert v == FAILS and "lowest-loss checkpoint (by the unseen-problem loss) is above every other" in text
    close = {**SFT, "sft-100": 0.30 - 4 / N}  # the loss picks the peak, but sft-100 is within 4 hands
    assert _verdict(_card(close, _loss({100: 1.0, 200: 0.1, 300: 0.3, 400: 0.2})), 1)[0] == UNSURE


def test_f1_inconclusive_without_loss():
    assert _verdict(_card(SFT, None), 1)[0] == UNSURE


def _two_losses(unseen: dict[int, float], test: dict[int, float]) -> pd.DataFrame:
    """A loss table with our unseen-problem loss and the paper's test loss."""
    return _loss(unseen).assign(test_id_loss=[test[st] for st in unseen])


# The losses disagree: the paper's test loss (mostly SFT's own problems) keeps falling to the
# last length, ours (unseen problems) is lowest at the OOD peak sft-200.
FALLING_TEST = {100: 0.9, 200: 0.6, 300: 0.4, 400: 0.2}
UNSEEN_AT_PEAK = {100: 1.0, 200: 0.1, 300: 0.3, 400: 0.2}


def test_f1_verdict_follows_the_papers_test_loss_and_shows_ours_beside():
    v, text = _verdict(_card(SFT, _two_losses(UNSEEN_AT_PEAK, FALLING_TEST)), 1)
    assert v == HOLDS  # by ours alone it would not hold (the loss finds the peak, as above)
    paper, ours = text.split(". unseen-problem loss (ours, stricter")
    assert "paper's test loss (seen problems included): lowest at sft-400 8.0%" in paper
    assert "the peak is not where the paper's test loss is lowest" in paper
    assert paper.count("McNemar") == 2 and "peak vs it: +22.0 pt" in paper
    assert "lowest at sft-200 30.0%" in ours and "peak vs it: +0.0 pt" in ours
    assert "the peak is where the unseen-problem loss is lowest" in ours
    # the other way round: the paper's test loss finds the peak, ours misses it
    v, text = _verdict(_card(SFT, _two_losses(FALLING_TEST, UNSEEN_AT_PEAK)), 1)
    assert v == FAILS and "lowest-loss checkpoint (by the paper's test loss) is above every other" in text
    assert "lowest at sft-200" in text.split(". unseen-problem loss")[0] and "lowest at sft-400" in text.split(". unseen")[1]


def test_f1_seeds_and_skill_line_use_the_papers_loss_too():
    card = _card(SFT, _two_losses(UNSEEN_AT_PEAK, FALLING_TEST), seeds=(0, 1),
                 readings=_readings({"ood": SKILL, "val_ood": SKILL}, seeds=(0, 1)))
    row = card[card["finding"] == 1].iloc[0]
    assert row["verdict"] == HOLDS and row["seeds"].startswith("holds in 2 of 2 seeds")
    # each seed by our loss beside (it finds the peak: the claim does not hold there)
    assert "; by the unseen-problem loss (ours): holds in 0 of 2 seeds (0: does not hold, 1: does not hold)" in row["seeds"]
    assert "lowest-loss (paper's test loss) sft-400" in row["skill"]


def test_f1_falls_back_to_the_unseen_problem_loss_with_a_note():
    for loss in (LOSS, LOSS.assign(test_id_loss=float("nan"))):  # an older run; a run that logged none
        v, text = _verdict(_card(SFT, loss), 1)
        assert v == HOLDS and "no test_id_loss logged" in text and "lowest at sft-400" in text
        assert "unseen-problem loss (ours, stricter; not the verdict's)" not in text  # one line, not two


# ---------------------------------------------------------------- finding 1, the skill line
def _readings(shares_by_split: dict[str, dict], n: int = N, seeds=(0,)) -> dict:
    """Per-hand readings: one face card per hand; a checkpoint with share p writes the
    first round(p * n) hands' face card as the rule says, the rest as 10."""
    out = {}
    for seed in seeds:
        for split, shares in shares_by_split.items():
            ids = [f"eval_{split}-{i:05d}" for i in range(n)]
            for ckpt, p in shares.items():
                k = int(round(p * n))
                rule = (np.arange(n) < k).astype(int)
                out[(seed, ckpt, split)] = pd.DataFrame({"faces": 1, "as_rule": rule, "as_ten": 1 - rule}, index=ids)
    return out


FLOOR = {"base": 0.0, "sft-100": 0.0, "sft-200": 0.0, "sft-300": 0.0, "sft-400": 0.0}  # success at the floor
SKILL = {"base": 0.9, "sft-100": 0.6, "sft-200": 0.5, "sft-300": 0.3, "sft-400": 0.1}
LOSS_LATE = _loss({100: 1.0, 200: 0.5, 300: 0.3, 400: 0.2})


def test_skill_line_holds_where_success_is_at_the_floor():
    """Success 0 everywhere (finding 1 inconclusive), but the rule-reading share falls from
    60% at sft-100 (the validation peak) to 10%: the skill line holds, on the report hands."""
    card = _card(FLOOR, LOSS_LATE, readings=_readings({"ood": SKILL, "val_ood": SKILL}))
    row = card[card["finding"] == 1].iloc[0]
    assert row["verdict"] == UNSURE
    assert row["skill"].startswith("HOLDS") and "peak chosen on val_ood" in row["skill"]
    assert "peak sft-100 60.0%" in row["skill"] and "last sft-400 10.0%" in row["skill"]
    assert "as 10: 90.0%" in row["skill"]
    assert all(card.loc[card["finding"] != 1, "skill"] == "")
    assert "skill: HOLDS" in format_table(card)


def test_skill_line_follows_the_validation_peak_not_the_report_one():
    """Validation says the skill peaks at the last length: no early peak to test, and the
    report hands' early peak is not used (it would be a choice on the report hands)."""
    val = {**SKILL, "sft-400": 0.95}
    card = _card(FLOOR, LOSS_LATE, readings=_readings({"ood": SKILL, "val_ood": val}))
    assert card.loc[card["finding"] == 1, "skill"].iloc[0].startswith("INCONCLUSIVE")


def test_skill_line_fails_when_the_skill_rises_to_the_end():
    rising = {"base": 0.1, "sft-100": 0.1, "sft-200": 0.2, "sft-300": 0.3, "sft-400": 0.6}
    card = _card(FLOOR, LOSS_LATE, readings=_readings({"ood": rising, "val_ood": rising}))
    skill = card.loc[card["finding"] == 1, "skill"].iloc[0]
    assert skill.startswith("DOES NOT HOLD") and "above every earlier length" in skill


def test_skill_line_within_noise_and_per_seed():
    """A 2-hand difference of 400 is noise; with three seeds the line says so per seed."""
    flat = {c: 0.5 for c in SKILL}
    flat["sft-100"] = 0.5 + 2 / N
    card = _card(FLOOR, LOSS_LATE, readings=_readings({"ood": flat, "val_ood": flat}, seeds=(0, 1, 2)),
                 seeds=(0, 1, 2))
    skill = card.loc[card["finding"] == 1, "skill"].iloc[0]
    assert skill.startswith("INCONCLUSIVE") and "within noise" in skill and "holds in 0 of 3 seeds" in skill


def test_skill_line_without_readings_says_so():
    card = _card(SFT, LOSS)
    assert card.loc[card["finding"] == 1, "skill"].iloc[0] == "INCONCLUSIVE: no per-hand readings"


# ---------------------------------------------------------------- findings 2 and 3
def _rl(gains: dict[int, float], base=SFT, algo="grpo", steps=(50, 100)) -> dict:
    ood = dict(base)
    for step, after in gains.items():
        for s in steps:
            ood[f"rl-{algo}-{step}-{s}"] = after if s == steps[-1] else base.get(f"sft-{step}", 0.0)
    return ood


def test_f2_holds_with_partial_recovery():
    v, text = _verdict(_card(_rl({300: 0.26, 400: 0.12}), LOSS), 2)
    assert v == HOLDS and "grpo from 300: 20.0->26.0% (recovered 60%" in text


def test_f2_ignores_forks_started_before_the_peak():
    ood = _rl({100: 0.29, 300: 0.20, 400: 0.08})  # only the fork before the peak rises
    v, text = _verdict(_card(ood, LOSS), 2)
    assert v == UNSURE and "grpo from 100 (at or before the OOD peak)" in text


def test_f2_ignores_forks_whose_start_is_not_below_the_peak():
    base = {**SFT, "sft-300": 0.30 - 4 / N}
    v, text = _verdict(_card(_rl({300: 0.30, 400: 0.08}, base=base), LOSS), 2)
    assert "grpo from 300 (start not below the peak outside noise)" in text and v == UNSURE


def test_f2_fails_when_rl_exceeds_the_peak_or_every_fork_falls():
    v, text = _verdict(_card(_rl({300: 0.45}), LOSS), 2)
    assert v == FAILS and "exceeds" in text
    v, text = _verdict(_card(_rl({300: 0.10, 400: 0.02}), LOSS), 2)
    assert v == FAILS and "lowers OOD" in text


def test_f2_inconclusive_within_noise_or_without_forks():
    assert _verdict(_card(_rl({300: 0.21, 400: 0.09}), LOSS), 2)[0] == UNSURE
    assert _verdict(_card(SFT, LOSS), 2)[0] == UNSURE


def test_f2_holm_over_forks():
    """One fork up by 7 hands (p = 2/128 = 0.016): holds alone, not among four counted forks (4 * 0.016 > 0.05)."""
    base = {"sft-100": 0.30, "sft-200": 0.10, "sft-300": 0.10, "sft-400": 0.10, "sft-500": 0.10}
    loss = _loss({100: 1, 200: 0.9, 300: 0.8, 400: 0.7, 500: 0.6})
    alone = _rl({200: 0.10 + 7 / N}, base=base)
    assert _verdict(_card(alone, loss), 2)[0] == HOLDS
    many = _rl({200: 0.10 + 7 / N, 300: 0.10, 400: 0.10, 500: 0.10}, base=base)
    v, text = _verdict(_card(many, loss), 2)
    assert v == UNSURE and "Holm p=0.0625" in text


WIN = {"base": 0.0, "sft-100": 0.10, "sft-200": 0.30, "sft-300": 0.20, "sft-400": 0.15, "sft-500": 0.08}
WIN_LOSS = _loss({100: 1.0, 200: 0.5, 300: 0.3, 400: 0.2, 500: 0.1})


def test_f3_window_holds():
    ood = _rl({300: 0.22, 400: 0.27, 500: 0.09}, base=WIN)
    v, text = _verdict(_card(ood, WIN_LOSS), 3)
    assert v == HOLDS and "best interior fork grpo 400" in text and "bootstrap" in text


def test_f3_a_fork_before_the_peak_is_not_an_end():
    """A fork from 100 (before the peak) gaining little would make 300 'interior'; it is left out."""
    ood = _rl({100: 0.11, 300: 0.22, 400: 0.27, 500: 0.09}, base=WIN)
    assert _verdict(_card(ood, WIN_LOSS), 3)[0] == HOLDS
    ood = _rl({100: 0.11, 300: 0.35, 400: 0.20, 500: 0.09}, base=WIN)  # 300 is the counted first fork
    v, text = _verdict(_card(ood, WIN_LOSS), 3)
    assert v == FAILS and "grpo 300" in text


def test_f3_fails_when_an_end_recovers_most():
    ood = _rl({300: 0.22, 400: 0.20, 500: 0.25}, base=WIN)
    assert _verdict(_card(ood, WIN_LOSS), 3)[0] == FAILS


def test_f3_inconclusive_with_two_forks_or_noise():
    assert _verdict(_card(_rl({300: 0.28, 400: 0.20}, base=WIN), WIN_LOSS), 3)[0] == UNSURE
    ood = _rl({300: 0.21, 400: 0.16, 500: 0.09}, base=WIN)  # gains of 4 hands each
    assert _verdict(_card(ood, WIN_LOSS), 3)[0] == UNSURE


def test_f3_bootstrap_is_seeded():
    ood = _rl({300: 0.22, 400: 0.27, 500: 0.09}, base=WIN)
    a = _card(ood, WIN_LOSS, boot_seed=3, n_boot=500)
    b = _card(ood, WIN_LOSS, boot_seed=3, n_boot=500)
    assert a.equals(b)


# ---------------------------------------------------------------- finding 4
EDITS = [
    {"name": "dirs", "kind": "directions", "donor": "sft_best", "target": "sft_last", "k": 4},
    {"name": "vals", "kind": "values", "donor": "sft_best", "target": "sft_last", "k": 4},
]


def _rows(pairs, k=4, ckpt="sft-400", ref_ckpt="sft-200", seed=0):
    """Analysis rows (with the null columns) computed from real (W0, W) pairs."""
    rows = []
    for i, (w0, w) in enumerate(pairs):
        res = linalg.compare(w0, w, k)
        row = {"checkpoint": ckpt, "reference": "sft_best", "reference_ckpt": ref_ckpt, "name": f"m{i}",
               "layer": i, "matrix": "q_proj", "k": k,
               **{m: res[m] for m in ("sigma_rel_change_mean", "angle_left_mean", "angle_right_mean",
                                      "spectral_gap")}}
        row.update(null_columns(w0, w, res, seed, (ckpt, "sft_best", f"m{i}")))
        rows.append(row)
    return pd.DataFrame(rows)


def _spectrum_matrix(rng, m=40, n=30, decay=0.97):
    u, _ = np.linalg.qr(rng.standard_normal((m, n)))
    v, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return (u * decay ** np.arange(n)) @ v.T  # small gaps everywhere: angles move easily


def _noise_pairs(n_mats=30, size=0.02, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_mats):
        w0 = _spectrum_matrix(rng)
        e = rng.standard_normal(w0.shape)
        out.append((w0, w0 + size * np.linalg.norm(w0) * e / np.linalg.norm(e)))
    return out


def _rotation_pairs(n_mats=30, size=0.02, seed=0):
    """W = Q W0 with Q orthogonal: the singular values stay exactly, the left vectors rotate."""
    import scipy.linalg

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_mats):
        w0 = _spectrum_matrix(rng)
        a = rng.standard_normal((40, 40))
        out.append((w0, scipy.linalg.expm(size * (a - a.T) / 2) @ w0))
    return out


def _scaling_pairs(n_mats=30, size=0.02, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_mats):
        w0 = _spectrum_matrix(rng)
        u, s, vh = np.linalg.svd(w0, full_matrices=False)
        out.append((w0, (u * (s * (1 + size * rng.standard_normal(s.size)))) @ vh))
    return out


F4 = {**SFT, "edit-dirs": 0.20, "edit-vals": 0.08}


def test_f4_pure_noise_does_not_pass_the_spectral_part():
    """A random perturbation has 'large angles, small dsigma' (the old rule passed it) but
    rotates exactly as much as the null: the spectral part must not hold."""
    rows = _rows(_noise_pairs())
    angle = np.sin((rows["angle_left_mean"] + rows["angle_right_mean"]) / 2).mean()
    assert angle >= 10 * rows["sigma_rel_change_topk"].mean()  # the old rule's condition holds
    v, text = _verdict(_card(F4, LOSS, analysis=rows, edits=EDITS), 4)
    assert v != HOLDS and "not beyond a random perturbation" in text


def test_f4_holds_for_a_pure_rotation():
    rows = _rows(_rotation_pairs())
    v, text = _verdict(_card(F4, LOSS, analysis=rows, edits=EDITS), 4)
    assert v == HOLDS, text
    assert "sft_last vs sft_best" in text and "spectral gap at k" in text and "(all " in text


def test_f4_fails_for_a_pure_scaling():
    v, text = _verdict(_card(F4, LOSS, analysis=_rows(_scaling_pairs()), edits=EDITS), 4)
    assert v == FAILS, text


def test_f4_edit_part_both_against_the_target():
    rows = _rows(_rotation_pairs())
    v, text = _verdict(_card({**SFT, "edit-dirs": 0.05, "edit-vals": 0.20}, LOSS, analysis=rows, edits=EDITS), 4)
    assert v == FAILS and "vs target p=" in text and "the sweep (Holm over 1 share)" in text
    # directions above values but not above the target (sft-400 at 8%): not a recovery
    v, _ = _verdict(_card({**SFT, "edit-dirs": 0.08, "edit-vals": 0.02}, LOSS, analysis=rows, edits=EDITS), 4)
    assert v == UNSURE
    v, _ = _verdict(_card({**SFT, "edit-dirs": 0.10, "edit-vals": 0.095}, LOSS, analysis=rows, edits=EDITS), 4)
    assert v == UNSURE


def test_f4_needs_the_pair_at_equal_k():
    rows = _rows(_rotation_pairs())
    unequal = [EDITS[0], {**EDITS[1], "k": 8}]
    v, text = _verdict(_card(F4, LOSS, analysis=rows, edits=unequal), 4)
    assert v == UNSURE and "same donor, target and k" in text


def test_f4_without_null_columns_is_inconclusive():
    rows = _rows(_rotation_pairs()).drop(columns=["null_angle_mean"])
    v, text = _verdict(_card(F4, LOSS, analysis=rows, edits=EDITS), 4)
    assert v == UNSURE and "null columns" in text


# ---------------------------------------------------------------- seeds
def test_pooled_over_seeds_and_reported_per_seed():
    """Each seed recovers 4 hands (p = 0.125 alone); pooled, 12 vs 0 discordant hands hold."""
    weak = _rl({300: 0.20 + 4 / N})
    table, outcomes = _world({0: weak, 1: weak, 2: weak})
    refs = {"seeds": {str(s): _refs(weak, "val_ood") for s in range(3)}}
    losses = pd.concat([LOSS.assign(seed=s) for s in range(3)], ignore_index=True)
    card = build(table, losses, None, [], refs, outcomes=outcomes)
    v, text = _verdict(card, 2)
    assert v == HOLDS and "12 vs 0 discordant" in text
    assert card.loc[card["finding"] == 2, "seeds"].iloc[0].startswith("holds in 0 of 3 seeds")
    assert "chosen on val_ood (validation hands)" in card["chosen_on"].iloc[0]
    # the split may also be named once for the whole file
    refs = {"seeds": {str(s): _refs(weak) for s in range(3)}, "chosen_on": {"sft_best": "val_ood"}}
    assert "chosen on val_ood" in build(table, losses, None, [], refs, outcomes=outcomes)["chosen_on"].iloc[0]


def test_per_seed_counts_and_own_references():
    good, flat = _rl({300: 0.26, 400: 0.12}), _rl({300: 0.20, 400: 0.08})
    late = {**_rl({300: 0.26, 400: 0.12}), "sft-200": 0.15, "sft-300": 0.32}  # its peak is 300
    table, outcomes = _world({0: good, 1: good, 2: flat, 3: late})
    refs = {"seeds": {str(s): _refs(o, "val_ood") for s, o in enumerate([good, good, flat, late])}}
    card = build(table, LOSS, None, [], refs, outcomes=outcomes)
    seeds = card.loc[card["finding"] == 2, "seeds"].iloc[0]
    assert seeds == "holds in 3 of 4 seeds (0: holds, 1: holds, 2: inconclusive, 3: holds)"
    assert _verdict(card, 2)[0] == HOLDS
    # seed 3's own peak is at 300: its fork from 300 is left out, the one from 400 recovers
    alone = build(table, LOSS, None, [], refs, outcomes=outcomes, seeds=[3])
    v, text = _verdict(alone, 2)
    assert v == HOLDS and "grpo from 300 (at or before the OOD peak)" in text and "grpo from 400: 8.0->12.0%" in text


# ---------------------------------------------------------------- table
def test_build_has_the_documented_columns_and_prints():
    ood = {**_rl({300: 0.22, 400: 0.27, 500: 0.09}, base=WIN), "edit-dirs": 0.2, "edit-vals": 0.02}
    card = _card(ood, WIN_LOSS, analysis=_rows(_rotation_pairs(), ckpt="sft-500"),
                 edits=[{**e, "k": 4} for e in EDITS])
    assert list(card.columns) == COLUMNS and card["finding"].tolist() == [1, 2, 3, 4]
    assert card["verdict"].tolist() == [HOLDS] * 4, card["value"].tolist()
    text = format_table(card)
    assert "[3] HOLDS" in text and "figure: rl_forks.png" in text and "seeds: 1 seed (0): holds" in text


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


def test_f2_channel_line_reads_attempt_one_and_rescues():
    """With several attempts, finding 2's second line gives per fork after the peak the OOD
    change at attempt 1 and the rescue rate (failed at attempt 1, solved later) at its start
    and end, each with its paired test; the value says the metric is within the attempts."""
    ood = _rl({300: 0.26})
    table, outcomes = _world({0: ood})
    ids = outcomes[(0, "sft-300", "ood")].index
    at1 = {key: pd.Series(np.arange(N) < int(round(0.15 * N)), index=ids) if key[1] in ("sft-300", "rl-grpo-300-100")
           else series for key, series in outcomes.items()}
    card = build(table, LOSS, None, [], _refs(ood, "val_ood"), outcomes=outcomes, outcomes_at_1=at1, attempts=5)
    row = card[card["finding"] == 2].iloc[0]
    assert row["value"].startswith("success within 5 attempts: ")
    line = row["skill"]
    assert line.startswith("CHANNEL (within 5 vs attempt 1")
    # start: 80 - 60 = 20 of 340 failed at attempt 1 rescued; end: 104 - 60 = 44 of 340
    assert "OOD rescue 5.9% " in line and "(20/340) -> 12.9% " in line and "(44/340)" in line
    assert "grpo from 300: OOD at attempt 1 +0.0 pt, 0 vs 0 discordant" in line
    assert "rescued hands +6.0 pt, 24 vs 0 discordant" in line
    one = build(table, LOSS, None, [], _refs(ood, "val_ood"), outcomes=outcomes)  # one attempt: no line
    assert one.loc[one["finding"] == 2, "skill"].iloc[0] == ""
    assert "channel:" in format_table(card)
