"""Two finished runs compared checkpoint by checkpoint on the same hands: an ablation's table.

The workflow answers one config at a time; an ablation asks what one change does to the
same study: the pretraining corpus with and without its retry-after-feedback documents,
or multi-turn against single-turn RL from the same SFT checkpoints (a copy of the run
folder rerun with `--config rl.attempts=1` retrains only the forks). Both runs evaluate
every checkpoint on the same fixed hands (the data come from the master seed, not from
the changed key), so each (seed, checkpoint, split) pairs hand by hand.

Per seed, checkpoint and report split, for each run: success within the attempts and at
attempt 1, and the rescue rate (hands failed at attempt 1 and solved later, of those
failed), with Wilson intervals; then B against A by exact McNemar tests on the same hands,
on success within the attempts and on being rescued, per seed and pooled over seeds
(stratified). Checkpoints present in one run only are left out and listed.

    python benchmarks/ablation_compare.py --a RUN_A --b RUN_B --label-a "retry corpus" \
        --label-b "no retry documents" --out docs/results/ablations/corpus

Writes <out>/compare.csv (one row per seed, checkpoint, split), <out>/summary.csv and
<out>/summary.md (pooled over seeds).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlheals.atomic import atomic_path, write_csv  # noqa: E402
from rlheals.evaluation.outcomes import hand_outcomes  # noqa: E402
from rlheals.evaluation.stats import mcnemar, wilson  # noqa: E402

SPLITS = ("id", "ood")


def _rate(k: int, n: int) -> str:
    if n == 0:
        return "n/a"
    low, high = wilson(k, n)
    return f"{k}/{n} ({100 * k / n:.1f}% [{100 * low:.1f}, {100 * high:.1f}])"


def run_outcomes(run: Path) -> dict[tuple, dict[str, pd.Series]]:
    """{(seed, checkpoint, split): {"within": ..., "at_1": ..., "rescued": ..., "failed_1": ...}}
    from every replies.jsonl under <run>/results/s<seed>/eval/<checkpoint>/."""
    out = {}
    for path in sorted((run / "results").glob("s*/eval/*/replies.jsonl")):
        seed, ckpt = int(path.parts[-4][1:]), path.parts[-2]
        within, first = hand_outcomes(path), hand_outcomes(path, max_attempt=1)
        for split in SPLITS:
            if split in within:
                w, f = within[split], first[split]
                out[(seed, ckpt, split)] = {"within": w, "at_1": f, "rescued": w & ~f, "failed_1": ~f}
    if not out:
        raise SystemExit(f"{run}: no results/s<seed>/eval/<checkpoint>/replies.jsonl (expected a finished run folder)")
    return out


def compare(a: dict, b: dict) -> tuple[pd.DataFrame, pd.DataFrame, list]:
    """(per-seed rows, pooled rows, keys in one run only)."""
    common = sorted(set(a) & set(b), key=lambda k: (k[1], k[2], k[0]))
    only = sorted(set(a) ^ set(b))
    rows = []
    for key in common:
        seed, ckpt, split = key
        x, y = a[key], b[key]
        if not x["within"].index.equals(y["within"].index):
            raise SystemExit(f"{ckpt} {split} seed {seed}: the two runs evaluated other hands; "
                             "an ablation must keep the data (master seed, data section) the same")
        row = {"seed": seed, "checkpoint": ckpt, "split": split, "n": len(x["within"])}
        for tag, o in (("a", x), ("b", y)):
            row.update({f"{tag}_within": int(o["within"].sum()), f"{tag}_at_1": int(o["at_1"].sum()),
                        f"{tag}_failed_1": int(o["failed_1"].sum()), f"{tag}_rescued": int(o["rescued"].sum())})
        for what in ("within", "rescued"):
            p = mcnemar([y[what]], [x[what]])
            row.update({f"{what}_diff": p.diff, f"{what}_b_only": p.a_only, f"{what}_a_only": p.b_only, f"{what}_p": p.p_value})
        rows.append(row)
    per_seed = pd.DataFrame(rows)
    pooled = []
    for (ckpt, split), grp in per_seed.groupby(["checkpoint", "split"], sort=False):
        keys = [(int(s), ckpt, split) for s in grp["seed"]]
        row = {"checkpoint": ckpt, "split": split, "seeds": len(keys), "n": int(grp["n"].sum())}
        for tag in ("a", "b"):
            for col in ("within", "at_1", "failed_1", "rescued"):
                row[f"{tag}_{col}"] = int(grp[f"{tag}_{col}"].sum())
        for what in ("within", "rescued"):
            p = mcnemar([b[k][what] for k in keys], [a[k][what] for k in keys])
            row.update({f"{what}_diff": p.diff, f"{what}_b_only": p.a_only, f"{what}_a_only": p.b_only, f"{what}_p": p.p_value,
                        f"{what}_test": str(p)})
        pooled.append(row)
    return per_seed, pd.DataFrame(pooled), only


def ckpt_order(ckpt: str) -> tuple:
    from rlheals.checkpoints import parse_ckpt

    info = parse_ckpt(ckpt)
    stage = {"base": 0, "sft": 1, "rl": 2, "edit": 3}.get(info["stage"], 4)
    return (stage, info.get("sft_step") or 0, str(info.get("rl_algo") or ""), info.get("rl_step") or 0, ckpt)


def markdown(pooled: pd.DataFrame, label_a: str, label_b: str, only: list, note: str) -> str:
    lines = [f"# {label_b} against {label_a}", "",
             f"A = {label_a}; B = {label_b}. {note}".strip(), "",
             "Success within the attempts and the rescue rate (hands failed at attempt 1 and solved later, "
             "of those failed at attempt 1), pooled over seeds, with 95% Wilson intervals; B - A by exact "
             "McNemar tests on the same hands (stratified over seeds), on success and on being rescued.", "",
             "| checkpoint | split | A within | B within | B - A within | A rescue | B rescue | B - A rescued hands |",
             "|---|---|---|---|---|---|---|---|"]
    pooled = pooled.assign(_o=[ckpt_order(c) for c in pooled["checkpoint"]]).sort_values(["_o", "split"])
    for r in pooled.itertuples():
        lines.append(f"| {r.checkpoint} | {r.split} | {_rate(r.a_within, r.n)} | {_rate(r.b_within, r.n)} | "
                     f"{r.within_test} | {_rate(r.a_rescued, r.a_failed_1)} | {_rate(r.b_rescued, r.b_failed_1)} | "
                     f"{r.rescued_test} |")
    if only:
        lines += ["", "In one run only (not compared): " + ", ".join(f"s{s} {c} {sp}" for s, c, sp in only[:40])
                  + (" ..." if len(only) > 40 else "")]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", required=True, type=Path, help="run folder A (the reference)")
    ap.add_argument("--b", required=True, type=Path, help="run folder B (the ablation)")
    ap.add_argument("--label-a", default="A")
    ap.add_argument("--label-b", default="B")
    ap.add_argument("--note", default="", help="a sentence on what differs between the runs")
    ap.add_argument("--checkpoints", nargs="*", default=None, help="only these checkpoints (default: all in both)")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    a, b = run_outcomes(args.a), run_outcomes(args.b)
    if args.checkpoints:
        keep = set(args.checkpoints)
        a = {k: v for k, v in a.items() if k[1] in keep}
        b = {k: v for k, v in b.items() if k[1] in keep}
    per_seed, pooled, only = compare(a, b)
    if per_seed.empty:
        raise SystemExit("no (seed, checkpoint, split) is in both runs")
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "compare.csv", per_seed)
    write_csv(args.out / "summary.csv", pooled)
    with atomic_path(args.out / "summary.md") as tmp:
        Path(tmp).write_text(markdown(pooled, args.label_a, args.label_b, only, args.note))
    print((args.out / "summary.md").read_text())


if __name__ == "__main__":
    main()
