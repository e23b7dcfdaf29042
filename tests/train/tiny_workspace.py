"""Shared test set-up: real (small) task data and a freshly built tiny base model."""
from __future__ import annotations

from pathlib import Path

from rlheals.data.splits import SET_NAMES, write_all
from rlheals.train.models import build_tiny_model, save_model
from rlheals.data.tokenizer import build_tokenizer

TINY = {"hidden_size": 32, "intermediate_size": 64, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1}


def make_workspace(root: Path, sft_size: int, rl_size: int) -> tuple[str, dict[str, str], dict[str, str]]:
    """Write the task's data sets and a tiny base model under `root`.

    Returns (base model folder, all data paths by set name, the SFT data mapping).
    """
    paths = {name: str(root / f"{name}.jsonl") for name in SET_NAMES}
    write_all(paths, {"sft_size": sft_size, "heldout_size": 8, "rl_size": rl_size, "eval_size": 8}, 0, "compact")
    tok = build_tokenizer()
    save_model(build_tiny_model(TINY, tok, seed=0), tok, root / "base")
    sft_data = {"train": paths["sft_train"], "heldout_id": paths["sft_heldout_id"], "heldout_ood": paths["sft_heldout_ood"],
                "test_id": paths["sft_test_id"]}
    return str(root / "base"), paths, sft_data


def formatted_start(root: Path, sft_size: int = 200, rl_size: int = 32) -> tuple[str, dict[str, str], dict[str, str], str]:
    """A workspace plus a tiny model fine-tuned for 150 steps, just enough to write the answer
    format (so RL rewards vary): (base, data paths, SFT data, the fine-tuned model's folder)."""
    from rlheals.train.common import set_threads
    from rlheals.train.sft import SFTOptions, train_sft

    set_threads(1)
    base, paths, data = make_workspace(root, sft_size=sft_size, rl_size=rl_size)
    opts = SFTOptions(batch_size=16, lr=5e-3, warmup_steps=2, save_every=100, eval_every=100, max_length=64,
                      device="cpu", threads=1)
    train_sft(base, data, 150, str(root / "sft"), str(root / "sft-runs"), opts)
    return base, paths, data, str(root / "sft")
