"""Named reference checkpoints, resolved from this run's evaluation results.

The analysis and the edits name checkpoints symbolically (``sft_best``, ``sft_last``,
``rl_best``) because which SFT checkpoint has the best OOD score is known only after
evaluation. The workflow's ``select_references`` checkpoint writes the mapping of one
replicate to ``results/s<seed>/tables/references.json`` (all replicates together:
``results/tables/references.json``); every later rule resolves names through `resolve`.

Choices are made on the validation split (``val_ood``: hands of their own, never
reported), so the evaluation hands that report a reference's success did not pick it.

- ``sft_best``: the SFT checkpoint with the highest validation OOD success (ties: the
  earliest step).
- ``sft_last``: the SFT checkpoint with the largest step (no data involved).
- ``rl_best``: the final RL checkpoint (last RL step of each fork) with the highest
  validation OOD success (ties: earliest SFT fork step, then algorithm name); null
  without RL forks.

``chosen_on`` records, per reference, the split (or rule) that chose it; the rates each
choice was made from are kept under ``<split>_success``.
"""
from __future__ import annotations

import json
import os
from typing import Mapping

from rlheals.atomic import write_json
from rlheals.checkpoints import CKPT_RE as _CKPT, RL_RE as _RL, SFT_RE as _SFT, parse_ckpt

SYMBOLS = ("sft_best", "sft_last", "rl_best")


def select(ood_success: Mapping[str, float], rl_final_step: int | None = None, split: str | None = None) -> dict:
    """Pick sft_best, sft_last and rl_best from {checkpoint id: OOD success rate on `split`}
    (`split` None: rates of unnamed hands, recorded as `ood_success` without `chosen_on`).

    RL checkpoints count for rl_best only at `rl_final_step` (the end of each fork); when
    it is None, the largest RL step present for each fork is used.
    """
    sft = sorted((parse_ckpt(c)["sft_step"], c) for c in ood_success if _SFT.match(c))
    if not sft:
        raise ValueError("no SFT checkpoint was evaluated; sft_best and sft_last need at least one")
    best = max(sft, key=lambda sc: (ood_success[sc[1]], -sc[0]))[1]
    rl = [(c, parse_ckpt(c)) for c in ood_success if _RL.match(c)]
    if rl_final_step is None:
        last: dict[tuple, int] = {}
        for _, info in rl:
            fork = (info["rl_algo"], info["sft_step"])
            last[fork] = max(last.get(fork, 0), info["rl_step"])
        rl = [(c, i) for c, i in rl if i["rl_step"] == last[(i["rl_algo"], i["sft_step"])]]
    else:
        rl = [(c, i) for c, i in rl if i["rl_step"] == rl_final_step]
    rl_best = None
    if rl:
        rl.sort(key=lambda ci: (ci[1]["sft_step"], ci[1]["rl_algo"]))
        rl_best = max(enumerate(rl), key=lambda ici: (ood_success[ici[1][0]], -ici[0]))[1][0]
    refs = {"sft_best": best, "sft_last": sft[-1][1], "rl_best": rl_best}
    if split is None:
        return {**refs, "ood_success": dict(ood_success)}
    chosen_on = {"sft_best": split, "sft_last": "largest SFT step", "rl_best": split if rl_best else None}
    return {**refs, "chosen_on": chosen_on, f"{split}_success": dict(ood_success)}


def select_from_summaries(
    summaries: Mapping[str, str | os.PathLike], rl_final_step: int | None = None, split: str = "val_ood"
) -> dict:
    """`select` on per-checkpoint evaluation summaries ({ckpt: path to summary.csv}), by
    the success on `split` (the validation OOD hands in the workflow)."""
    import pandas as pd

    ood = {}
    for ckpt, path in summaries.items():
        frame = pd.read_csv(path)
        rows = frame[frame["split"] == split]
        if rows.empty:
            raise ValueError(f"{path}: no '{split}' row; references are chosen on the {split} split, "
                             f"so {ckpt} must be evaluated on it")
        ood[ckpt] = float(rows["success_rate"].iloc[0])
    return select(ood, rl_final_step, split)


def combine(per_seed: Mapping[int, dict]) -> dict:
    """results/tables/references.json: {"seeds": {"<seed>": references of that replicate}}
    (JSON keys are strings; `for_seed` reads one replicate back)."""
    return {"seeds": {str(int(seed)): dict(refs) for seed, refs in sorted(per_seed.items())}}


def for_seed(combined: Mapping, seed: int) -> dict:
    """One replicate's references from a combined references.json."""
    try:
        return combined["seeds"][str(int(seed))]
    except KeyError:
        raise ValueError(f"references.json has no entry for seed {seed}; seeds: {sorted(combined.get('seeds', {}))}")


def write(path: str | os.PathLike, refs: dict) -> None:
    write_json(path, refs)


def load(path: str | os.PathLike) -> dict:
    with open(path) as fh:
        return json.load(fh)


def resolve(name: str, refs: Mapping[str, str | None] | None) -> str:
    """Checkpoint id for a config name: a symbol (sft_best, ...) or an id (sft-500, base)."""
    if name in SYMBOLS:
        if refs is None:
            raise ValueError(f"'{name}' needs results/tables/references.json (written after evaluation)")
        ckpt = refs.get(name)
        if ckpt is None:
            raise ValueError(f"reference '{name}' is undefined in this run (no RL fork was trained?)")
        return ckpt
    if not _CKPT.match(name):
        raise ValueError(f"reference {name!r}: expected base, sft_best, sft_last, rl_best or a checkpoint id")
    return name
