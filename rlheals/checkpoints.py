"""Checkpoint ids: the names every stage gives its checkpoints, and their parsing.

``base`` | ``sft-<step>`` | ``rl-<algo>-<sft step>-<rl step>`` | ``edit-<name>``. Training
writes them, evaluation tags its tables with them and the report selects among them, so
the parsing lives here, below all three.
"""
from __future__ import annotations

import re

#: The one list of RL algorithm names: checkpoint ids, the config schema (rl.algorithms,
#: checkpoint references) and the workflow's wildcard constraints all follow from it.
#: grpo and rloo are trl's trainers (rlheals.train.rl), ppo ours (rlheals.train.ppo).
ALGORITHMS = ("grpo", "rloo", "ppo")
ALGO_PATTERN = "|".join(ALGORITHMS)
_ALGO = ALGO_PATTERN
SFT_RE = re.compile(r"^sft-(\d+)$")
RL_RE = re.compile(rf"^rl-({_ALGO})-(\d+)-(\d+)$")
CKPT_RE = re.compile(rf"^(base|sft-\d+|rl-({_ALGO})-\d+-\d+|edit-[a-z0-9_-]+)$")


def parse_ckpt(ckpt: str) -> dict:
    """Stage and steps of a checkpoint id: base | sft-<s> | rl-<algo>-<s>-<r> | edit-<name>."""
    if ckpt == "base":
        return {"stage": "base", "sft_step": 0, "rl_algo": None, "rl_step": None}
    m = SFT_RE.match(ckpt)
    if m:
        return {"stage": "sft", "sft_step": int(m.group(1)), "rl_algo": None, "rl_step": None}
    m = RL_RE.match(ckpt)
    if m:
        return {"stage": "rl", "sft_step": int(m.group(2)), "rl_algo": m.group(1), "rl_step": int(m.group(3))}
    if ckpt.startswith("edit-"):
        return {"stage": "edit", "sft_step": None, "rl_algo": None, "rl_step": None}
    raise ValueError(f"checkpoint id {ckpt!r}: expected base, sft-<step>, rl-<algo>-<step>-<step> or edit-<name>")
