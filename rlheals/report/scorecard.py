"""The scorecard: does each of the paper's four findings hold on this run's numbers?

Verdicts are `holds`, `does not hold` or `inconclusive`; "does not hold" needs evidence
outside noise, exactly like "holds". Every checkpoint answers the same hands, so every
comparison of two checkpoints is an exact McNemar test on their per-hand outcomes
(rlheals.evaluation.stats.mcnemar); a difference of gains is a paired bootstrap over hands
(stats.bootstrap_mean, seeded); where a finding takes the best of several candidates
(SFT lengths, forks, algorithms) the candidates' p-values are Holm-corrected (stats.holm).
A difference is outside noise when its p-value is below alpha (evaluation.alpha).

Seed replicates: each finding is judged on the pooled per-hand outcomes of all seeds
(tests stratified by seed: McNemar on the summed discordant hands, the bootstrap resampling
the same hands in every seed) and, apart, on each seed alone ("holds in 2 of 3 seeds").
Each seed uses its own references (its own OOD peak, donors). Rates in the text are pooled
over the seeds used (successes / hands, with Wilson intervals).

The rules, finding by finding (OOD = the `ood` report split):

1. OOD peaks before the last SFT length and the peak is not where the test loss is lowest.
   The peak is `sft_best`. When it was chosen on validation hands it is tested as is;
   when it was chosen on the report hands themselves (references chosen on "eval"),
   every SFT length before the last is a candidate and the candidates are Holm-corrected.
   holds: for some candidate, OOD(candidate) > OOD(last) and OOD(candidate) > OOD(L), both
   outside noise, where L is the SFT checkpoint with the lowest *test* loss as the paper
   defines it (`test_id_loss`: random ID hands, most of their problems seen in SFT, as the
   paper's test set was; the conjunction's p-value is the larger of the two).
   does not hold: OOD(last) is above every earlier SFT length's outside noise (no early
   peak), or OOD(L) is above every other SFT length's outside noise (the loss finds it).
   The text adds the same peak-vs-L test for our stricter loss (`heldout_id_loss`, on
   problems no training hand has; L' its lowest checkpoint), which does not decide the
   verdict: the claim is the paper's, about the loss it read. A run logged before the test
   set existed has no `test_id_loss`; then L is L' and the text says so.
   Second line (`skill` column), the same claim on the graded skill where success sits at
   the floor: the share of OOD face cards the first reply writes as the stated rule says
   (rlheals.task.reading), its peak chosen on the validation OOD hands, differences by a
   paired bootstrap over the report hands of the per-hand share.
2. RL from some SFT checkpoint recovers part of the lost OOD without exceeding the SFT peak.
   Only forks started after the peak whose start is below the peak outside noise count
   (the others have nothing lost to recover); the text names the forks left out and why.
   holds: some such fork's final RL checkpoint is above its start outside noise (Holm over
   the forks), and none is above the peak outside noise. does not hold: one is above the
   peak outside noise, or every such fork ends below its start outside noise.
   The recovered share is (RL - start) / (peak - start), a point estimate.
3. There is a window: forks from too early or too late recover less. Among the forks that
   finding 2 counts (per algorithm, at least 3), an interior fork's gain beats the gains of
   the earliest and the latest fork (paired bootstrap of the difference of gains, both
   outside noise; Holm over the interior forks of all algorithms): holds. An end fork's gain
   beating every interior fork's outside noise: does not hold.
4. Singular values stay while singular vectors rotate, and a direction-only restore
   recovers OOD more than a value swap. Spectral part (sft_last against sft_best, else
   against base): the mean sine of the top-k principal angles must be at least `ratio`
   times the mean |Δσ|/σ over the same top k, *and* the rotation-to-scaling ratio must
   beat that of a random perturbation of the same Frobenius norm (rlheals.svd.null) in
   more matrices than not (exact sign test over matrices, outside noise). Pure noise meets
   the first condition whenever the gap at k is small, never the second. It does not hold
   when the first condition fails or the null wins outside noise. The text gives |Δσ|/σ over
   all singular values apart and the mean spectral gap at k; the `skill` column gives, per
   seed, the paper's measures beside ours (`paper_measures`: mean |Δσ|/σ over all singular
   values, the chordal distance per matrix type). Edit part, on the sweep (`edit_pairs`: each
   `directions` edit with the `values` edit of the same donor, target, k, layers and
   matrices; a config error otherwise): at each share, directions above values and above
   the target, both outside noise, Holm-corrected over the shares tried: holds; values above
   directions at some share (Holm): does not hold. The share quoted first is chosen on the
   OOD validation hands (`_chosen_share`). Finding 4 holds when both parts hold and fails
   when either fails.

The references file says on which split each reference was chosen (`chosen_on`: a split
name, or {symbol: split}); without it the references were chosen on the report hands
("eval"), as the column `chosen_on` then says.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Hashable, Mapping

import numpy as np
import pandas as pd

from rlheals.evaluation.stats import (
    DEFAULT_ALPHA, Paired, binom_two_sided, bootstrap_mean, gain_per_hand, holm, mcnemar, wilson,
)

HOLDS, FAILS, UNSURE = "holds", "does not hold", "inconclusive"
COLUMNS = ["finding", "claim", "verdict", "seeds", "value", "skill", "chosen_on", "figure"]
REPORT_SPLIT = "ood"
FIGURES = {
    1: "sft_curves.png",
    2: "rl_forks.png",
    3: "rl_forks.png",
    4: "drift.png, angles_*.png, edits.png",
}
CLAIMS = {
    1: "OOD peaks before the last SFT length, and the peak is not where the test loss is lowest",
    2: "RL from some SFT checkpoint recovers part of the lost OOD without exceeding the SFT peak",
    3: "there is a window: forks from too early or too late recover less",
    4: "mean relative sigma change is small while principal angles are large (beyond a same-size random "
    "perturbation), and direction-only restore recovers OOD more than value swap",
}
#: What the `skill` column holds, per finding (format_table's label).
SKILL_LABELS = {1: "skill", 2: "channel", 4: "paper's measures"}
#: Splits that mean "chosen on the report hands".
_REPORT_CHOOSERS = {"eval", "ood", "id", "report"}


# ---------------------------------------------------------------- inputs, per seed
@dataclass
class Seed:
    """What the scorecard knows about one replicate."""

    seed: Hashable
    sft: list[tuple[int, str]]  # (step, checkpoint), ascending
    forks: list[tuple[str, int, str, str]]  # (algo, fork step, start ckpt, final RL ckpt)
    refs: dict
    loss: pd.DataFrame | None
    analysis: pd.DataFrame | None
    peak: tuple[int, str] | None = None
    #: (step, ckpt) of the lowest paper's test loss (`test_id_loss`), finding 1's L; the
    #: unseen-problem loss's when the run logged no test loss (`lowest_from` says which)
    lowest_loss: tuple[int, str] | None = None
    #: (step, ckpt) of the lowest unseen-problem held-out loss (`heldout_id_loss`), ours
    lowest_unseen: tuple[int, str] | None = None
    lowest_from: str | None = None


@dataclass
class Card:
    """Everything the rules read: the replicates, the per-hand outcomes and the settings."""

    seeds: dict[Hashable, Seed]
    outcomes: Mapping[tuple, pd.Series]
    alpha: float = DEFAULT_ALPHA
    ratio: float = 10.0
    boot_seed: int = 0
    n_boot: int = 10000
    edits: list = field(default_factory=list)
    chosen_on: dict = field(default_factory=dict)
    readings: Mapping[tuple, pd.DataFrame] = field(default_factory=dict)
    #: per-hand success at attempt 1 (same keys as outcomes) and the attempts per hand
    outcomes_at_1: Mapping[tuple, pd.Series] = field(default_factory=dict)
    attempts: int = 1

    def out(self, seed, ckpt: str | None, split: str = REPORT_SPLIT) -> pd.Series | None:
        return None if ckpt is None else self.outcomes.get((seed, ckpt, split))

    def paired(self, a: Mapping, b: Mapping, split: str = REPORT_SPLIT) -> Paired | None:
        """McNemar of checkpoints a[seed] against b[seed], stratified over the seeds both have."""
        xs, ys = [], []
        for s in a:
            x, y = self.out(s, a[s], split), self.out(s, b.get(s), split)
            if x is not None and y is not None:
                xs.append(x)
                ys.append(y)
        if not xs:
            return None
        return mcnemar(xs, ys, self.alpha)

    def counts(self, ckpts: Mapping, split: str = REPORT_SPLIT) -> tuple[int, int]:
        """(successes, hands) of {seed: ckpt} on `split`, pooled over the seeds that have outcomes."""
        k = n = 0
        for s, c in ckpts.items():
            x = self.out(s, c, split)
            if x is not None:
                k, n = k + int(np.sum(x)), n + len(x)
        return k, n

    def rate(self, ckpts: Mapping, split: str = REPORT_SPLIT) -> str:
        """Pooled rate of {seed: ckpt} as text: 'name p% [low, high] (k/n)'."""
        k, n = self.counts(ckpts, split)
        names = sorted({c for c in ckpts.values() if c is not None})
        name = names[0] if len(names) == 1 else "/".join(names)
        if n == 0:
            return f"{name} (no per-hand outcomes)"
        low, high = wilson(k, n, self.alpha)
        return f"{name} {100 * k / n:.1f}% [{100 * low:.1f}, {100 * high:.1f}] ({k}/{n})"

    def p_rate(self, ckpts: Mapping, split: str = REPORT_SPLIT) -> float:
        k, n = self.counts(ckpts, split)
        return k / n if n else math.nan


def _one_seed_tables(table: pd.DataFrame | None, seed, many: bool) -> pd.DataFrame | None:
    if table is None:
        return None
    if "seed" in table.columns:
        rows = table[table["seed"].astype(str) == str(seed)]
        return rows.drop(columns="seed") if many or not rows.empty else table.drop(columns="seed")
    return table


def _refs_for(refs: Mapping | None, seed) -> dict:
    if not refs:
        return {}
    if "seeds" in refs and isinstance(refs["seeds"], Mapping):
        return dict(refs["seeds"].get(str(seed), refs["seeds"].get(seed, {})))
    return dict(refs)


def _chosen_on(refs: Mapping) -> dict:
    """{symbol: split it was chosen on}; 'eval' (the report hands) unless the file says otherwise."""
    raw = refs.get("chosen_on", refs.get("split"))
    out = {s: "eval" for s in ("sft_best", "sft_last", "rl_best")}
    if isinstance(raw, str):
        out.update({"sft_best": raw, "rl_best": raw})
    elif isinstance(raw, Mapping):
        out.update({str(k): str(v) for k, v in raw.items()})
    out["sft_last"] = "(the last SFT step)"
    return out


def _on_report(split: str) -> bool:
    return split in _REPORT_CHOOSERS or not split.startswith("val")


def _prepare(eval_table, loss_table, analysis_table, refs, outcomes, seeds) -> dict[Hashable, Seed]:
    from rlheals.checkpoints import parse_ckpt

    if seeds is None:
        if "seed" in eval_table.columns:
            seeds = sorted(eval_table["seed"].unique().tolist())
        else:
            seeds = sorted({k[0] for k in outcomes}, key=str) or [0]
    many = len(seeds) > 1 or "seed" in eval_table.columns
    out = {}
    for seed in seeds:
        rows = _one_seed_tables(eval_table, seed, many)
        rows = rows[rows["split"] == REPORT_SPLIT] if "split" in rows else rows
        ckpts = list(dict.fromkeys(rows["checkpoint"]))
        info = {c: parse_ckpt(c) for c in ckpts}
        sft = sorted((int(i["sft_step"]), c) for c, i in info.items() if i["stage"] == "sft")
        finals: dict[tuple, tuple[int, str]] = {}
        for c, i in info.items():
            if i["stage"] == "rl":
                key = (str(i["rl_algo"]), int(i["sft_step"]))
                if key not in finals or int(i["rl_step"]) > finals[key][0]:
                    finals[key] = (int(i["rl_step"]), c)
        forks = []
        for (algo, step), (_, final) in sorted(finals.items()):
            start = "base" if step == 0 else f"sft-{step}"
            if start in info:
                forks.append((algo, step, start, final))
        s = Seed(seed, sft, forks, _refs_for(refs, seed), _one_seed_tables(loss_table, seed, many),
                 _one_seed_tables(analysis_table, seed, many))
        out[seed] = s
    return out


#: The paper's test loss (random ID hands, seen problems included) and ours (unseen problems only).
PAPER_LOSS, UNSEEN_LOSS = "test_id_loss", "heldout_id_loss"


def _locate(card: Card) -> None:
    """Each seed's OOD peak (sft_best, else the argmax on the report hands) and lowest-loss
    checkpoints: the paper's test loss's (finding 1's L) and the unseen-problem loss's."""
    for s in card.seeds.values():
        steps = dict((c, st) for st, c in s.sft)
        best = s.refs.get("sft_best")
        if best in steps:
            s.peak = (steps[best], best)
        elif s.sft:
            rates = [(card.p_rate({s.seed: c}), -st, st, c) for st, c in s.sft]
            rates = [r for r in rates if not math.isnan(r[0])]
            if rates:
                _, _, st, c = max(rates)
                s.peak = (st, c)
        s.lowest_unseen = _lowest(s, UNSEEN_LOSS)
        paper = _lowest(s, PAPER_LOSS)
        s.lowest_loss, s.lowest_from = (paper, PAPER_LOSS) if paper else (s.lowest_unseen, UNSEEN_LOSS)
        if s.lowest_loss is None:
            s.lowest_from = None


def _lowest(s: Seed, col: str) -> tuple[int, str] | None:
    """(step, ckpt) of the SFT checkpoint with the lowest `col` in the seed's loss table (ties:
    the earliest), None when the column is absent or empty at the SFT steps."""
    if s.loss is None or col not in s.loss:
        return None
    losses = s.loss.dropna(subset=[col]).drop_duplicates("step", keep="last").set_index("step")[col]
    at = [(float(losses[st]), st, c) for st, c in s.sft if st in losses.index]
    if not at:
        return None
    _, st, c = min(at)
    return st, c


def _p_if(r: Paired | None, sign: int = 1) -> float:
    """p-value of a directional claim (diff has `sign`), 1 when the estimate points the other way."""
    if r is None or math.isnan(r.diff) or r.diff * sign <= 0:
        return 1.0
    return r.p_value


def _fmt_p(p: float) -> str:
    return f"{p:.3g}"


# ---------------------------------------------------------------- finding 1
def _loss_names(ss: list[Seed]) -> tuple[str, str]:
    """(name of the loss L comes from, a note when some seed had no paper's test loss)."""
    fallback = [str(s.seed) for s in ss if s.lowest_from == UNSEEN_LOSS]
    if not fallback:
        return "paper's test loss (seen problems included)", ""
    if len(fallback) == len(ss):
        return ("unseen-problem loss (ours, stricter; no test_id_loss logged, a run from before the "
                "paper's test loss, so it stands in for it)"), ""
    return ("paper's test loss (seen problems included)",
            f" (seed{'s' if len(fallback) > 1 else ''} {', '.join(fallback)}: no test_id_loss logged, "
            "the unseen-problem loss stands in)")


def _where(r: Paired | None, cand: Mapping, low: Mapping, loss: str) -> str:
    """What the peak-vs-lowest-loss test says, in words."""
    if r is not None and r.sign > 0:
        return f"the peak is not where the {loss} is lowest"
    if all(cand.get(k) == v for k, v in low.items()):
        return f"the peak is where the {loss} is lowest"
    if r is not None and r.sign < 0:
        return f"OOD is higher where the {loss} is lowest than at the peak"
    return f"within noise of where the {loss} is lowest"


def finding1(card: Card, seeds: list) -> tuple[str, str]:
    """Finding 1, with L the lowest paper's test loss (the verdict) and our unseen-problem
    loss's lowest beside it (its own paired test, text only): the claim is the paper's, about
    the loss it read."""
    ss = [card.seeds[s] for s in seeds]
    if any(len(s.sft) < 2 for s in ss):
        return UNSURE, "needs at least two SFT lengths"
    if any(s.lowest_loss is None for s in ss):
        return UNSURE, "no ID test or held-out loss logged at the SFT checkpoints"
    last = {s.seed: s.sft[-1][1] for s in ss}
    low = {s.seed: s.lowest_loss[1] for s in ss}
    unseen = {s.seed: s.lowest_unseen[1] for s in ss if s.lowest_unseen is not None}
    name, note = _loss_names(ss)
    paper_line = not name.startswith("unseen")
    loss = "paper's test loss" if paper_line else "unseen-problem loss"
    on_report = _on_report(card.chosen_on.get("sft_best", "eval"))
    if on_report:
        common = sorted(set.intersection(*(set(st for st, _ in s.sft[:-1]) for s in ss)))
        candidates = [{s.seed: f"sft-{st}" for s in ss} for st in common]
    else:
        candidates = [{s.seed: s.peak[1] for s in ss}]
    tests = []
    for cand in candidates:
        drop, miss = card.paired(cand, last), card.paired(cand, low)
        tests.append((cand, drop, miss, max(_p_if(drop), _p_if(miss))))
    adj = holm([t[3] for t in tests]) if tests else []
    peak = {s.seed: s.peak[1] for s in ss}
    peak_step = {s.peak[0] for s in ss}
    text = (f"peak {card.rate(peak)}" + (f" at step {peak_step.pop()}" if len(peak_step) == 1 else "")
            + f"; last {card.rate(last)}")
    ours, holds = "", False
    if tests:
        i = int(np.argmin(adj))
        cand, drop, miss, _ = tests[i]
        which = "peak" if not on_report else f"best candidate {card.rate(cand).split(' ')[0]}"
        text += (f"; {which} vs last: {drop}"
                 + (f"; Holm over {len(tests)} candidate SFT length{'s' if len(tests) > 1 else ''} "
                    f"(peak chosen on the report hands): p={_fmt_p(adj[i])}" if on_report else "")
                 + f". {name}{note}: lowest at {card.rate(low)}; {which} vs it: {miss} -> {_where(miss, cand, low, loss)}")
        if paper_line and unseen:
            r = card.paired(cand, unseen)
            ours = (f". unseen-problem loss (ours, stricter; not the verdict's): lowest at {card.rate(unseen)}; "
                    f"{which} vs it: {r or 'n/a'} -> {_where(r, cand, unseen, 'unseen-problem loss')}")
        holds = adj[i] < card.alpha
    if holds:
        return HOLDS, text + ours
    # does not hold, outside noise: OOD rises to the end, or the loss finds the OOD peak
    earlier = [st for st, _ in ss[0].sft[:-1]]
    rises = [card.paired(last, {s.seed: f"sft-{st}" for s in ss}) for st in earlier]
    if rises and all(r is not None and r.sign > 0 for r in rises):
        return FAILS, text + "; OOD at the last SFT length is above every earlier length outside noise" + ours
    others = [st for st, _ in ss[0].sft]
    picks = []
    for st in others:
        other = {s.seed: f"sft-{st}" for s in ss if low[s.seed] != f"sft-{st}"}
        if other:
            picks.append(card.paired({k: low[k] for k in other}, other))
    if picks and all(r is not None and r.sign > 0 for r in picks):
        return FAILS, text + f"; the lowest-loss checkpoint (by the {loss}) is above every other SFT length outside noise" + ours
    return UNSURE, text + "; within noise" + ours


# ---------------------------------------------------------------- finding 1, the skill
SKILL_SPLIT = "val_ood"


def _skill_share(card: Card, ckpts: Mapping, col: str = "as_rule", split: str = REPORT_SPLIT) -> float:
    """Pooled share of the face cards of {seed: ckpt}'s `split` hands written as `col` says."""
    k = n = 0
    for s, c in ckpts.items():
        r = card.readings.get((s, c, split))
        if r is not None:
            k += int(r[col].sum())
            n += int(r["faces"].sum())
    return k / n if n else math.nan


def _skill_diff(card: Card, a: Mapping, b: Mapping) -> Paired | None:
    """Paired bootstrap over report hands of the per-hand difference in the share of face
    cards written as the rule says (a minus b), stratified over the seeds both have."""
    parts = []
    for s in a:
        ra, rb = card.readings.get((s, a[s], REPORT_SPLIT)), card.readings.get((s, b.get(s), REPORT_SPLIT))
        if ra is None or rb is None or not ra.index.equals(rb.index):
            continue
        faces = ra["faces"].to_numpy(dtype=float)
        keep = faces > 0
        parts.append(((ra["as_rule"].to_numpy(float) - rb["as_rule"].to_numpy(float))[keep] / faces[keep]))
    if not parts or not any(p.size for p in parts):
        return None
    return bootstrap_mean(parts if len(parts) > 1 else parts[0], card.boot_seed, card.n_boot, card.alpha)


def _skill_peak(card: Card, s: Seed) -> tuple[str | None, str]:
    """The SFT checkpoint whose first replies write the most OOD face cards as the rule says,
    on the validation hands (ties: the earliest); else None (then every length is a candidate)."""
    best = None
    for step, c in s.sft:
        share = _skill_share(card, {s.seed: c}, split=SKILL_SPLIT)
        if not math.isnan(share) and (best is None or share > best[0]):
            best = (share, c)
    return (best[1], SKILL_SPLIT) if best else (None, "eval")


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.1f}%"


def skill1(card: Card, seeds: list) -> tuple[str, str]:
    """Finding 1 on the graded skill (rlheals.task.reading) instead of success: the share of
    OOD face cards the first reply writes as the stated rule says peaks before the last SFT
    length and not where the test loss is lowest. Same logic and the same L as `finding1`
    (the paper's test loss, else the unseen-problem loss of a run without it): the skill
    peak chosen on validation hands (else every earlier length a candidate, Holm-corrected);
    differences by a paired bootstrap over the report hands."""
    ss = [card.seeds[s] for s in seeds]
    if not card.readings:
        return UNSURE, "no per-hand readings"
    if any(len(s.sft) < 2 for s in ss) or any(s.lowest_loss is None for s in ss):
        return UNSURE, "needs at least two SFT lengths and the ID test or held-out loss at them"
    last = {s.seed: s.sft[-1][1] for s in ss}
    low = {s.seed: s.lowest_loss[1] for s in ss}
    picks = {s.seed: _skill_peak(card, s) for s in ss}
    if all(c is not None for c, _ in picks.values()):
        candidates, where = [{k: c for k, (c, _) in picks.items()}], SKILL_SPLIT
    else:
        common = sorted(set.intersection(*(set(st for st, _ in s.sft[:-1]) for s in ss)))
        candidates, where = [{s.seed: f"sft-{st}" for s in ss} for st in common], "eval"
    tests = []
    for cand in candidates:
        drop, miss = _skill_diff(card, cand, last), _skill_diff(card, cand, low)
        tests.append((cand, drop, miss, max(_p_if(drop), _p_if(miss))))
    adj = holm([t[3] for t in tests]) if tests else []
    base = {s.seed: "base" for s in ss}

    def at(ckpts: Mapping) -> str:
        names = sorted(set(ckpts.values()))
        return (f"{'/'.join(names)} {_pct(_skill_share(card, ckpts))} "
                f"(as 10: {_pct(_skill_share(card, ckpts, 'as_ten'))})")

    text = ("OOD face cards written as the stated rule (first replies"
            + (f"; peak chosen on {where}" if where != "eval" else "; every earlier length a candidate") + "): "
            + (f"{at(base)}; " if any((s, "base", REPORT_SPLIT) in card.readings for s in base) else ""))
    if not tests:
        return UNSURE, text + "no candidate SFT length"
    i = int(np.argmin(adj))
    cand, drop, miss, _ = tests[i]
    loss = "paper's test loss" if _loss_names(ss)[0].startswith("paper") else "unseen-problem loss, no test loss logged"
    text += f"peak {at(cand)}; last {at(last)}; lowest-loss ({loss}) {at(low)}"
    for name, r in (("peak - last", drop), ("peak - lowest-loss", miss)):
        if r is not None:
            text += f"; {name} {100 * r.diff:+.1f} pts [{100 * r.low:+.1f}, {100 * r.high:+.1f}] p={_fmt_p(r.p_value)}"
    if len(tests) > 1:
        text += f"; Holm over {len(tests)} candidates p={_fmt_p(adj[i])}"
    if adj[i] < card.alpha:
        return HOLDS, text
    rises = [_skill_diff(card, last, {s.seed: f"sft-{st}" for s in ss}) for st, _ in ss[0].sft[:-1]]
    if rises and all(r is not None and r.sign > 0 for r in rises):
        return FAILS, text + "; the skill at the last SFT length is above every earlier length outside noise"
    return UNSURE, text + "; within noise"


def _skill_text(card: Card, seeds: list) -> str:
    verdict, text = skill1(card, seeds)
    if len(seeds) > 1:
        per = {s: skill1(card, [s])[0] for s in seeds}
        text += f" [{_seed_summary(per)}]"
    return f"{verdict.upper()}: {text}"


# ---------------------------------------------------------------- findings 2 and 3
@dataclass
class Fork:
    algo: str
    step: int
    strata: dict  # seed -> (start ckpt, end ckpt) for the seeds where it starts after the peak
    gap: Paired | None = None  # start vs peak
    up: Paired | None = None  # end vs start
    over: Paired | None = None  # end vs peak


def _forks(card: Card, seeds: list) -> tuple[list[Fork], list[str]]:
    """Forks that count (after the peak, start below it outside noise) and why others do not."""
    by_key: dict[tuple, dict] = {}
    after: dict[tuple, dict] = {}
    for s in (card.seeds[x] for x in seeds):
        if s.peak is None:
            continue
        for algo, step, start, end in s.forks:
            by_key.setdefault((algo, step), {})[s.seed] = (start, end)
            if step > s.peak[0]:
                after.setdefault((algo, step), {})[s.seed] = (start, end)
    kept, left = [], []
    for key in sorted(by_key):
        algo, step = key
        strata = after.get(key, {})
        if not strata:
            left.append(f"{algo} from {step} (at or before the OOD peak)")
            continue
        peak = {s: card.seeds[s].peak[1] for s in strata}
        start = {s: v[0] for s, v in strata.items()}
        end = {s: v[1] for s, v in strata.items()}
        f = Fork(algo, step, strata, card.paired(start, peak), card.paired(end, start), card.paired(end, peak))
        if f.gap is None or f.gap.sign >= 0:
            left.append(f"{algo} from {step} (start not below the peak outside noise)")
            continue
        kept.append(f)
    return kept, left


def finding2(card: Card, seeds: list) -> tuple[str, str]:
    if not any(card.seeds[s].forks for s in seeds) or any(card.seeds[s].peak is None for s in seeds):
        return UNSURE, "needs SFT checkpoints and RL forks"
    forks, left = _forks(card, seeds)
    peak = {s: card.seeds[s].peak[1] for s in seeds}
    text = f"SFT peak {card.rate(peak)}"
    if left:
        text += "; left out: " + ", ".join(left)
    if not forks:
        return UNSURE, text + "; no fork starts after the OOD peak below it outside noise"
    adj = holm([_p_if(f.up) for f in forks])
    parts = []
    for f, a in zip(forks, adj):
        start = {s: v[0] for s, v in f.strata.items()}
        end = {s: v[1] for s, v in f.strata.items()}
        p_peak, p_start, p_end = card.p_rate({s: peak[s] for s in f.strata}), card.p_rate(start), card.p_rate(end)
        share = (p_end - p_start) / (p_peak - p_start) if p_peak > p_start else math.nan
        parts.append(f"{f.algo} from {f.step}: {100 * p_start:.1f}->{100 * p_end:.1f}% "
                     f"(recovered {'n/a' if math.isnan(share) else f'{100 * share:.0f}%'}; {f.up}; Holm p={_fmt_p(a)})")
    text += "; " + "; ".join(parts)
    over = [f"{f.algo}-{f.step}" for f in forks if f.over is not None and f.over.sign > 0]
    if over:
        return FAILS, text + f"; exceeds the SFT peak outside noise: {', '.join(over)}"
    if any(a < card.alpha for a in adj):
        return HOLDS, text
    if all(f.up is not None and f.up.sign < 0 for f in forks):
        return FAILS, text + "; every counted fork lowers OOD outside noise"
    return UNSURE, text + "; no recovery outside noise"


def _rescued(card: Card, seed, ckpt: str | None, split: str) -> pd.Series | None:
    """Per hand: failed at attempt 1 and solved within the attempts (None without attempt-1 outcomes)."""
    within, first = card.out(seed, ckpt, split), card.outcomes_at_1.get((seed, ckpt, split)) if ckpt else None
    if within is None or first is None:
        return None
    return within & ~first


def _channel_rate(card: Card, ckpts: Mapping, split: str) -> str:
    """Pooled rescue rate of {seed: ckpt}: rescued / failed at attempt 1, with its interval."""
    k = n = 0
    for s, c in ckpts.items():
        r, first = _rescued(card, s, c, split), card.outcomes_at_1.get((s, c, split))
        if r is not None:
            k, n = k + int(r.sum()), n + int((~first).sum())
    if n == 0:
        return "n/a"
    low, high = wilson(k, n, card.alpha)
    return f"{100 * k / n:.1f}% [{100 * low:.1f}, {100 * high:.1f}] ({k}/{n})"


def _paired_on(card: Card, a: Mapping, b: Mapping, split: str, table: str) -> Paired | None:
    """McNemar of a[seed] against b[seed] on attempt-1 success ("at_1") or on being rescued ("rescued")."""
    xs, ys = [], []
    for s in a:
        if table == "at_1":
            x, y = card.outcomes_at_1.get((s, a[s], split)), card.outcomes_at_1.get((s, b.get(s), split))
        else:
            x, y = _rescued(card, s, a[s], split), _rescued(card, s, b.get(s), split)
        if x is not None and y is not None:
            xs.append(x)
            ys.append(y)
    return mcnemar(xs, ys, card.alpha) if xs else None


def channel2(card: Card, seeds: list) -> str:
    """Finding 2's second line: the feedback channel of every fork after the OOD peak. Per
    fork, start -> end on OOD: success at attempt 1 and the rescue rate (hands failed at
    attempt 1 and solved later, of those failed), each with a paired test on the same hands
    (McNemar on per-hand success at attempt 1 / on being rescued), and ID's within-N change
    beside, the control that tells healing from a generic "try again": a fork that raises
    ID and OOD alike taught retrying, not the OOD rule."""
    if not card.outcomes_at_1 or card.attempts <= 1:
        return ""
    if any(card.seeds[x].peak is None for x in seeds):
        return ""
    parts = []
    forks: dict[tuple, dict] = {}
    for s in (card.seeds[x] for x in seeds):
        for algo, step, start, end in s.forks:
            if step > s.peak[0]:
                forks.setdefault((algo, step), {})[s.seed] = (start, end)
    for (algo, step), strata in sorted(forks.items()):
        start = {s: v[0] for s, v in strata.items()}
        end = {s: v[1] for s, v in strata.items()}
        at1 = _paired_on(card, end, start, REPORT_SPLIT, "at_1")
        resc = _paired_on(card, end, start, REPORT_SPLIT, "rescued")
        idw = card.paired(end, start, "id")
        parts.append(f"{algo} from {step}: OOD at attempt 1 {at1 or 'n/a'}; OOD rescue "
                     f"{_channel_rate(card, start, REPORT_SPLIT)} -> {_channel_rate(card, end, REPORT_SPLIT)} "
                     f"(rescued hands {resc or 'n/a'}); ID within {card.attempts} {idw or 'n/a'}")
    if not parts:
        return ""
    return f"CHANNEL (within {card.attempts} vs attempt 1, end vs start): " + "; ".join(parts)


def _gain(card: Card, f: Fork) -> dict:
    """{seed: per-hand gain (end - start)} of a fork on the report split."""
    out = {}
    for s, (start, end) in f.strata.items():
        a, b = card.out(s, end), card.out(s, start)
        if a is not None and b is not None:
            out[s] = gain_per_hand(a, b)
    return out


def _gain_diff(card: Card, ga: dict, gb: dict) -> Paired | None:
    common = [s for s in ga if s in gb]
    if not common:
        return None
    return bootstrap_mean([ga[s] - gb[s] for s in common], seed=card.boot_seed, n_boot=card.n_boot, alpha=card.alpha)


def finding3(card: Card, seeds: list) -> tuple[str, str]:
    forks, _ = _forks(card, seeds)
    if not forks:
        return UNSURE, "no counted forks (finding 2: after the OOD peak, start below it outside noise)"
    texts, tests, fails = [], [], []
    for algo in sorted({f.algo for f in forks}):
        fs = sorted((f for f in forks if f.algo == algo), key=lambda f: f.step)
        if len(fs) < 3:
            texts.append(f"{algo}: {len(fs)} counted fork steps; needs at least 3")
            continue
        gains = {f.step: _gain(card, f) for f in fs}
        mean_gain = {st: np.mean(np.concatenate(list(g.values()))) if g else math.nan for st, g in gains.items()}
        first, last, inner = fs[0].step, fs[-1].step, [f.step for f in fs[1:-1]]
        texts.append(f"{algo} gains " + ", ".join(f"{st}: {100 * mean_gain[st]:+.1f}" for st in gains) + " pt")
        for st in inner:
            vs_first, vs_last = _gain_diff(card, gains[st], gains[first]), _gain_diff(card, gains[st], gains[last])
            tests.append((f"{algo} {st}", vs_first, vs_last, max(_p_if(vs_first), _p_if(vs_last))))
        for end in (first, last):
            wins = [_gain_diff(card, gains[end], gains[st]) for st in inner]
            if wins and all(w is not None and w.sign > 0 for w in wins):
                fails.append(f"{algo} {end}")
    text = "; ".join(texts)
    if tests:
        adj = holm([t[3] for t in tests])
        i = int(np.argmin(adj))
        name, vf, vl, _ = tests[i]
        text += (f"; best interior fork {name}: vs first {vf}, vs last {vl}; "
                 f"Holm over {len(tests)} interior fork{'s' if len(tests) > 1 else ''}: p={_fmt_p(adj[i])}")
        if adj[i] < card.alpha:
            return HOLDS, text + "; an interior fork beats both ends"
    if fails:
        return FAILS, text + f"; an end fork recovers most outside noise: {', '.join(fails)}"
    return UNSURE, text + ("; differences within noise" if tests else "")


# ---------------------------------------------------------------- finding 4
def _spectral_rows(card: Card, seeds: list) -> tuple[pd.DataFrame | None, str]:
    frames, which = [], set()
    for s in (card.seeds[x] for x in seeds):
        a = s.analysis
        if a is None or a.empty:
            return None, "no SVD analysis"
        last, best = s.refs.get("sft_last"), s.refs.get("sft_best")
        rows = a[(a["checkpoint"] == last) & (a["reference_ckpt"] == best)] if best != last else a.iloc[0:0]
        label = "sft_last vs sft_best"
        if rows.empty:
            rows, label = a[(a["checkpoint"] == last) & (a["reference"] == "base")], "sft_last vs base"
        if rows.empty:
            return None, f"no analysis rows for {last}"
        frames.append(rows)
        which.add(label)
    return pd.concat(frames, ignore_index=True), " / ".join(sorted(which))


def chordal(rows: pd.DataFrame, side: str) -> np.ndarray:
    """Normalised chordal distance of the top-k subspaces per row, sqrt(mean_i sin^2 theta_i) in
    [0, 1] (the paper's chordal.png measure), from the projection distance ||P_ref - P||_F =
    sqrt(2 sum sin^2 theta)."""
    col = f"chordal_{side}"
    if col in rows:
        return rows[col].to_numpy(dtype=float)
    return rows[f"proj_dist_{side}"].to_numpy(dtype=float) / np.sqrt(2.0 * rows["k"].to_numpy(dtype=float))


def paper_measures(card: Card, seeds: list) -> str:
    """Finding 4's spectral half as the paper measures it, per seed beside ours: the mean
    |dsigma|/sigma over all singular values (sigma_shift.png; the paper: 0.3-0.4%) and the
    chordal distance of the top-k subspaces per matrix type (chordal.png; the paper: ~0.85 for
    U of up_proj and V of k_proj), sft_last against sft_best; ours: the top-k rotation against
    the scaling (the rule's ratio) and against the same-size random null."""
    parts = []
    for s in seeds:
        rows, which = _spectral_rows(card, [s])
        if rows is None:
            continue
        if {"chordal_left", "chordal_right"} <= set(rows) or {"proj_dist_left", "proj_dist_right", "k"} <= set(rows):
            by_type = (rows.assign(cl=chordal(rows, "left"), cr=chordal(rows, "right"))
                       .groupby("matrix", sort=False)[["cl", "cr"]].mean())
            chord = ", ".join(f"{m} {r.cl:.2f}/{r.cr:.2f}" for m, r in by_type.iterrows())
        else:
            chord = "n/a (no projection distances in the analysis)"
        ang = (rows["angle_left_mean"].to_numpy() + rows["angle_right_mean"].to_numpy()) / 2
        dsig = rows["sigma_rel_change_topk"].to_numpy() if "sigma_rel_change_topk" in rows else rows["sigma_rel_change_mean"].to_numpy()
        ratio = float(np.mean(np.sin(ang))) / float(np.mean(dsig)) if np.mean(dsig) > 0 else math.inf
        parts.append(f"seed {s} ({which}): paper's: mean |dsigma|/sigma all singular values "
                     f"{100 * rows['sigma_rel_change_mean'].mean():.2f}% (the paper: 0.3-0.4%), chordal distance "
                     f"U/V top-k {chord}; ours: sin(top-k angle)/|dsigma|/sigma top-k {ratio:.3g} "
                     f"(the rule asks >= {card.ratio:g}), {spectral(card, [s])[0]}")
    return "PAPER'S MEASURES beside ours, per seed: " + "; ".join(parts) if parts else ""


def spectral(card: Card, seeds: list) -> tuple[str, str]:
    rows, which = _spectral_rows(card, seeds)
    if rows is None:
        return UNSURE, which
    need = ["sigma_rel_change_topk", "null_angle_mean", "null_sigma_rel_change_topk", "spectral_gap"]
    missing = [c for c in need if c not in rows.columns or rows[c].isna().all()]
    if missing:
        return UNSURE, f"{which}: the analysis lacks the null columns {missing} (rerun the analysis)"
    ang = (rows["angle_left_mean"].to_numpy() + rows["angle_right_mean"].to_numpy()) / 2
    sin_obs, dsig_obs = np.sin(ang), rows["sigma_rel_change_topk"].to_numpy()
    sin_null, dsig_null = np.sin(rows["null_angle_mean"].to_numpy()), rows["null_sigma_rel_change_topk"].to_numpy()
    # rotation-to-scaling ratio, observed against null, by cross-multiplication (no division by 0)
    lhs, rhs = sin_obs * dsig_null, sin_null * dsig_obs
    wins, losses = int(np.sum(lhs > rhs)), int(np.sum(lhs < rhs))
    p = binom_two_sided(wins, wins + losses)
    sin_mean, dsig_mean = float(sin_obs.mean()), float(dsig_obs.mean())
    text = (f"{which}: mean |dsigma|/sigma top-k {100 * dsig_mean:.2f}% (all {100 * rows['sigma_rel_change_mean'].mean():.2f}%), "
            f"mean top-k angle {np.degrees(ang.mean()):.1f} deg (sin {sin_mean:.3f}); same-size random null: "
            f"angle {np.degrees(rows['null_angle_mean'].mean()):.1f} deg, |dsigma|/sigma top-k "
            f"{100 * dsig_null.mean():.2f}% (all {100 * rows['null_sigma_rel_change_mean'].mean():.2f}%); "
            f"rotation/scaling above the null's in {wins} of {wins + losses} matrices (sign test p={_fmt_p(p)}); "
            f"mean spectral gap at k {rows['spectral_gap'].mean():.3f}")
    if sin_mean == 0 and dsig_mean == 0:
        return UNSURE, text + "; identical weights"
    if sin_mean < card.ratio * dsig_mean:
        return FAILS, text + f"; rotation < {card.ratio:g}x scaling"
    if p < card.alpha and losses > wins:
        return FAILS, text + "; rotates less than a random perturbation of the same size"
    if p < card.alpha and wins > losses:
        return HOLDS, text + f"; rotation >= {card.ratio:g}x scaling and beyond the null"
    return UNSURE, text + f"; rotation >= {card.ratio:g}x scaling, but not beyond a random perturbation of the same size"


def edit_pairs(edits) -> list[tuple[dict, dict]]:
    """Every `directions` edit with the `values` edit of the same donor, target, k, layers and
    matrices (rlheals.config.edit_key), in the config's order: the sweep finding 4 tests."""
    from rlheals.config import edit_key

    out = []
    for d in edits:
        if d["kind"] != "directions":
            continue
        for v in edits:
            if v["kind"] == "values" and edit_key(v) == edit_key(d):
                out.append((d, v))
                break
    return out


def _k_text(k) -> str:
    return f"{100 * float(k):g}% of the rank" if isinstance(k, float) else f"k={int(k)}"


def _count(card: Card, ckpts: Mapping, split: str = REPORT_SPLIT) -> str:
    """Pooled 'p% (k/n)' of {seed: ckpt} on `split` (compact, for the edit lines)."""
    k, n = card.counts(ckpts, split)
    return f"{100 * k / n:.1f}% ({k}/{n})" if n else "n/a"


def _resolved(card: Card, name: str, seeds: list) -> dict:
    from rlheals.report.references import resolve

    out = {}
    for s in seeds:
        try:
            out[s] = resolve(name, card.seeds[s].refs or None)
        except ValueError:
            out[s] = None
    return out


def _chosen_share(card: Card, pairs: list, seeds: list) -> int | None:
    """Index of the pair whose directions edit solves the most OOD validation hands (pooled over
    seeds; ties: the larger share, as the paper's 62-87%), None without validation outcomes."""
    best = None
    for i, (d, _) in enumerate(pairs):
        vals = [card.out(s, f"edit-{d['name']}", SELECTION_SPLIT) for s in seeds]
        if any(v is None for v in vals):
            return None
        score = (sum(int(np.sum(v)) for v in vals), float(d["k"]) if isinstance(d["k"], float) else 0.0, -i)
        if best is None or score > best[0]:
            best = (score, i)
    return best[1] if best else None


#: The OOD validation hands: where a share of the rank to quote is chosen (rules/common.smk).
SELECTION_SPLIT = "val_ood"


def edit_part(card: Card, seeds: list) -> tuple[str, str]:
    """Finding 4's edit half on the sweep: at each share (pair of a directions and a values
    edit), directions above values and above the target, both outside noise (the larger
    p-value), Holm-corrected over the shares tried; fails when values beat directions at some
    share outside noise (Holm). The share quoted first is the one chosen on the OOD
    validation hands; the layer-range, triplet and reverse edits are reported beside."""
    pairs = edit_pairs(card.edits)
    if not pairs:
        return UNSURE, "no directions/values edit pair with the same donor, target and k"
    tests = []
    for d, v in pairs:
        dirs = {s: f"edit-{d['name']}" for s in seeds}
        vals = {s: f"edit-{v['name']}" for s in seeds}
        target = _resolved(card, d["target"], seeds)
        dv, dt = card.paired(dirs, vals), card.paired(dirs, target)
        if dv is None:
            return UNSURE, f"edits {d['name']}/{v['name']} have no per-hand outcomes"
        tests.append((d, v, dirs, vals, target, dv, dt, max(_p_if(dv), _p_if(dt)), _p_if(dv, -1)))
    adj, adj_rev = holm([t[7] for t in tests]), holm([t[8] for t in tests])
    d0 = pairs[0][0]
    target0 = _resolved(card, d0["target"], seeds)
    donor0 = _resolved(card, d0["donor"], seeds)
    text = (f"edits {d0['donor']} -> {d0['target']}: OOD target {card.rate(target0)}, donor {card.rate(donor0)}; "
            f"ID target {_count(card, target0, 'id')}, donor {_count(card, donor0, 'id')}")
    chosen = _chosen_share(card, pairs, seeds)
    if chosen is not None:
        d, v, dirs, vals, target, dv, dt, _, _ = tests[chosen]
        text += (f"; share chosen on {SELECTION_SPLIT} ({_count(card, dirs, SELECTION_SPLIT)} of the validation "
                 f"hands): {_k_text(d['k'])}: directions {card.rate(dirs)} vs values {card.rate(vals)} ({dv}); "
                 f"directions vs target ({dt}); ID directions {_count(card, dirs, 'id')}, values {_count(card, vals, 'id')}")
    parts = []
    for (d, v, dirs, vals, target, dv, dt, _, _), a in zip(tests, adj):
        parts.append(f"{_k_text(d['k'])}{' layers ' + str(d['layers']) if d.get('layers') else ''}: "
                     f"OOD directions {_count(card, dirs)} vs values {_count(card, vals)} (McNemar p={_fmt_p(dv.p_value)}), "
                     f"vs target p={_fmt_p(dt.p_value) if dt else 'n/a'}, Holm p={_fmt_p(a)}; "
                     f"ID {_count(card, dirs, 'id')} vs {_count(card, vals, 'id')}")
    text += f"; the sweep (Holm over {len(tests)} share{'s' if len(tests) > 1 else ''}): " + "; ".join(parts)
    others = []
    for e in card.edits:
        if any(e is d or e is v for d, v in pairs):
            continue
        ck = {s: f"edit-{e['name']}" for s in seeds}
        if all(card.out(s, ck[s]) is None for s in seeds):
            continue
        tgt = _resolved(card, e["target"], seeds)
        r = card.paired(ck, tgt)
        where = f", layers {e['layers']}" if e.get("layers") else ""
        others.append(f"{e['name']} ({e['kind']} {_k_text(e['k'])}{where}, {e['donor']} -> {e['target']}): "
                      f"OOD {_count(card, ck)} vs target {_count(card, tgt)} ({r or 'n/a'}); "
                      f"ID {_count(card, ck, 'id')} vs {_count(card, tgt, 'id')}")
    if others:
        text += "; other edits: " + "; ".join(others)
    if min(adj) < card.alpha:
        return HOLDS, text + "; a direction restore beats the value swap and the target outside noise"
    if min(adj_rev) < card.alpha:
        return FAILS, text + "; a value swap beats the direction restore outside noise"
    return UNSURE, text + "; within noise at every share"


def finding4(card: Card, seeds: list) -> tuple[str, str]:
    spec, spec_text = spectral(card, seeds)
    edit, edit_text = edit_part(card, seeds)
    text = f"{spec_text}; {edit_text}"
    if FAILS in (spec, edit):
        return FAILS, text
    if spec == edit == HOLDS:
        return HOLDS, text
    return UNSURE, text


RULES = {1: finding1, 2: finding2, 3: finding3, 4: finding4}
_USES = {1: "sft_best", 2: "sft_best", 3: "sft_best", 4: "sft_best"}


def _chooser_text(card: Card, finding: int) -> str:
    sym = _USES[finding]
    split = card.chosen_on.get(sym, "eval")
    where = "the report hands" if _on_report(split) else "validation hands"
    role = "the OOD peak" if finding < 4 else "the edit donor and the reference"
    return f"{role} = {sym}, chosen on {split} ({where})"


def _seed_summary(per_seed: dict) -> str:
    if len(per_seed) == 1:
        (s, v), = per_seed.items()
        return f"1 seed ({s}): {v}"
    n_hold = sum(v == HOLDS for v in per_seed.values())
    detail = ", ".join(f"{s}: {v}" for s, v in per_seed.items())
    return f"holds in {n_hold} of {len(per_seed)} seeds ({detail})"


def build(eval_table: pd.DataFrame, loss_table=None, analysis_table=None, edits=(), refs=None,
          alpha: float = DEFAULT_ALPHA, ratio: float = 10.0, outcomes: Mapping | None = None,
          seeds=None, boot_seed: int = 0, n_boot: int = 10000, readings: Mapping | None = None,
          outcomes_at_1: Mapping | None = None, attempts: int = 1) -> pd.DataFrame:
    """The scorecard table (columns COLUMNS): one row per finding, judged on the pooled
    per-hand outcomes of all seeds, with each seed's own verdict in `seeds`.

    outcomes: {(seed, checkpoint, split): per-hand bool Series/array ordered by hand id}
    (rlheals.evaluation.outcomes.load_outcomes); refs: one replicate's references or
    {"seeds": {seed: references}}; tables may carry a `seed` column; boot_seed seeds the
    paired bootstrap (the config seed); readings: {(seed, checkpoint, split): per-hand
    face-card reading} (rlheals.evaluation.outcomes.load_readings), for finding 1's second
    line on the graded skill (`skill` column); outcomes_at_1: the same at attempt 1 and
    attempts: the evaluation's attempts per hand (success within them is every finding's
    metric), for finding 2's second line on the feedback channel (`skill` column, channel2).
    """
    outcomes = dict(outcomes or {})
    seed_info = _prepare(eval_table, loss_table, analysis_table, refs, outcomes, seeds)
    first = next(iter(seed_info.values())).refs if seed_info else {}
    top = refs if refs and ("chosen_on" in refs or "split" in refs) else first  # file-wide or per seed
    card = Card(seed_info, outcomes, alpha, ratio, boot_seed, n_boot, list(edits), _chosen_on(top or {}),
                dict(readings or {}), dict(outcomes_at_1 or {}), int(attempts))
    _locate(card)
    order = list(seed_info)
    rows = []
    for i, rule in RULES.items():
        verdict, value = rule(card, order)
        per_seed = {s: rule(card, [s])[0] for s in order} if len(order) > 1 else {order[0]: verdict}
        seeds_text = _seed_summary(per_seed)
        if i == 1 and len(order) > 1:
            ours = _finding1_by_unseen(card, order)
            if ours:
                seeds_text += f"; by the unseen-problem loss (ours): {_seed_summary(ours)}"
        rows.append({"finding": i, "claim": CLAIMS[i], "verdict": verdict, "seeds": seeds_text,
                     "value": (f"success within {card.attempts} attempts: " if card.attempts > 1 and i < 4 else "") + value,
                     "skill": (_skill_text(card, order) if i == 1 else channel2(card, order) if i == 2
                               else paper_measures(card, order) if i == 4 else ""),
                     "chosen_on": _chooser_text(card, i), "figure": FIGURES[i]})
    return pd.DataFrame(rows, columns=COLUMNS)


def _finding1_by_unseen(card: Card, order: list) -> dict:
    """Each seed's finding-1 verdict with L the lowest unseen-problem loss (ours) instead of the
    paper's test loss, for the `seeds` column beside the paper's; {} when the verdict already
    uses the unseen-problem loss (a run without the paper's test loss)."""
    ss = [card.seeds[s] for s in order]
    if any(s.lowest_unseen is None or s.lowest_from != PAPER_LOSS for s in ss):
        return {}
    saved = {s.seed: s.lowest_loss for s in ss}
    try:
        for s in ss:
            s.lowest_loss = s.lowest_unseen
        return {s: finding1(card, [s])[0] for s in order}
    finally:
        for s in ss:
            s.lowest_loss = saved[s.seed]


def format_table(card: pd.DataFrame, n_text: str = "") -> str:
    """Plain-text rendering for the end of a run."""
    lines = ["", "Scorecard of the paper's findings" + (f" ({n_text})" if n_text else ""), "=" * 34,
             "(pooled over seeds; paired tests on the same hands: McNemar, bootstrap of gains, Holm where a "
             "finding takes the best of several)"]
    for r in card.itertuples():
        lines += [f"[{r.finding}] {str(r.verdict).upper()}: {r.claim}"]
        if "seeds" in card.columns and isinstance(r.seeds, str):
            lines.append(f"    seeds: {r.seeds}")
        lines.append(f"    {r.value}")
        if "skill" in card.columns and isinstance(r.skill, str) and r.skill:
            lines.append(f"    {SKILL_LABELS.get(r.finding, 'more')}: {r.skill}")
        if "chosen_on" in card.columns and isinstance(r.chosen_on, str):
            lines.append(f"    chosen: {r.chosen_on}")
        lines.append(f"    figure: {r.figure}")
    return "\n".join(lines)


def print_scorecard(path) -> None:
    """Print results/tables/scorecard.csv, if the run produced one."""
    import os

    if os.path.exists(path):
        print(format_table(pd.read_csv(path)))
