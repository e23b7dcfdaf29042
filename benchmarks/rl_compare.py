"""Single- vs multi-turn RL, GRPO vs PPO, from the SFT checkpoints of a finished run.

The workflow runs one RL setting per config; this script asks the question of issue "The
paper's RL" on one finished run: does RL with the verifier's feedback (multi-turn, the
paper's 5 attempts) or PPO with a value head (the paper's algorithm) move OOD where
single-turn GRPO does not? For every seed x fork x variant it trains the fork with the
library's own trainers (rlheals.train.rl / rlheals.train.ppo, the run's config with the
variant's `rl.algorithms` and `rl.attempts`), evaluates the start and the end on the run's
ID and OOD report hands with `--attempts` attempts (attempt-1 and within-N success both
come from that one evaluation), and compares end with start by an exact McNemar test on
the same hands, pooled over seeds (stratified). Per-step time is the trainers' own
`step_time` (rollout included).

    python benchmarks/rl_compare.py --run . --out results/rl_compare \
        --variants grpo:1 grpo:5 ppo:1 ppo:5 --seeds 0 1 2 --forks 300 500 1000

`--jobs N` runs N (seed, fork) units side by side, each with compute.threads threads.
Writes <out>/compare.csv (one row per seed, fork, variant, split), <out>/summary.csv and
<out>/summary.md (pooled over seeds); a rerun skips every fork and evaluation it finds.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from rlheals import config as cfgmod
from rlheals.atomic import write_csv
from rlheals.checkpoints import ALGORITHMS
from rlheals.evaluation.evaluate import EvalOptions, evaluate_checkpoint
from rlheals.evaluation.outcomes import hand_outcomes
from rlheals.evaluation.stats import mcnemar, wilson

log = logging.getLogger("rl_compare")
SPLITS = {"id": "eval_id", "ood": "eval_ood"}


def parse_variant(text: str) -> tuple[str, int]:
    algo, _, attempts = text.partition(":")
    if algo not in ALGORITHMS:
        raise SystemExit(f"--variants: unknown algorithm {algo!r} in {text!r} (expected one of {', '.join(ALGORITHMS)})")
    try:
        n = int(attempts or 1)
    except ValueError:
        raise SystemExit(f"--variants: {text!r}: expected ALGO:ATTEMPTS, e.g. grpo:5") from None
    return algo, n


def train_fork(cfg: dict, run: Path, out: Path, seed: int, step: int, algo: str, attempts: int) -> tuple[Path, float]:
    """Train one fork to rl.steps; returns its exported folder and the mean step time."""
    rl = dict(cfg["rl"], attempts=attempts)
    opts = cfgmod.rl_job_options(rl, algo)
    common = dict(seed=seed, device=cfg["compute"]["device"], threads=cfg["compute"]["threads"])
    start = run / f"results/s{seed}/models/" / ("base" if step == 0 else f"sft-{step}")
    if not start.is_dir():
        raise SystemExit(f"{start}: no such checkpoint; --run must name a finished run with SFT step {step}")
    name = f"{algo}x{attempts}-{step}"
    model_out = out / f"s{seed}/models/rl-{name}"
    table = out / f"s{seed}/tables/rl-{name}.csv"
    if not (model_out.is_dir() and table.is_file()):
        args = (str(start), str(run / "results/data/rl_prompts.jsonl"), [int(rl["steps"])], [str(model_out)],
                str(table), str(out / f"s{seed}/train/{name}"))
        if algo == "ppo":
            from rlheals.train.ppo import PPOOptions, train_ppo

            train_ppo(*args, PPOOptions(**opts, **common))
        else:
            from rlheals.train.rl import RLOptions, train_rl

            train_rl(*args, RLOptions(algo=algo, **opts, **common))
    frame = pd.read_csv(table)
    return model_out, float(frame["step_time"].dropna().mean()) if "step_time" in frame else float("nan")


def evaluate(cfg: dict, run: Path, model: Path, out: Path, attempts: int, seed: int) -> dict:
    """{split: (within-N Series, attempt-1 Series)} on the run's report hands."""
    summary, replies = out / "summary.csv", out / "replies.jsonl"
    if not replies.is_file():
        opts = EvalOptions.from_config(dict(cfg["evaluation"], attempts=attempts), cfg["model"]["prompt_style"], seed)
        data = {split: str(run / f"results/data/{name}.jsonl") for split, name in SPLITS.items()}
        evaluate_checkpoint(str(model), data, opts, str(summary), str(replies), cfg["compute"]["device"])
    within, first = hand_outcomes(replies), hand_outcomes(replies, max_attempt=1)
    return {split: (within[split], first[split]) for split in SPLITS}


def pooled(series: list[pd.Series]) -> str:
    k, n = sum(int(s.sum()) for s in series), sum(len(s) for s in series)
    low, high = wilson(k, n)
    return f"{k}/{n} ({100 * k / n:.1f}% [{100 * low:.1f}, {100 * high:.1f}])"


def run_unit(unit: tuple) -> list[dict]:
    """One (seed, fork): evaluate the start, then train and evaluate every variant from it."""
    cfg, run, out, seed, step, variants, attempts_eval = unit
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    import torch

    torch.set_num_threads(int(cfg["compute"]["threads"]))
    start = run / f"results/s{seed}/models/" / ("base" if step == 0 else f"sft-{step}")
    before = evaluate(cfg, run, start, out / f"s{seed}/eval/start-{step}", attempts_eval, seed)
    rows = []
    for algo, attempts in variants:
        t0 = time.time()
        model, step_time = train_fork(cfg, run, out, seed, step, algo, attempts)
        wall = time.time() - t0
        after = evaluate(cfg, run, model, out / f"s{seed}/eval/{algo}x{attempts}-{step}", attempts_eval, seed)
        for split in SPLITS:
            rows.append({"seed": seed, "fork": step, "algo": algo, "rl_attempts": attempts, "split": split,
                         "n": len(after[split][0]), "start_at_1": int(before[split][1].sum()),
                         "start_within": int(before[split][0].sum()), "end_at_1": int(after[split][1].sum()),
                         "end_within": int(after[split][0].sum()), "step_time": step_time,
                         "train_wall": wall, "_before": before[split], "_after": after[split]})
        log.info("seed %d fork %d %s x%d: OOD %d -> %d (at 1), %.2f s/step", seed, step, algo, attempts,
                 rows[-1]["start_at_1"], rows[-1]["end_at_1"], step_time)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", default=".", help="folder of a finished run (results/, and its config)")
    ap.add_argument("--config", default=None, help="the run's config (default: <run>/config.yaml)")
    ap.add_argument("--configfile", action="append", default=[], help="override configs the run used")
    ap.add_argument("--out", default="results/rl_compare")
    ap.add_argument("--variants", nargs="+", default=["grpo:1", "grpo:5", "ppo:1", "ppo:5"])
    ap.add_argument("--seeds", nargs="+", type=int, default=None, help="default: the run's replicate seeds")
    ap.add_argument("--forks", nargs="+", type=int, default=None, help="default: the config's rl.fork_from")
    ap.add_argument("--steps", type=int, default=None, help="RL steps per fork (default: rl.steps)")
    ap.add_argument("--attempts", type=int, default=5, help="evaluation attempts (attempt 1 is reported too)")
    ap.add_argument("--jobs", type=int, default=1, help="(seed, fork) units run in parallel processes")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    run, out = Path(args.run).resolve(), Path(args.out).resolve()
    cfg = cfgmod.load(args.config or run / "config.yaml", args.configfile)
    if args.steps:
        cfg["rl"]["steps"] = args.steps
        cfg["rl"]["save_every"] = args.steps
    seeds = args.seeds if args.seeds is not None else cfgmod.replicate_seeds(cfg)
    forks = args.forks if args.forks is not None else list(cfg["rl"]["fork_from"])
    variants = [parse_variant(v) for v in args.variants]
    units = [(cfg, run, out, seed, step, variants, args.attempts) for seed in seeds for step in forks]
    rows = []
    if args.jobs > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=mp.get_context("spawn")) as pool:
            for part in pool.map(run_unit, units):
                rows.extend(part)
    else:
        for unit in units:
            rows.extend(run_unit(unit))
    frame = pd.DataFrame(rows)
    write_csv(out / "compare.csv", frame.drop(columns=["_before", "_after"]))
    summary = []
    for (step, algo, attempts, split), grp in frame.groupby(["fork", "algo", "rl_attempts", "split"], sort=False):
        entry = {"fork": step, "variant": f"{algo}, {attempts} attempt{'s' if attempts > 1 else ''}", "split": split,
                 "s_per_step": round(float(np.nanmean(grp["step_time"])), 3)}
        for which, idx in (("at 1", 1), (f"within {args.attempts}", 0)):
            b = [r[idx] for r in grp["_before"]]
            a = [r[idx] for r in grp["_after"]]
            test = mcnemar(a, b)
            entry[f"start {which}"] = pooled(b)
            entry[f"end {which}"] = pooled(a)
            entry[f"end - start {which}"] = str(test)
        summary.append(entry)
    table = pd.DataFrame(summary)
    write_csv(out / "summary.csv", table)
    md = table.to_markdown(index=False) if _has_tabulate() else table.to_string(index=False)
    (out / "summary.md").write_text(f"seeds {seeds}, forks {forks}, {cfg['rl']['steps']} RL steps, "
                                    f"evaluation with {args.attempts} attempts, CPU threads "
                                    f"{cfg['compute']['threads']}\n\n{md}\n")
    print(md)
    return 0


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
