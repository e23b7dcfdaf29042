"""The scorecard: does each of the paper's four findings hold on this run's numbers?

Verdicts are `holds`, `does not hold` or `inconclusive`. A difference between two success
rates is called only when a two-sided two-proportion z-test rejects equality at level
alpha (rlheals.evaluation.stats.compare_rates; gains, i.e. differences of differences, use
compare_gains). Everything within noise is "inconclusive" unless the finding's opposite
is itself outside noise. The rules, finding by finding:

1. OOD peaks before the last SFT length and the peak is not where held-out loss is lowest.
   holds: the OOD peak is before the last step, OOD(peak) > OOD(last), and the SFT
   checkpoint with the lowest held-out ID loss has OOD < OOD(peak), both outside noise.
   does not hold: the peak is the last step, or the lowest-loss checkpoint is the peak.
2. RL from some SFT checkpoint recovers part of the lost OOD without exceeding the SFT peak.
   holds: some fork's final RL checkpoint is above its start (outside noise) and no fork
   is above the SFT peak (outside noise). does not hold: a fork exceeds the peak, or no
   fork's OOD rises at all (point estimate) while some fork had a lost gap outside noise.
   The recovered share is (RL - start) / (peak - start).
3. There is a window: forks from too early or too late recover less.
   holds: the largest gain of an interior fork beats the gains of the earliest and of the
   latest fork (outside noise). does not hold: an end fork's gain beats every interior
   fork's (outside noise). Needs >= 3 fork steps; algorithms are judged separately and
   the finding holds if it holds for one of them.
4. Mean relative sigma change is small while principal angles are large, and
   direction-only restore recovers OOD more than value swap does.
   Spectral part (sft_last against sft_best, else against base): holds when the mean sine
   of the top-k principal angles is at least `ratio` times the mean |dsigma|/sigma, else
   does not hold (deterministic, no binomial noise). Edit part: a `directions` and a
   `values` edit with the same donor and target; holds when OOD(directions) > OOD(values)
   outside noise, does not hold when OOD(values) > OOD(directions) outside noise.
   Both parts must hold; either failing makes the finding not hold.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rlheals.evaluation.stats import DEFAULT_ALPHA, compare_gains, compare_rates, wilson

HOLDS, FAILS, UNSURE = "holds", "does not hold", "inconclusive"
COLUMNS = ["finding", "claim", "value", "verdict", "figure"]
FIGURES = {
    1: "sft_curves.png",
    2: "rl_forks.png",
    3: "rl_forks.png",
    4: "drift.png, angles_*.png, edits.png",
}
CLAIMS = {
    1: "OOD peaks before the last SFT length, and the peak is not where held-out loss is lowest",
    2: "RL from some SFT checkpoint recovers part of the lost OOD without exceeding the SFT peak",
    3: "there is a window: forks from too early or too late recover less",
    4: "mean relative sigma change is small while principal angles are large, "
    "and direction-only restore recovers OOD more than value swap",
}


@dataclass(frozen=True)
class Rate:
    """k/n OOD (or ID) successes of one checkpoint."""

    ckpt: str
    k: int
    n: int
    alpha: float = DEFAULT_ALPHA

    @property
    def p(self) -> float:
        return self.k / self.n if self.n else math.nan

    def __str__(self) -> str:
        low, high = wilson(self.k, self.n, self.alpha)
        return f"{self.ckpt} {100 * self.p:.1f}% [{100 * low:.1f}, {100 * high:.1f}] ({self.k}/{self.n})"


def _rates(eval_table: pd.DataFrame, split: str = "ood") -> dict[str, Rate]:
    rows = eval_table[eval_table["split"] == split]
    alpha = eval_table.attrs.get("alpha", DEFAULT_ALPHA)
    return {r.checkpoint: Rate(r.checkpoint, int(r.successes), int(r.n), alpha) for r in rows.itertuples()}


def _sft_curve(eval_table: pd.DataFrame) -> list[tuple[int, Rate]]:
    rates = _rates(eval_table)
    sft = eval_table[(eval_table["stage"] == "sft") & (eval_table["split"] == "ood")]
    return sorted((int(r.sft_step), rates[r.checkpoint]) for r in sft.itertuples())


def _start_rate(step: int, rates: dict[str, Rate]) -> Rate | None:
    return rates.get("base" if step == 0 else f"sft-{step}")


def finding1(eval_table, loss_table, alpha) -> tuple[str, str]:
    curve = _sft_curve(eval_table)
    if len(curve) < 2:
        return UNSURE, "needs at least two SFT lengths"
    peak_step, peak = max(curve, key=lambda sr: (sr[1].p, -sr[0]))
    last_step, last = curve[-1]
    value = f"peak {peak} at step {peak_step}; last {last}"
    if peak_step == last_step:
        return FAILS, value + "; OOD is highest at the last SFT length"
    drop = compare_rates(peak.k, peak.n, last.k, last.n, alpha)
    loss_ckpt = _lowest_loss_ckpt(curve, loss_table)
    if loss_ckpt is None:
        return UNSURE, value + "; no held-out loss logged at the SFT checkpoints"
    loss_step, loss_rate = loss_ckpt
    value += f"; lowest held-out ID loss at step {loss_step}: {loss_rate}"
    if loss_step == peak_step:
        return FAILS, value + " (the loss picks the peak)"
    miss = compare_rates(peak.k, peak.n, loss_rate.k, loss_rate.n, alpha)
    if drop.sign > 0 and miss.sign > 0:
        return HOLDS, value + f"; drop to last p={drop.p_value:.3g}, loss-picked vs peak p={miss.p_value:.3g}"
    return UNSURE, value + f"; within noise (drop p={drop.p_value:.3g}, loss-picked vs peak p={miss.p_value:.3g})"


def _lowest_loss_ckpt(curve, loss_table) -> tuple[int, Rate] | None:
    if loss_table is None or "heldout_id_loss" not in loss_table:
        return None
    losses = loss_table.dropna(subset=["heldout_id_loss"]).set_index("step")["heldout_id_loss"]
    at = [(float(losses[s]), s, r) for s, r in curve if s in losses.index]
    if not at:
        return None
    _, step, rate = min(at, key=lambda t: (t[0], t[1]))
    return step, rate


def _forks(eval_table: pd.DataFrame) -> list[tuple[str, int, Rate, Rate]]:
    """(algo, fork step, start rate, final RL rate) per fork, final = largest RL step."""
    rates = _rates(eval_table)
    rl = eval_table[(eval_table["stage"] == "rl") & (eval_table["split"] == "ood")]
    out = []
    for (algo, step), grp in rl.groupby(["rl_algo", "sft_step"]):
        final = grp.loc[grp["rl_step"].astype(int).idxmax(), "checkpoint"]
        start = _start_rate(int(step), rates)
        if start is not None:
            out.append((str(algo), int(step), start, rates[final]))
    return sorted(out, key=lambda f: (f[0], f[1]))


def finding2(eval_table, alpha) -> tuple[str, str]:
    curve, forks = _sft_curve(eval_table), _forks(eval_table)
    if not curve or not forks:
        return UNSURE, "needs SFT checkpoints and RL forks"
    peak = max((r for _, r in curve), key=lambda r: r.p)
    parts, any_up, any_gap, over, all_flat = [], False, False, [], True
    for algo, step, start, end in forks:
        up = compare_rates(end.k, end.n, start.k, start.n, alpha)
        gap = compare_rates(peak.k, peak.n, start.k, start.n, alpha)
        beyond = compare_rates(end.k, end.n, peak.k, peak.n, alpha)
        lost = peak.p - start.p
        share = f"{100 * (end.p - start.p) / lost:.0f}%" if lost > 0 else "n/a"
        parts.append(f"{algo} from {step}: {100 * start.p:.1f}->{100 * end.p:.1f}% (recovered {share}{'*' if up.sign > 0 else ''})")
        any_up |= up.sign > 0
        any_gap |= gap.sign > 0
        all_flat &= end.p <= start.p
        if beyond.sign > 0:
            over.append(f"{algo}-{step}")
    value = f"SFT peak {peak}; " + "; ".join(parts) + " (* outside noise)"
    if over:
        return FAILS, value + f"; exceeds the SFT peak: {', '.join(over)}"
    if any_up:
        return HOLDS, value
    if all_flat and any_gap:
        return FAILS, value + "; no fork raises OOD"
    return UNSURE, value + "; no recovery outside noise"


def finding3(eval_table, alpha) -> tuple[str, str]:
    forks = _forks(eval_table)
    if not forks:
        return UNSURE, "needs RL forks"
    verdicts = []
    for algo in sorted({f[0] for f in forks}):
        fs = [f for f in forks if f[0] == algo]
        if len(fs) < 3:
            verdicts.append((UNSURE, f"{algo}: {len(fs)} fork steps; needs at least 3"))
            continue
        gain = {f[1]: (f[3].k, f[3].n, f[2].k, f[2].n) for f in fs}
        p_gain = {s: g[0] / g[1] - g[2] / g[3] for s, g in gain.items()}
        steps = [f[1] for f in fs]
        first, last, inner = steps[0], steps[-1], steps[1:-1]
        best = max(inner, key=lambda s: (p_gain[s], -s))
        text = f"{algo} gains " + ", ".join(f"{s}: {100 * p_gain[s]:+.1f}" for s in steps) + " pt"
        vs_first, vs_last = compare_gains(gain[best], gain[first], alpha), compare_gains(gain[best], gain[last], alpha)
        if vs_first.sign > 0 and vs_last.sign > 0:
            verdicts.append((HOLDS, text + f"; best interior fork {best} beats both ends"))
        elif any(all(compare_gains(gain[e], gain[s], alpha).sign > 0 for s in inner) for e in (first, last)):
            verdicts.append((FAILS, text + "; an end fork recovers most"))
        else:
            verdicts.append((UNSURE, text + "; differences within noise"))
    return _combine_any(verdicts)


def _combine_any(verdicts) -> tuple[str, str]:
    """Across algorithms: holds if any holds, else does not hold if any fails, else inconclusive."""
    text = "; ".join(t for _, t in verdicts)
    for v in (HOLDS, FAILS):
        if any(x == v for x, _ in verdicts):
            return v, text
    return UNSURE, text


def finding4(eval_table, analysis_table, edits, refs, alpha, ratio) -> tuple[str, str]:
    spec, spec_text = _spectral(analysis_table, refs, ratio)
    edit, edit_text = _edit_part(eval_table, edits, refs, alpha)
    text = f"{spec_text}; {edit_text}"
    if FAILS in (spec, edit):
        return FAILS, text
    if spec == edit == HOLDS:
        return HOLDS, text
    return UNSURE, text


def _spectral(analysis, refs, ratio) -> tuple[str, str]:
    if analysis is None or analysis.empty or not refs:
        return UNSURE, "no SVD analysis"
    last, best = refs.get("sft_last"), refs.get("sft_best")
    rows = analysis[(analysis["checkpoint"] == last) & (analysis["reference_ckpt"] == best)]
    which = f"{last} vs sft_best ({best})"
    if rows.empty or last == best:
        rows = analysis[(analysis["checkpoint"] == last) & (analysis["reference"] == "base")]
        which = f"{last} vs base"
    if rows.empty:
        return UNSURE, f"no analysis rows for {last}"
    sig = float(rows["sigma_rel_change_mean"].mean())
    ang = np.concatenate([rows["angle_left_mean"].to_numpy(), rows["angle_right_mean"].to_numpy()])
    sin = float(np.mean(np.sin(ang)))
    text = f"{which}: mean |dsigma|/sigma {100 * sig:.2f}%, mean top-k angle {np.degrees(ang.mean()):.1f} deg (sin {sin:.3f})"
    if sig == 0 and sin == 0:
        return UNSURE, text + "; identical weights"
    if sin >= ratio * sig:
        return HOLDS, text + f"; rotation >= {ratio:g}x scaling"
    return FAILS, text + f"; rotation < {ratio:g}x scaling"


def _edit_part(eval_table, edits, refs, alpha) -> tuple[str, str]:
    from rlheals.report.references import resolve

    rates = _rates(eval_table)

    def key(e):
        try:
            return resolve(e["donor"], refs), resolve(e["target"], refs)
        except ValueError:
            return None

    dirs = [e for e in edits if e["kind"] == "directions" and f"edit-{e['name']}" in rates]
    vals = [e for e in edits if e["kind"] == "values" and f"edit-{e['name']}" in rates]
    pairs = [(d, v) for d in dirs for v in vals if key(d) is not None and key(d) == key(v)]
    if not pairs:
        return UNSURE, "no evaluated directions/values edit pair with the same donor and target"
    d, v = max(pairs, key=lambda dv: dv[0]["k"] == dv[1]["k"])
    rd, rv = rates[f"edit-{d['name']}"], rates[f"edit-{v['name']}"]
    cmp = compare_rates(rd.k, rd.n, rv.k, rv.n, alpha)
    text = f"OOD direction restore {rd} vs value swap {rv} (p={cmp.p_value:.3g})"
    target = rates.get(key(d)[1])
    if target is not None:
        text += f"; target {target}"
    return {1: HOLDS, -1: FAILS, 0: UNSURE}[cmp.sign], text


def build(eval_table, loss_table=None, analysis_table=None, edits=(), refs=None,
          alpha: float = DEFAULT_ALPHA, ratio: float = 10.0) -> pd.DataFrame:
    """The scorecard table (columns finding, claim, value, verdict, figure)."""
    eval_table = eval_table.copy()
    eval_table.attrs["alpha"] = alpha  # intervals in the text at the run's level
    results = {
        1: finding1(eval_table, loss_table, alpha),
        2: finding2(eval_table, alpha),
        3: finding3(eval_table, alpha),
        4: finding4(eval_table, analysis_table, list(edits), refs or {}, alpha, ratio),
    }
    rows = [{"finding": i, "claim": CLAIMS[i], "value": v, "verdict": verdict, "figure": FIGURES[i]}
            for i, (verdict, v) in results.items()]
    return pd.DataFrame(rows, columns=COLUMNS)


def format_table(card: pd.DataFrame, n_text: str = "") -> str:
    """Plain-text rendering for the end of a run."""
    lines = ["", "Scorecard of the paper's findings" + (f" ({n_text})" if n_text else ""), "=" * 34]
    for r in card.itertuples():
        lines += [f"[{r.finding}] {r.verdict.upper()}: {r.claim}", f"    {r.value}", f"    figure: {r.figure}"]
    return "\n".join(lines)


def print_scorecard(path) -> None:
    """Print results/tables/scorecard.csv, if the run produced one."""
    import os

    if os.path.exists(path):
        print(format_table(pd.read_csv(path)))
