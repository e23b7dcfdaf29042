"""The evaluation/analysis/edits/report part of the workflow runs and `--report` builds.

The fast test gives Snakemake a ready-made upstream (data, tiny random checkpoints, an
SFT loss table) and lets only this stage's rules run (`--allowed-rules`), on the smoke
config. The slow test runs the whole smoke workflow end to end and builds the report.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "tests" / "configs" / "smoke.yaml"
OUR_RULES = ["evaluate", "aggregate_eval", "select_references", "aggregate_references", "aggregate_losses", "reference_svd", "analyze", "aggregate_analysis",
             "edit", "plot_eval", "plot_analysis", "plot_edits", "scorecard"]
UPSTREAM = ["base", "sft-10", "sft-20", "rl-grpo-20-4"]
# The smoke config cut down to fewer jobs of the same rules: one RL fork kept only at its
# end, one reference, a sweep of two shares of directions and values (finding 4's inputs).
FAST = """
replicates: 1
rl: {fork_from: [20], save_every: 4}
analysis: {references: [sft_best]}
edits:
  - {name: dir, kind: directions, donor: sft_best, target: sft_last, k: [0.25, 1.0]}
  - {name: val, kind: values, donor: sft_best, target: sft_last, k: [0.25, 1.0]}
"""


def _snakemake(workdir: Path, *args: str, timeout: int = 600, extra_config: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "RLHEALS_SVD_THREADS": "1"}
    configs = [str(SMOKE)] + ([str(extra_config)] if extra_config else [])
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--configfile", *configs,
           "--directory", str(workdir), "--cores", "2", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]
    return proc


def make_upstream(workdir: Path) -> None:
    """Data, checkpoints and loss table as the data/base/SFT/RL stages would leave them."""
    import torch

    from rlheals.task.cards import make_hands
    from rlheals.train.models import build_tiny_model, save_model
    from rlheals.data.tokenizer import build_tokenizer

    torch.set_num_threads(1)
    data = workdir / "results" / "data"
    data.mkdir(parents=True)
    for kind, seed in (("eval", 11), ("val", 12)):
        for rule in ("id", "ood"):
            hands = make_hands(16, rule, seed=seed)
            with open(data / f"{kind}_{rule}.jsonl", "w") as fh:
                for i, cards in enumerate(hands):
                    seen = kind == "eval" and rule == "id" and i % 2 == 0
                    fh.write(json.dumps({"id": i, "cards": cards, "rule": rule, "seen": seen}) + "\n")
    tok = build_tokenizer()
    tiny = {"hidden_size": 32, "intermediate_size": 64, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1}
    base = build_tiny_model(tiny, tok, seed=0)
    gen = torch.Generator().manual_seed(0)
    for ckpt in UPSTREAM:
        with torch.no_grad():
            for p in base.parameters():
                p.add_(0.02 * torch.randn(p.shape, generator=gen))
        save_model(base, tok, workdir / "results" / "s0" / "models" / ckpt)
    tables = workdir / "results" / "s0" / "tables"
    tables.mkdir(parents=True)
    pd.DataFrame({"step": [0, 10, 20], "train_loss": [4.0, 2.0, 1.5], "heldout_id_loss": [4.1, 2.1, 1.7],
                  "heldout_ood_loss": [4.2, 2.5, 2.6]}).to_csv(tables / "sft_loss.csv", index=False)


TARGETS = ["results/tables/eval.csv", "results/tables/analysis.csv", "results/tables/scorecard.csv",
           "results/figures/sft_curves.png", "results/figures/rl_forks.png", "results/figures/drift.png",
           "results/figures/edits.png", "results/figures/angles_sft_best.png"]


def test_stage_runs_and_report_builds(tmp_path):
    make_upstream(tmp_path)
    fast = tmp_path / "fast.yaml"
    fast.write_text(FAST)
    proc = _snakemake(tmp_path, "--allowed-rules", *OUR_RULES, "--", *TARGETS, extra_config=fast)
    assert "Scorecard of the paper's findings" in proc.stdout + proc.stderr
    _check_outputs(tmp_path, len(UPSTREAM) + 4, ["sft_best"])
    card = pd.read_csv(tmp_path / "results" / "tables" / "scorecard.csv")
    f4 = card[card["finding"] == 4].iloc[0]
    assert "the sweep (Holm over 2 shares)" in f4["value"] and "share chosen on val_ood" in f4["value"]
    assert f4["skill"].startswith("PAPER'S MEASURES beside ours")
    analysis = pd.read_csv(tmp_path / "results" / "tables" / "analysis.csv")
    assert ((analysis["chordal_left"] >= 0) & (analysis["chordal_left"] <= 1 + 1e-9)).all()
    _snakemake(tmp_path, "--allowed-rules", *OUR_RULES, "--report", str(tmp_path / "report.html"), "--", *TARGETS,
               extra_config=fast)
    assert (tmp_path / "report.html").stat().st_size > 10_000


def _check_outputs(workdir: Path, n_ckpts: int, analysed=("base", "sft_best"), seeds=(0,)) -> None:
    table = pd.read_csv(workdir / "results" / "tables" / "eval.csv")
    for col in ("checkpoint", "stage", "sft_step", "rl_algo", "rl_step", "split", "n", "success_rate", "ci_low",
                "ci_high", "mean_reward"):
        assert col in table.columns, col
    assert set(table["stage"]) == {"base", "sft", "rl", "edit"}
    assert (table["n"] == 16).all()
    report = table[table["split"].isin(["id", "ood"])]
    assert len(report) == 2 * n_ckpts * len(seeds)
    # validation: every SFT checkpoint and each fork's end (both splits), the directions edits
    # (OOD only: finding 4 chooses the share of the rank on them), nothing else
    val = table[table["split"] == "val_ood"]
    assert set(val["stage"]) == {"sft", "rl", "edit"} and (val["rl_step"].dropna() == val["rl_step"].max()).all()
    assert (val.loc[val["stage"] == "edit", "edit_kind"] == "directions").all()
    assert "edit" not in set(table.loc[table["split"] == "val_id", "stage"])
    edits = table[table["stage"] == "edit"]
    assert edits["edit_kind"].notna().all() and edits["edit_layers"].notna().all()
    assert ((edits["edit_k_frac"] > 0) & (edits["edit_k_frac"] <= 1)).all()
    assert table.loc[table["stage"] != "edit", "edit_kind"].isna().all()
    ids = table[table["split"] == "id"]
    assert (ids["seen_n"] == 8).all() and (ids["unseen_n"] == 8).all()
    assert (ids["seen_successes"] + ids["unseen_successes"] == ids["successes"]).all()
    assert (table.loc[table["split"] == "ood", "seen_n"] == 0).all()
    assert set(table["seed"]) == set(seeds)
    refs = json.loads((workdir / "results" / "tables" / "references.json").read_text())
    assert sorted(refs["seeds"]) == sorted(str(s) for s in seeds)
    for seed in seeds:
        one = refs["seeds"][str(seed)]
        assert one["sft_last"] == "sft-20" and one["rl_best"].endswith("-4")
        assert one["chosen_on"]["sft_best"] == "val_ood" and one["chosen_on"]["rl_best"] == "val_ood"
        val = table[(table["seed"] == seed) & (table["split"] == "val_ood") & (table["stage"] == "sft")]
        best = val.sort_values(["success_rate", "sft_step"], ascending=[False, True])["checkpoint"].iloc[0]
        assert one["sft_best"] == best
    analysis = pd.read_csv(workdir / "results" / "tables" / "analysis.csv")
    assert set(analysis["reference"]) == set(analysed)
    card = pd.read_csv(workdir / "results" / "tables" / "scorecard.csv")
    assert sorted(card["finding"].unique().tolist()) == [1, 2, 3, 4]
    assert set(card["verdict"]) <= {"holds", "does not hold", "inconclusive"}
    for fig in TARGETS[3:-1] + [f"results/figures/angles_{r}.png" for r in analysed]:
        assert (workdir / fig).stat().st_size > 5_000, fig


@pytest.mark.slow
def test_smoke_workflow_end_to_end_with_report(tmp_path):
    _snakemake(tmp_path, timeout=1800)
    _check_outputs(tmp_path, 7 + 3, seeds=(0, 1))  # base, 2 SFT, 2 forks x 2 RL steps, 3 edits; 2 replicates
    _snakemake(tmp_path, "--report", str(tmp_path / "report.html"))
    assert (tmp_path / "report.html").stat().st_size > 10_000
