"""References are chosen on the validation split, and the file says which split chose each."""
from __future__ import annotations

import pandas as pd
import pytest

from rlheals.report.references import combine, for_seed, select_from_summaries


def _summary(tmp_path, ckpt: str, ood: float, val_ood: float | None):
    rows = [{"split": "id", "success_rate": 0.5}, {"split": "ood", "success_rate": ood}]
    if val_ood is not None:
        rows.append({"split": "val_ood", "success_rate": val_ood})
    path = tmp_path / f"{ckpt}.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_choices_follow_the_validation_split_not_the_reported_one(tmp_path):
    # sft-20 is best on the reported OOD hands, sft-10 on the validation hands
    rates = {"sft-10": (0.05, 0.30), "sft-20": (0.40, 0.10), "rl-grpo-10-4": (0.50, 0.05), "rl-grpo-20-4": (0.0, 0.20)}
    summaries = {c: _summary(tmp_path, c, *r) for c, r in rates.items()}
    refs = select_from_summaries(summaries, rl_final_step=4)
    assert refs["sft_best"] == "sft-10" and refs["rl_best"] == "rl-grpo-20-4" and refs["sft_last"] == "sft-20"
    assert refs["chosen_on"] == {"sft_best": "val_ood", "sft_last": "largest SFT step", "rl_best": "val_ood"}
    assert refs["val_ood_success"]["sft-10"] == 0.30
    # the reported split would have chosen otherwise
    assert select_from_summaries(summaries, 4, split="ood")["sft_best"] == "sft-20"


def test_a_checkpoint_without_validation_rows_is_an_error(tmp_path):
    summaries = {"sft-10": _summary(tmp_path, "sft-10", 0.1, None)}
    with pytest.raises(ValueError, match="val_ood"):
        select_from_summaries(summaries)


def test_combined_file_round_trip():
    combined = combine({1: {"sft_best": "sft-10"}, 0: {"sft_best": "sft-20"}})
    assert list(combined["seeds"]) == ["0", "1"]
    assert for_seed(combined, 1) == {"sft_best": "sft-10"}
    with pytest.raises(ValueError, match="seed 7"):
        for_seed(combined, 7)
