"""The report's figures (matplotlib, Agg backend, PNG), one function per figure.

Every rate is drawn with its Wilson interval (band or error bar), so whether two points
differ beyond noise can be read off the figure. With several seed replicates (a `seed`
column in the tables) every seed is drawn thin or as dots, their mean bold, and the band
or bar is the min-max spread over seeds. With more than one evaluation attempt, success
within the N attempts is the solid line and success at attempt 1 the dotted one. Where
the eval table has the graded skill (`face_rule_rate`, `face_10_rate`), the SFT and RL
figures get a panel of it beside success, since it moves where success sits at the floor. Each function takes the tidy tables
(eval.csv, sft_loss.csv, analysis.csv) and writes one PNG atomically.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from rlheals.atomic import atomic_path  # noqa: E402

SPLIT_COLORS = {"id": "tab:blue", "ood": "tab:red", "id_seen": "tab:cyan"}
MATRIX_ORDER = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _save(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def _seeded(table: pd.DataFrame) -> pd.DataFrame:
    """The table with a `seed` column (tables of a single run without one count as seed 0)."""
    return table if "seed" in table.columns else table.assign(seed=0)


def _spread(rows: pd.DataFrame, x: str, value: str = "success_rate") -> pd.DataFrame:
    """Per x: mean, min and max of `value` over the replicates (seeds)."""
    return rows.groupby(x)[value].agg(["mean", "min", "max"]).reset_index().sort_values(x)


def _multi_attempt(rows: pd.DataFrame) -> int:
    """N when the rows were evaluated with N > 1 attempts (then attempt 1 is drawn too), else 0."""
    if "attempts" in rows and "success_rate_at_1" in rows and not rows.empty and int(rows["attempts"].max()) > 1:
        return int(rows["attempts"].max())
    return 0


def _curve(ax, rows: pd.DataFrame, x: str, color: str, label: str, marker: str = "o") -> None:
    """A success curve over `x`. One seed: the rate with its Wilson band. Several seeds:
    each seed as a thin line, their mean as a thick one and the min-max spread shaded.
    With N > 1 attempts: success within N solid, at attempt 1 dotted (mean over seeds)."""
    attempts = _multi_attempt(rows)
    if attempts:
        at1 = _spread(rows, x, "success_rate_at_1")
        ax.plot(at1[x], 100 * at1["mean"], marker=marker, color=color, linestyle=":", mfc="none",
                label=f"{label} (attempt 1)")
        label = f"{label} (within {attempts})"
    seeds = sorted(rows["seed"].unique())
    if len(seeds) <= 1:
        rows = rows.sort_values(x)
        ax.plot(rows[x], 100 * rows["success_rate"], marker=marker, color=color, label=label)
        ax.fill_between(rows[x], 100 * rows["ci_low"], 100 * rows["ci_high"], color=color, alpha=0.18, linewidth=0)
        return
    for seed in seeds:
        one = rows[rows["seed"] == seed].sort_values(x)
        ax.plot(one[x], 100 * one["success_rate"], color=color, alpha=0.35, linewidth=0.8)
    agg = _spread(rows, x)
    ax.plot(agg[x], 100 * agg["mean"], marker=marker, color=color, linewidth=2,
            label=f"{label}, mean of {len(seeds)} seeds")
    ax.fill_between(agg[x], 100 * agg["min"], 100 * agg["max"], color=color, alpha=0.15, linewidth=0)


def _n_seeds(table: pd.DataFrame) -> int:
    return int(table["seed"].nunique()) if not table.empty else 0


def _band_note(table: pd.DataFrame) -> str:
    return "95% CI" if _n_seeds(table) <= 1 else "thin: seeds, band: min-max over seeds"


#: sft_curves' loss lines: column -> (color, line style, legend). Two ID losses, because they
#: answer different questions: the paper's test loss (hands mostly of SFT's own problems, as
#: its test set was) and ours on problems no training hand has (scorecard finding 1 uses both).
LOSS_STYLES = {
    "train_loss": ("k", "-", "train loss"),
    "test_id_loss": ("tab:cyan", "-.", "ID test loss (paper's: seen problems included)"),
    "heldout_id_loss": ("tab:blue", "--", "ID held-out loss (ours: unseen problems)"),
    "heldout_ood_loss": ("tab:red", "--", "OOD held-out loss"),
}


def sft_curves(eval_table: pd.DataFrame, loss_table: pd.DataFrame | None, path) -> None:
    """(a) ID and OOD success vs SFT step (base at 0); one seed with CI bands, several
    with every seed, their mean and spread; losses (mean over seeds) on a second axis, the
    paper's ID test loss and our unseen-problem one as lines of their own (LOSS_STYLES)."""
    eval_table = _seeded(eval_table)
    curve = eval_table[eval_table["stage"].isin(["base", "sft"])].assign(
        sft_step=lambda t: t["sft_step"].astype(int))
    skill, rescue = bool(_has_skill(curve)), bool(_has_rescue(curve))
    ratios = [3] + [2] * (skill + rescue)
    fig, axes = plt.subplots(len(ratios), 1, figsize=(7.5, 4.2 + 2.8 * (len(ratios) - 1)), sharex=True,
                             height_ratios=ratios, squeeze=False)
    ax = axes[0][0]
    ax_skill = axes[1][0] if skill else None
    ax_rescue = axes[-1][0] if rescue else None
    for split in ("id", "ood"):
        rows = curve[curve["split"] == split]
        parts = split == "id" and "unseen_rate" in rows and rows["unseen_n"].fillna(0).gt(0).all()
        if not parts:
            _curve(ax, rows, "sft_step", SPLIT_COLORS[split], f"{split.upper()} success")
            continue
        # ID apart on problems no training hand has (unseen) and on trained ones (seen)
        for part, color in (("unseen", SPLIT_COLORS["id"]), ("seen", SPLIT_COLORS["id_seen"])):
            if rows[f"{part}_n"].fillna(0).gt(0).all():
                sub = rows.assign(success_rate=rows[f"{part}_rate"], ci_low=rows[f"{part}_ci_low"],
                                  ci_high=rows[f"{part}_ci_high"])
                n_part = int(rows[f"{part}_n"].max())
                _curve(ax, sub, "sft_step", color, f"ID success, {part} problems (n={n_part})",
                       marker="o" if part == "unseen" else "^")
    ax.set_xlabel("SFT step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"success rate (%) ({_band_note(curve)})")
    ax.set_ylim(bottom=0)
    handles, labels = ax.get_legend_handles_labels()
    if loss_table is not None and not loss_table.empty:
        loss_table = _seeded(loss_table)
        ax2 = ax.twinx()
        for col, (color, ls, name) in LOSS_STYLES.items():
            if col in loss_table and loss_table[col].notna().any():
                rows = loss_table.dropna(subset=[col]).groupby("step")[col].mean().reset_index()
                label = name + (" (mean)" if loss_table["seed"].nunique() > 1 else "")
                ax2.plot(rows["step"], rows[col], color=color, linestyle=ls, alpha=0.6, label=label)
        ax2.set_ylabel("loss (lines)")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    shown = curve[curve["split"].isin(["id", "ood"])]
    n = int(shown["n"].max()) if not shown.empty else 0
    ax.set_title(f"Success vs SFT length (n = {n} hands per split, {_n_seeds(curve)} seed(s))")
    ax.legend(handles, labels, fontsize=8, loc="best")
    if skill:
        _skill_panel(ax_skill, curve[curve["split"] == "ood"], "sft_step")
        ax_skill.set_xlabel("SFT step")
        ax_skill.set_title("The graded OOD skill: how the first reply writes the face cards' numbers", fontsize=9)
    if rescue:
        for split in ("id", "ood"):
            _rescue_curve(ax_rescue, curve[curve["split"] == split], "sft_step", SPLIT_COLORS[split], split.upper())
        _rescue_axes(ax_rescue, curve)
        ax_rescue.set_xlabel("SFT step")
    _save(fig, path)


def _has_rescue(rows: pd.DataFrame) -> bool:
    """Whether the rows were evaluated with several attempts and carry the rescue columns."""
    return bool(_multi_attempt(rows)) and "rescue_rate" in rows and rows["rescue_rate"].notna().any()


def _rescue_curve(ax, rows: pd.DataFrame, x: str, color: str, label: str, marker: str = "o", shift: float = 0.0,
                  linestyle: str = "-") -> None:
    """Rescue rate over `x` (hands failed at attempt 1 and solved later, of those failed):
    one seed with its Wilson band, several with each seed thin and the mean bold."""
    rows = rows.dropna(subset=["rescue_rate"])
    if rows.empty:
        return
    seeds = sorted(rows["seed"].unique())
    if len(seeds) <= 1:
        rows = rows.sort_values(x)
        ax.plot(rows[x] + shift, 100 * rows["rescue_rate"], marker=marker, color=color, linestyle=linestyle,
                label=f"{label} rescue rate")
        ax.fill_between(rows[x] + shift, 100 * rows["rescue_ci_low"], 100 * rows["rescue_ci_high"], color=color,
                        alpha=0.15, linewidth=0)
        return
    for seed in seeds:
        one = rows[rows["seed"] == seed].sort_values(x)
        ax.plot(one[x] + shift, 100 * one["rescue_rate"], color=color, alpha=0.35, linewidth=0.8, linestyle=linestyle)
    agg = _spread(rows, x, "rescue_rate")
    ax.plot(agg[x] + shift, 100 * agg["mean"], marker=marker, color=color, linewidth=2, linestyle=linestyle,
            label=f"{label} rescue rate, mean of {len(seeds)} seeds")


def _rescue_axes(ax, rows: pd.DataFrame) -> None:
    attempts = _multi_attempt(rows)
    ax.set_ylabel("rescue rate (%)\n(of hands failed at attempt 1)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Feedback channel: failed at attempt 1, solved by {attempts}", fontsize=9)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8, loc="best")


SKILL_STYLES = {"face_rule_rate": ("tab:green", "as the stated rule says (11/12/13)"),
                "face_10_rate": ("tab:purple", "as 10 (the ID rule's value)")}


def _has_skill(rows: pd.DataFrame) -> bool:
    """Whether the eval table has the graded skill (face-card reading) on OOD rows."""
    ood = rows[rows["split"] == "ood"] if "split" in rows else rows
    return "face_rule_rate" in ood and ood["face_rule_rate"].notna().any()


def _skill_panel(ax, rows: pd.DataFrame, x: str) -> None:
    """Share of OOD face cards written as the rule says and as 10, over `x`; every seed thin,
    their mean bold (one seed: the line alone, the share is over all face cards of the split)."""
    seeds = sorted(rows["seed"].unique())
    for col, (color, label) in SKILL_STYLES.items():
        if col not in rows or rows[col].isna().all():
            continue
        if len(seeds) > 1:
            for seed in seeds:
                one = rows[rows["seed"] == seed].sort_values(x)
                ax.plot(one[x], 100 * one[col], color=color, alpha=0.35, linewidth=0.8)
        agg = _spread(rows.dropna(subset=[col]), x, col)
        ax.plot(agg[x], 100 * agg["mean"], marker="o", color=color, linewidth=2 if len(seeds) > 1 else 1.5,
                label=f"OOD face cards written {label}" + (f", mean of {len(seeds)} seeds" if len(seeds) > 1 else ""))
        if len(seeds) > 1:
            ax.fill_between(agg[x], 100 * agg["min"], 100 * agg["max"], color=color, alpha=0.12, linewidth=0)
    faces = int(rows["face_cards"].max()) if "face_cards" in rows and rows["face_cards"].notna().any() else 0
    ax.set_ylabel(f"share of face cards (%)\n({faces} per checkpoint)" if faces else "share of face cards (%)")
    ax.set_ylim(0, 100)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8, loc="best")


def _final_rl(rl: pd.DataFrame) -> pd.DataFrame:
    """Each fork's last RL checkpoint, per seed."""
    last = rl.groupby(["seed", "rl_algo", "sft_step"])["rl_step"].transform("max")
    return rl[rl["rl_step"] == last]


def rl_forks(eval_table: pd.DataFrame, path) -> None:
    """(b) success after RL vs the SFT step each fork started from, beside success after
    SFT; several seeds: each seed's fork ends as dots, their mean with the min-max spread."""
    eval_table = _seeded(eval_table)
    curve = eval_table[eval_table["stage"].isin(["base", "sft"])].assign(
        sft_step=lambda t: t["sft_step"].astype(int))
    rl = eval_table[eval_table["stage"] == "rl"].assign(sft_step=lambda t: t["sft_step"].astype(int))
    skill = bool(_has_skill(curve) and _has_skill(rl))
    rescue = bool(_has_rescue(curve) and _has_rescue(rl))
    panels = 2 + skill + rescue
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.2), sharex=True)
    width = max(1, int(curve["sft_step"].max() if not curve.empty else 1))
    multi = _n_seeds(eval_table) > 1
    for ax, split in zip(axes[:2], ("ood", "id")):
        _curve(ax, curve[curve["split"] == split], "sft_step", "gray", "after SFT")
        final = _final_rl(rl[rl["split"] == split])
        for i, (algo, grp) in enumerate(final.groupby("rl_algo")):
            shift = 0.01 * (i + 1) * width
            color = f"C{i}"
            if multi:
                ax.scatter(grp["sft_step"] + shift, 100 * grp["success_rate"], color=color, s=12, alpha=0.5)
                agg = _spread(grp, "sft_step")
                err = 100 * np.vstack([agg["mean"] - agg["min"], agg["max"] - agg["mean"]])
                ax.errorbar(agg["sft_step"] + shift, 100 * agg["mean"], yerr=err, fmt="s-", color=color, capsize=3,
                            label=f"after RL ({algo}), mean of {grp['seed'].nunique()} seeds")
            else:
                grp = grp.sort_values("sft_step")
                err = 100 * np.vstack([grp["success_rate"] - grp["ci_low"], grp["ci_high"] - grp["success_rate"]])
                attempts = _multi_attempt(grp)
                ax.errorbar(grp["sft_step"] + shift, 100 * grp["success_rate"], yerr=err, fmt="s-", color=color,
                            capsize=3, label=f"after RL ({algo}, within {attempts})" if attempts else f"after RL ({algo})")
            if _multi_attempt(grp):
                at1 = _spread(grp, "sft_step", "success_rate_at_1")
                ax.plot(at1["sft_step"] + shift, 100 * at1["mean"], "s:", mfc="none", color=color,
                        label=f"after RL ({algo}, attempt 1)")
        ax.set_title(f"{split.upper()} success")
        ax.set_xlabel("SFT step the fork starts from")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("success rate (%) " + ("(dots: seeds, bars: min-max)" if multi else "with 95% CI"))
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    if rescue:
        ax = axes[-1]
        for split, marker in (("ood", "o"), ("id", "^")):
            color = SPLIT_COLORS[split]
            _rescue_curve(ax, curve[curve["split"] == split], "sft_step", "gray", f"{split.upper()} after SFT,",
                          marker=marker, linestyle=":" if split == "id" else "-")
            final = _final_rl(rl[rl["split"] == split])
            for i, (algo, grp) in enumerate(final.groupby("rl_algo")):
                _rescue_curve(ax, grp, "sft_step", color if i == 0 else f"C{i + 2}", f"{split.upper()} after RL ({algo}),",
                              marker="s", shift=0.01 * (i + 1) * width, linestyle=":" if split == "id" else "-")
        _rescue_axes(ax, curve)
        ax.set_xlabel("SFT step the fork starts from")
    if skill:
        ax = axes[2]
        ood = curve[curve["split"] == "ood"]
        agg = _spread(ood.dropna(subset=["face_rule_rate"]), "sft_step", "face_rule_rate")
        ax.plot(agg["sft_step"], 100 * agg["mean"], "o-", color="gray", label="after SFT")
        final = _final_rl(rl[rl["split"] == "ood"]).dropna(subset=["face_rule_rate"])
        for i, (algo, grp) in enumerate(final.groupby("rl_algo")):
            shift = 0.01 * (i + 1) * width
            if multi:
                ax.scatter(grp["sft_step"] + shift, 100 * grp["face_rule_rate"], color=f"C{i}", s=12, alpha=0.5)
            g = _spread(grp, "sft_step", "face_rule_rate")
            ax.plot(g["sft_step"] + shift, 100 * g["mean"], "s-", color=f"C{i}",
                    label=f"after RL ({algo})" + (f", mean of {grp['seed'].nunique()} seeds" if multi else ""))
        ax.set_title("OOD face cards written as the stated rule (first reply)")
        ax.set_xlabel("SFT step the fork starts from")
        ax.set_ylabel("share of face cards (%)" + (" (dots: seeds)" if multi else ""))
        ax.set_ylim(0, 100)
        ax.legend(fontsize=8)
    _save(fig, path)


def angle_heatmaps(analysis: pd.DataFrame, reference: str, path) -> None:
    """(c) mean top-k principal angle (degrees; left and right averaged), layer x matrix
    type, one panel per checkpoint compared with `reference`."""
    rows = _seeded(analysis)
    rows = rows[rows["reference"] == reference].copy()
    n_seeds = _n_seeds(rows)
    ckpts = list(dict.fromkeys(rows["checkpoint"]))
    ncol = min(4, max(1, len(ckpts)))
    nrow = max(1, -(-len(ckpts) // ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.4 * ncol, 2.8 * nrow + 0.6), squeeze=False)
    rows["angle_deg"] = np.degrees((rows["angle_left_mean"] + rows["angle_right_mean"]) / 2)
    vmax = max(float(rows["angle_deg"].max()) if not rows.empty else 1.0, 1e-6)
    image = None
    for ax, ckpt in zip(axes.flat, ckpts):
        sub = rows[rows["checkpoint"] == ckpt]
        grid = sub.pivot_table(index="layer", columns="matrix", values="angle_deg", aggfunc="mean")
        grid = grid[[m for m in MATRIX_ORDER if m in grid.columns]]
        image = ax.imshow(grid.to_numpy(), aspect="auto", cmap="viridis", vmin=0, vmax=vmax, origin="lower")
        ax.set_xticks(range(grid.shape[1]), [c.replace("_proj", "") for c in grid.columns], fontsize=7)
        ax.set_yticks(range(grid.shape[0]), grid.index, fontsize=7)
        ax.set_title(ckpt, fontsize=9)
        ax.set_ylabel("layer", fontsize=8)
    for ax in list(axes.flat)[len(ckpts):]:
        ax.axis("off")
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="mean top-k principal angle (deg)")
    ref_ckpts = ", ".join(dict.fromkeys(rows["reference_ckpt"])) if not rows.empty else reference
    over = f"; mean over {n_seeds} seeds" if n_seeds > 1 else ""
    fig.suptitle(f"Rotation of the top-k singular subspaces against {reference} ({ref_ckpts}{over})")
    _save(fig, path)


def drift(analysis: pd.DataFrame, path) -> None:
    """(d) Top row, ours: mean |Δσ|/σ against mean principal angle, one point per checkpoint,
    per reference. Bottom row, the paper's measures against sft_best (its reference, the OOD
    peak): mean |Δσ|/σ over all singular values per SFT length and RL checkpoint
    (sigma_shift.png: 0.3-0.4% in the paper), and the chordal distance of the top-k
    subspaces per matrix type, U and V, of sft_last (chordal.png)."""
    analysis = _seeded(analysis)
    refs = list(dict.fromkeys(analysis["reference"]))
    paper = analysis[(analysis["reference"] == "sft_best")] if "sft_best" in refs else analysis.iloc[0:0]
    ncols = max(2, len(refs))
    nrows = 2 if not paper.empty else 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.5 * ncols, 4.2 * nrows), squeeze=False)
    for ax in axes[0, len(refs):]:
        ax.axis("off")
    for ax, ref in zip(axes[0], refs):
        sub = analysis[analysis["reference"] == ref]
        per_seed = sub.groupby(["checkpoint", "seed"], sort=False).agg(
            sigma=("sigma_rel_change_mean", "mean"), left=("angle_left_mean", "mean"), right=("angle_right_mean", "mean")
        )
        per_seed["angle"] = np.degrees((per_seed["left"] + per_seed["right"]) / 2)
        agg = per_seed.groupby(level="checkpoint", sort=False)[["sigma", "angle"]].mean()
        multi = sub["seed"].nunique() > 1
        for i, (stage, marker) in enumerate((("sft", "o"), ("rl", "s"), ("edit", "^"))):
            part = agg[[c.startswith(stage) for c in agg.index]]
            if multi:  # every seed faint, the mean over seeds solid and labelled
                seeds_part = per_seed[[c.startswith(stage) for c in per_seed.index.get_level_values("checkpoint")]]
                ax.scatter(100 * seeds_part["sigma"], seeds_part["angle"], marker=marker, color=f"C{i}", alpha=0.3, s=12)
            ax.scatter(100 * part["sigma"], part["angle"], marker=marker, color=f"C{i}",
                       label=stage + (" (mean over seeds; faint: each seed)" if multi else ""))
            for name, r in part.iterrows():
                ax.annotate(name, (100 * r["sigma"], r["angle"]), fontsize=6, alpha=0.8)
        ax.set_xlabel("mean relative singular-value change |dsigma|/sigma (%)")
        ax.set_ylabel("mean top-k principal angle (deg)")
        ax.set_title(f"ours: against {ref} ({', '.join(dict.fromkeys(sub['reference_ckpt']))})")
        ax.legend(fontsize=8)
    if not paper.empty:
        _paper_sigma(axes[1, 0], paper)
        _paper_chordal(axes[1, 1], paper)
        for ax in axes[1, 2:]:
            ax.axis("off")
    fig.tight_layout()
    _save(fig, path)


def _paper_sigma(ax, paper: pd.DataFrame) -> None:
    """The paper's sigma_shift.png: mean |Δσ|/σ (all singular values) vs sft_best, per SFT
    length (each seed faint, the mean solid) and per RL fork's end (squares at its fork step)."""
    from rlheals.checkpoints import parse_ckpt

    per = paper.groupby(["checkpoint", "seed"], sort=False)["sigma_rel_change_mean"].mean().reset_index()
    info = per["checkpoint"].map(parse_ckpt)
    per["stage"], per["step"] = info.map(lambda i: i["stage"]), info.map(lambda i: i["sft_step"])
    per["rl_step"] = info.map(lambda i: i["rl_step"])
    sft = per[per["stage"] == "sft"]
    for seed, rows in sft.groupby("seed"):
        rows = rows.sort_values("step")
        ax.plot(rows["step"], 100 * rows["sigma_rel_change_mean"], "o-", color="C0", alpha=0.3, lw=1, ms=3)
    mean = sft.groupby("step")["sigma_rel_change_mean"].mean().sort_index()
    ax.plot(mean.index, 100 * mean.to_numpy(), "o-", color="C0", label="SFT lengths (mean over seeds)")
    rl = per[per["stage"] == "rl"]
    if not rl.empty:
        last = rl[rl["rl_step"] == rl.groupby("step")["rl_step"].transform("max")]
        rl_mean = last.groupby("step")["sigma_rel_change_mean"].mean().sort_index()
        ax.plot(rl_mean.index, 100 * rl_mean.to_numpy(), "s", color="C1", label="RL fork's end, at its fork step")
    ax.axhspan(0.3, 0.4, color="0.85", label="the paper: 0.3-0.4% (Llama-3.2-11B)")
    ax.set_xlabel("SFT step")
    ax.set_ylabel("mean |dsigma|/sigma, all singular values (%)")
    ax.set_title("the paper's sigma drift, against sft_best")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)


#: analysis.csv's chordal-distance columns (rlheals.svd.analysis.PAPER_COLUMNS; not imported,
#: so that the SVD code does not count as the plots' code)
PAPER_COLUMNS = ["chordal_left", "chordal_right"]


def _paper_chordal(ax, paper: pd.DataFrame) -> None:
    """The paper's chordal.png at sft_last: sqrt(mean sin^2) of the top-k principal angles,
    per matrix type, U (left) and V (right), mean over layers and seeds, a dot per seed."""
    if not set(PAPER_COLUMNS) <= set(paper.columns):
        paper = paper.assign(chordal_left=paper["proj_dist_left"] / np.sqrt(2.0 * paper["k"]),
                             chordal_right=paper["proj_dist_right"] / np.sqrt(2.0 * paper["k"]))
    sft = paper[paper["checkpoint"].str.startswith("sft-")]
    if sft.empty:
        ax.axis("off")
        return
    steps = sft["checkpoint"].str.slice(4).astype(int)
    last = sft[steps == steps.max()]
    types = list(dict.fromkeys(last["matrix"]))
    per_seed = last.groupby(["matrix", "seed"])[PAPER_COLUMNS].mean()
    mean = per_seed.groupby(level="matrix")[PAPER_COLUMNS].mean().reindex(types)
    x = np.arange(len(types))
    for j, (col, label) in enumerate((("chordal_left", "U (left)"), ("chordal_right", "V (right)"))):
        ax.bar(x + (j - 0.5) * 0.38, mean[col], 0.38, color=f"C{2 + j}", label=label)
        for i, t in enumerate(types):
            vals = per_seed.loc[t, col].to_numpy() if t in per_seed.index.get_level_values(0) else []
            ax.scatter(np.full(len(vals), i + (j - 0.5) * 0.38), vals, color="k", s=6, zorder=3)
    ax.set_xticks(x, types, rotation=30, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("chordal distance, top-k (sqrt mean sin^2)")
    ax.set_title(f"the paper's chordal distance: {last['checkpoint'].iloc[0]} vs sft_best (dots: seeds)")
    ax.legend(fontsize=7)


def _pooled(table: pd.DataFrame, pairs: list[tuple], split: str) -> tuple[float, float, float]:
    """Success % pooled over (seed, checkpoint) pairs on `split`, with its Wilson interval."""
    from rlheals.evaluation.stats import wilson

    k = n = 0
    for seed, ckpt in pairs:
        key = (seed, ckpt, split)
        if key in table.index:
            row = table.loc[key]
            k, n = k + int(row["successes"]), n + int(row["n"])
    if n == 0:
        return np.nan, np.nan, np.nan
    low, high = wilson(k, n)
    return 100 * k / n, 100 * low, 100 * high


def _share(e: dict, table: pd.DataFrame) -> float:
    """An edit's share of the rank: k itself for a share, else eval.csv's edit_k_frac (`table`
    indexed by seed, checkpoint, split)."""
    if isinstance(e["k"], float):
        return float(e["k"])
    key = (e.get("seed", 0), f"edit-{e['name']}", "ood")
    if "edit_k_frac" in table.columns and key in table.index:
        return float(table.loc[key, "edit_k_frac"])
    return np.nan


def edits(eval_table: pd.DataFrame, edit_rows: list[dict], path) -> None:
    """(e) The edits, success within the attempts pooled over seeds (successes / hands, 95%
    Wilson intervals). Top row: OOD and ID against the share of the rank restored, directions
    against values, with the target's and the donor's own rates as lines (the sweep: the
    edits of the first directions edit's donor and target on all layers). Bottom row: the
    layer-range edits (each third at its share) beside the all-layer restore at the same
    share, and every other edit (triplets, reverse) beside its target and donor.

    `edit_rows`: [{name, kind, k, donor, target, seed, layers?}], donor/target resolved to
    ids in that seed (sft_best may differ between replicates).
    """
    eval_table = _seeded(eval_table)
    table = eval_table.set_index(["seed", "checkpoint", "split"])
    fig, axes = plt.subplots(2, 2, figsize=(11, 8.4), squeeze=False)
    if not edit_rows:
        axes.flat[0].text(0.5, 0.5, "no edits configured", ha="center", transform=axes.flat[0].transAxes)
        for ax in axes.flat[1:]:
            ax.axis("off")
        _save(fig, path)
        return
    names = list(dict.fromkeys(e["name"] for e in edit_rows))
    by_name = {n: [e for e in edit_rows if e["name"] == n] for n in names}
    first = next((g[0] for g in by_name.values() if g[0]["kind"] == "directions"), by_name[names[0]][0])
    main = (first.get("donor_name", first["donor"]), first.get("target_name", first["target"]))

    def role_of(e: dict) -> str:
        same = (e.get("donor_name", e["donor"]), e.get("target_name", e["target"])) == main
        if same and e["kind"] in ("directions", "values") and not e.get("layers"):
            return "sweep"
        if same and e.get("layers"):
            return "layers"
        return "other"

    roles = {n: role_of(g[0]) for n, g in by_name.items()}
    refs = {r: [(e.get("seed", 0), e[r]) for e in by_name[first["name"]]] for r in ("target", "donor")}
    for ax, split in zip(axes[0], ("ood", "id")):
        for kind, color, marker, shift in (("directions", "C0", "o", -0.6), ("values", "C1", "s", 0.6)):
            pts = []
            for n, g in by_name.items():
                if roles[n] == "sweep" and g[0]["kind"] == kind:
                    rate, low, high = _pooled(table, [(e.get("seed", 0), f"edit-{n}") for e in g], split)
                    pts.append((_share(g[0], table), rate, low, high))
            pts.sort()
            if pts:
                x, y, lo, hi = (np.array(v, dtype=float) for v in zip(*pts))
                # shifted apart by 1.2 points of share so that equal rates stay visible
                ax.errorbar(100 * x + shift, y, yerr=[y - lo, hi - y], color=color, marker=marker, capsize=3,
                            label=f"{kind} restored from the donor")
        for r, style in (("target", "--"), ("donor", ":")):
            rate, low, high = _pooled(table, refs[r], split)
            names_r = sorted({c for _, c in refs[r]})
            ax.axhline(rate, color="0.3", ls=style, lw=1.2, label=f"{r} {'/'.join(names_r)}: {rate:.1f}%")
            ax.axhspan(low, high, color="0.5", alpha=0.08)
        ax.set_xlabel("share of each matrix's rank edited (%)")
        ax.set_ylabel(f"{split.upper()} success (%), pooled over seeds")
        ax.set_title(f"{split.upper()}: {main[0]} -> {main[1]}, all layers", fontsize=9)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
    for ax, role, title in ((axes[1, 0], "layers", "by layer range"), (axes[1, 1], "other", "other edits")):
        groups = [n for n in names if roles[n] == role]
        if role == "layers" and groups:  # the all-layer restore at the same share, for scale
            share = by_name[groups[0]][0]["k"]
            groups += [n for n in names if roles[n] == "sweep" and by_name[n][0]["kind"] == "directions"
                       and by_name[n][0]["k"] == share]
        if not groups:
            ax.text(0.5, 0.5, f"no {title}", ha="center", transform=ax.transAxes)
            ax.axis("off")
            continue
        labels, bars = [], {"id": [], "ood": []}
        for n in groups:
            e = by_name[n][0]
            where = e.get("layers") or "all layers"
            labels.append(f"{n}\n{e['kind']} {k_text(e['k'])}\n{where}")
            for split in bars:
                bars[split].append(_pooled(table, [(x.get("seed", 0), f"edit-{n}") for x in by_name[n]], split))
        if role == "other":  # the edits' own targets and donors beside them, each once
            seen: dict[tuple, list[str]] = {}
            for n in groups:
                for r in ("target", "donor"):
                    pairs = tuple(sorted((x.get("seed", 0), x[r]) for x in by_name[n]))
                    seen.setdefault(pairs, [])
                    if r not in seen[pairs]:
                        seen[pairs].append(r)
            for pairs, rs in seen.items():
                labels.append(f"{'/'.join(sorted({c for _, c in pairs}))}\n({' and '.join(rs)})")
                for split in bars:
                    bars[split].append(_pooled(table, list(pairs), split))
        x = np.arange(len(labels))
        for j, split in enumerate(("id", "ood")):
            y, lo, hi = (np.array(v, dtype=float) for v in zip(*bars[split]))
            ax.bar(x + (j - 0.5) * 0.38, y, 0.38, yerr=[y - lo, hi - y], capsize=2, color=SPLIT_COLORS[split],
                   label=split.upper())
        ax.set_xticks(x, labels, fontsize=6, rotation=40 if len(labels) > 5 else 0,
                      ha="right" if len(labels) > 5 else "center")
        ax.set_ylim(bottom=0)
        ax.set_ylabel("success (%), pooled over seeds")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def k_text(k) -> str:
    return f"{100 * float(k):g}%" if isinstance(k, float) else f"k={int(k)}"
