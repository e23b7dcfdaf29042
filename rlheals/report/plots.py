"""The report's figures (matplotlib, Agg backend, PNG), one function per figure.

Every rate is drawn with its Wilson interval (band or error bar), so whether two points
differ beyond noise can be read off the figure. Each function takes the tidy tables
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

SPLIT_COLORS = {"id": "tab:blue", "ood": "tab:red"}
MATRIX_ORDER = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _save(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def _band(ax, x, rows, color, label, marker="o"):
    ax.plot(x, 100 * rows["success_rate"], marker=marker, color=color, label=label)
    ax.fill_between(x, 100 * rows["ci_low"], 100 * rows["ci_high"], color=color, alpha=0.18, linewidth=0)


def sft_curves(eval_table: pd.DataFrame, loss_table: pd.DataFrame | None, path) -> None:
    """(a) ID and OOD success vs SFT step (base at 0) with CI bands; losses on a second axis."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    curve = eval_table[eval_table["stage"].isin(["base", "sft"])].sort_values("sft_step")
    for split in ("id", "ood"):
        rows = curve[curve["split"] == split]
        _band(ax, rows["sft_step"].astype(int), rows, SPLIT_COLORS[split], f"{split.upper()} success")
    ax.set_xlabel("SFT step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("success rate (%) with 95% CI")
    ax.set_ylim(bottom=0)
    handles, labels = ax.get_legend_handles_labels()
    if loss_table is not None and not loss_table.empty:
        ax2 = ax.twinx()
        styles = {"train_loss": ("k", "-"), "heldout_id_loss": ("tab:blue", "--"), "heldout_ood_loss": ("tab:red", "--")}
        for col, (color, ls) in styles.items():
            if col in loss_table and loss_table[col].notna().any():
                rows = loss_table.dropna(subset=[col])
                ax2.plot(rows["step"], rows[col], color=color, linestyle=ls, alpha=0.6, label=col.replace("_", " "))
        ax2.set_ylabel("loss (lines)")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    n = int(curve["n"].max()) if not curve.empty else 0
    ax.set_title(f"Success vs SFT length (n = {n} hands per split)")
    ax.legend(handles, labels, fontsize=8, loc="best")
    _save(fig, path)


def rl_forks(eval_table: pd.DataFrame, path) -> None:
    """(b) success after RL vs the SFT step each fork started from, beside success after SFT."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    curve = eval_table[eval_table["stage"].isin(["base", "sft"])].sort_values("sft_step")
    rl = eval_table[eval_table["stage"] == "rl"]
    for ax, split in zip(axes, ("ood", "id")):
        rows = curve[curve["split"] == split]
        _band(ax, rows["sft_step"].astype(int), rows, "gray", "after SFT")
        for i, (algo, grp) in enumerate(rl[rl["split"] == split].groupby("rl_algo")):
            final = grp[grp["rl_step"] == grp.groupby("sft_step")["rl_step"].transform("max")].sort_values("sft_step")
            x = final["sft_step"].astype(int) + 0.01 * i * max(1, int(curve["sft_step"].max() or 1))
            err = 100 * np.vstack([final["success_rate"] - final["ci_low"], final["ci_high"] - final["success_rate"]])
            ax.errorbar(x, 100 * final["success_rate"], yerr=err, fmt="s-", capsize=3, label=f"after RL ({algo})")
        ax.set_title(f"{split.upper()} success")
        ax.set_xlabel("SFT step the fork starts from")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("success rate (%) with 95% CI")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    _save(fig, path)


def angle_heatmaps(analysis: pd.DataFrame, reference: str, path) -> None:
    """(c) mean top-k principal angle (degrees; left and right averaged), layer x matrix
    type, one panel per checkpoint compared with `reference`."""
    rows = analysis[analysis["reference"] == reference].copy()
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
    ref_ckpt = rows["reference_ckpt"].iloc[0] if not rows.empty else reference
    fig.suptitle(f"Rotation of the top-k singular subspaces against {reference} ({ref_ckpt})")
    _save(fig, path)


def drift(analysis: pd.DataFrame, path) -> None:
    """(d) mean |Δσ|/σ against mean principal angle, one point per checkpoint, per reference."""
    refs = list(dict.fromkeys(analysis["reference"]))
    fig, axes = plt.subplots(1, max(1, len(refs)), figsize=(5.5 * max(1, len(refs)), 4.2), squeeze=False)
    for ax, ref in zip(axes.flat, refs):
        sub = analysis[analysis["reference"] == ref]
        agg = sub.groupby("checkpoint", sort=False).agg(
            sigma=("sigma_rel_change_mean", "mean"), left=("angle_left_mean", "mean"), right=("angle_right_mean", "mean")
        )
        agg["angle"] = np.degrees((agg["left"] + agg["right"]) / 2)
        for stage, marker in (("sft", "o"), ("rl", "s"), ("edit", "^")):
            part = agg[[c.startswith(stage) for c in agg.index]]
            ax.scatter(100 * part["sigma"], part["angle"], marker=marker, label=stage)
            for name, r in part.iterrows():
                ax.annotate(name, (100 * r["sigma"], r["angle"]), fontsize=6, alpha=0.8)
        ax.set_xlabel("mean relative singular-value change |dsigma|/sigma (%)")
        ax.set_ylabel("mean top-k principal angle (deg)")
        ax.set_title(f"against {ref} ({sub['reference_ckpt'].iloc[0]})")
        ax.legend(fontsize=8)
    _save(fig, path)


def edits(eval_table: pd.DataFrame, edit_rows: list[dict], path) -> None:
    """(e) ID and OOD success of each edit beside its donor and target, with CIs.

    `edit_rows`: [{name, kind, k, donor, target}] with donor/target resolved to ids.
    """
    n_groups = max(1, len(edit_rows))
    fig, axes = plt.subplots(1, n_groups, figsize=(3.6 * n_groups, 4.0), squeeze=False, sharey=True)
    table = eval_table.set_index(["checkpoint", "split"])
    for ax, e in zip(axes.flat, edit_rows):
        ckpts = [("target", e["target"]), ("edit", f"edit-{e['name']}"), ("donor", e["donor"])]
        for j, split in enumerate(("id", "ood")):
            vals, lows, highs = [], [], []
            for _, c in ckpts:
                r = table.loc[(c, split)] if (c, split) in table.index else None
                vals.append(100 * r["success_rate"] if r is not None else np.nan)
                lows.append(100 * (r["success_rate"] - r["ci_low"]) if r is not None else 0)
                highs.append(100 * (r["ci_high"] - r["success_rate"]) if r is not None else 0)
            x = np.arange(3) + (j - 0.5) * 0.38
            ax.bar(x, vals, width=0.38, yerr=[lows, highs], capsize=3, color=SPLIT_COLORS[split], label=split.upper())
        ax.set_xticks(range(3), [f"{r}\n{c}" for r, c in ckpts], fontsize=7)
        ax.set_title(f"{e['name']}: {e['kind']}, k={e['k']}", fontsize=9)
        ax.legend(fontsize=7)
    axes.flat[0].set_ylabel("success rate (%) with 95% CI")
    if not edit_rows:
        axes.flat[0].text(0.5, 0.5, "no edits configured", ha="center", transform=axes.flat[0].transAxes)
    _save(fig, path)

