"""Copy a finished run's scorecard, main figures and key numbers into docs/results/.

The README shows docs/results/ so that a visitor sees the default run's result before
running anything: the CPU it ran on (lscpu's model name), the commit, every seed
replicate's success per checkpoint with their mean and spread, and the stage times
(wall and CPU seconds from Snakemake's benchmark files, plus the wall time the CPU
seconds imply on 2 idle cores). Usage (also `make publish RUN=<run folder>`):

    python workflow_scripts/publish_results.py [--run .] [--out docs/results]

`--run` is the folder the workflow ran in (the one holding results/ and benchmarks/).
Files are copied, never linked, so docs/results/ stays valid when the run is deleted.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

COPIED = {
    "results/tables/scorecard.csv": "scorecard.csv",
    "results/tables/eval.csv": "eval.csv",
    "results/figures/sft_curves.png": "sft_curves.png",
    "results/figures/rl_forks.png": "rl_forks.png",
    "results/figures/edits.png": "edits.png",
    "results/figures/drift.png": "drift.png",
    "results/tables/references.json": "references.json",
}
# What a row of the published success table shows: (column of eval.csv's split, label).
SHOWN = [("id", "unseen", "ID unseen"), ("id", "seen", "ID seen"), ("id", None, "ID all"), ("ood", None, "OOD"),
         ("ood", "at_1", "OOD at attempt 1"), ("id", "rescue", "ID rescue"), ("ood", "rescue", "OOD rescue")]
#: Columns of a part that is not a seen/unseen subset: (successes, hands, rate, ci low, ci high).
PART_COLUMNS = {
    None: ("successes", "n", "success_rate", "ci_low", "ci_high"),
    "at_1": ("successes_at_1", "n", "success_rate_at_1", "ci_low_at_1", "ci_high_at_1"),
    "rescue": ("rescued", "rescue_n", "rescue_rate", "rescue_ci_low", "rescue_ci_high"),
}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _markdown(frame: pd.DataFrame) -> str:
    """A GitHub markdown table (pandas' to_markdown needs tabulate, not a dependency)."""
    cols = list(frame.columns)
    rows = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    rows += ["| " + " | ".join(str(v).replace("|", "\\|") for v in r) + " |" for r in frame.itertuples(index=False)]
    return "\n".join(rows)


def _rate_columns(part: str | None) -> tuple[str, str, str, str, str]:
    """(successes, hands, rate, ci low, ci high) columns of a part of a split."""
    if part in PART_COLUMNS:
        return PART_COLUMNS[part]
    return (f"{part}_successes", f"{part}_n", f"{part}_rate", f"{part}_ci_low", f"{part}_ci_high")


def eval_rows(eval_csv: Path) -> pd.DataFrame:
    """One row per checkpoint: ID (unseen, seen, all) and OOD success. One seed: percent,
    Wilson interval, successes/hands. Several: the mean over seeds, the min-max spread,
    and each seed's successes/hands."""
    table = pd.read_csv(eval_csv)
    if "seed" not in table:
        table["seed"] = 0
    seeds = sorted(table["seed"].unique())
    out = []
    for ckpt, rows in table.groupby("checkpoint", sort=False):
        row = {"checkpoint": ckpt}
        for split, part, label in SHOWN:
            k_col, n_col, rate_col, low_col, high_col = _rate_columns(part)
            sub = rows[rows["split"] == split].sort_values("seed")
            if sub.empty or k_col not in sub or sub[n_col].fillna(0).eq(0).all():
                continue
            if part in ("at_1", "rescue") and int(sub["attempts"].max()) <= 1:
                continue  # one attempt: attempt 1 is the success itself, and nothing is rescued
            if len(seeds) == 1:
                r = sub.iloc[0]
                low, high = r[low_col], r[high_col]
                row[label] = f"{_pct(r[rate_col])} [{_pct(low)}, {_pct(high)}] ({int(r[k_col])}/{int(r[n_col])})"
            else:
                rates = sub[rate_col]
                if sub[n_col].nunique() == 1:
                    counts = " ".join(f"{int(k)}" for k in sub[k_col]) + f" of {int(sub[n_col].iloc[0])}"
                else:  # rescue: each seed has its own failed hands
                    counts = " ".join(f"{int(k)}/{int(n)}" for k, n in zip(sub[k_col], sub[n_col]))
                row[label] = f"{_pct(rates.mean())} ({_pct(rates.min())}-{_pct(rates.max())}) [{counts}]"
        out.append(row)
    return pd.DataFrame(out).fillna("")


def spread_line(eval_csv: Path) -> str:
    """How far the replicates are apart: the largest min-max range of a success rate."""
    table = pd.read_csv(eval_csv)
    if "seed" not in table or table["seed"].nunique() < 2:
        return ""
    widest = []
    for split, part, label in SHOWN:
        k_col, n_col, rate_col, _, _ = _rate_columns(part)
        sub = table[table["split"] == split]
        if rate_col not in sub:
            continue
        rng = sub.groupby("checkpoint")[rate_col].agg(lambda r: r.max() - r.min())
        if rng.notna().any():
            widest.append(f"{label} up to {_pct(rng.max())} points ({rng.idxmax()})")
    return (f"Seed spread ({table['seed'].nunique()} replicates: seeds {', '.join(map(str, sorted(table['seed'].unique())))}; "
            "same data and evaluation hands, independent training): widest min-max range per rate: "
            + "; ".join(widest) + ".")


def stage_times(bench_dir: Path) -> pd.DataFrame:
    """Wall and CPU seconds per rule, summed over its jobs, from Snakemake's benchmark files."""
    rows = []
    for rule_dir in sorted(p for p in bench_dir.glob("*") if p.is_dir()):
        files = sorted(rule_dir.glob("*.tsv"))
        if files:
            frames = [pd.read_csv(f, sep="\t") for f in files]
            secs = sum(float(f["s"].iloc[0]) for f in frames)
            cpu = sum(float(f["cpu_time"].iloc[0]) for f in frames if "cpu_time" in f)
            rows.append({"rule": rule_dir.name, "jobs": len(files), "wall_s": round(secs, 1), "cpu_s": round(cpu, 1)})
    return pd.DataFrame(rows, columns=["rule", "jobs", "wall_s", "cpu_s"])


def cpu_model() -> str:
    """lscpu's model name of this machine (where `make publish` runs, normally the run's)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown CPU"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def commit(run: Path | None = None) -> str:
    """The commit the run's folder is checked out at (the code that made the numbers),
    else this script's checkout."""
    for where in ([run] if run is not None else []) + [Path(__file__).resolve().parent]:
        try:
            out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                                 cwd=where).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            return out
    return "unknown"


def elapsed(run: Path) -> str | None:
    """Wall time of the run's last complete Snakemake invocation (its log's 'Elapsed time')."""
    logs = sorted((run / ".snakemake" / "log").glob("*.snakemake.log"), key=lambda p: p.stat().st_mtime)
    for log in reversed(logs):
        for line in reversed(log.read_text(errors="replace").splitlines()):
            if line.startswith("Elapsed time:"):
                return line.split(":", 1)[1].strip().split(".")[0]
    return None


def summary(run: Path, note: str = "", title: str = "Results of the default run") -> str:
    card = pd.read_csv(run / "results/tables/scorecard.csv", keep_default_na=False)
    wall = elapsed(run)
    eval_csv = run / "results/tables/eval.csv"
    n_seeds = pd.read_csv(eval_csv)["seed"].nunique() if "seed" in pd.read_csv(eval_csv, nrows=1) else 1
    card_cols = [c for c in ("seed", "finding", "verdict", "seeds", "claim", "value", "skill", "chosen_on") if c in card]
    parts = [
        f"# {title}",
        "",
        "Generated by `workflow_scripts/publish_results.py` from a finished run; do not edit by hand.",
        f"Made on: {cpu_model()} (lscpu model name), commit {commit(run)}"
        + (f", wall time of the run {wall} (h:mm:ss)." if wall else "."),
        "",
        *([note, ""] if note else []),
        "## Scorecard",
        "",
        _markdown(card[card_cols]),
        "",
        "## Success per checkpoint",
        "",
        ("Percent, Wilson interval, successes/hands." if n_seeds == 1 else
         "Percent: mean over seeds (min-max over seeds) [each seed's successes of the hands]."),
        "ID unseen: problems (numbers under the rule) no SFT or RL hand has; ID seen: problems a training hand has "
        "(the paper's ID setting); OOD problems are never trained on. Success is within the evaluation's attempts "
        "(the paper's metric); with several attempts, OOD at attempt 1 beside it, and the rescue rate: hands failed "
        "at attempt 1 and solved at a later one, of those failed at attempt 1 (k = rescued, of the failed hands).",
        "",
        _markdown(eval_rows(eval_csv)),
        "",
        spread_line(eval_csv),
        "",
        "![SFT curves](sft_curves.png)",
        "",
        "![RL forks](rl_forks.png)",
        "",
        "![Edits](edits.png)",
        "",
        "![Singular-value drift and rotation, ours and the paper's measures](drift.png)",
    ]
    bench = run / "benchmarks"
    if bench.is_dir():
        times = stage_times(bench)
        cpu = times["cpu_s"].sum()
        parts += ["", f"## Stage times (sum over jobs: wall {times['wall_s'].sum():.0f} s, CPU {cpu:.0f} s)", "",
                  _markdown(times), "",
                  f"CPU seconds / 2 = {cpu / 2:.0f} s ({cpu / 120:.1f} min): the wall time on 2 idle cores if both are "
                  "busy the whole run (jobs use one thread each by default), without Snakemake's own overhead."]
    return "\n".join(parts) + "\n"


def publish(run: Path, out: Path, note: str = "", title: str = "Results of the default run") -> None:
    missing = [src for src in COPIED if not (run / src).is_file()]
    if missing:
        raise FileNotFoundError(f"{run}: run not finished, missing {', '.join(missing)}")
    out.mkdir(parents=True, exist_ok=True)
    for src, dst in COPIED.items():
        shutil.copyfile(run / src, out / dst)
    (out / "README.md").write_text(summary(run, note, title))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("."), help="folder the workflow ran in (default: .)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "docs" / "results")
    parser.add_argument("--note", default="", help="a paragraph placed under the title (e.g. how the run was made)")
    parser.add_argument("--title", default="Results of the default run", help="the page's heading")
    args = parser.parse_args(argv)
    try:
        publish(args.run, args.out, args.note, args.title)
    except FileNotFoundError as err:
        print(f"publish_results: {err}", file=sys.stderr)
        return 1
    print(f"published {args.run / 'results'} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
