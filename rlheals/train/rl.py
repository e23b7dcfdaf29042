"""RL forks with trl: GRPO (default) or RLOO from one start checkpoint, rewarded by the verifier.

One fork = one (algorithm, start checkpoint) run on the RL prompt set (ID rule). The
reward is the task verifier's (`verifier.make_reward_fn`: the paper's +5/+1/-1/-2/-3
table or binary); a second, zero-weight binary reward is logged so the table has the
success rate. Checkpoints (full trainer state) are saved every `save_every` steps under a
run folder named by what decides the run, marked complete when written, and resumed
from after an interruption; each kept step is exported as an HF folder.

The paper trained with PPO and a value head. trl 1.16 has no PPOTrainer (removed in
1.13), so PPO is not offered; GRPO and RLOO are critic-free policy-gradient methods.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
from datasets import Dataset
from transformers import AutoModelForCausalLM

from rlheals.atomic import atomic_path, read_jsonl, write_csv
from rlheals.train.models import load_tokenizer, resolve_device
from rlheals.train.sft import _MarkComplete
from rlheals.train.common import (
    LOG,
    complete_checkpoints,
    code_digest,
    compute_identity,
    dir_identity,
    file_digest,
    fingerprint,
    latest_at_most,
    open_run,
    seed_all,
    set_threads,
    trainer_kwargs,
)

ALGORITHMS = ("grpo", "rloo")


@dataclass
class RLOptions:
    """RL settings: config section `rl` (minus the job-selecting keys) plus seed/device/threads."""

    algo: str = "grpo"
    batch_size: int = 16
    num_generations: int = 8
    lr: float = 3e-5
    temperature: float = 1.0
    max_completion_length: int = 48
    beta: float = 0.0
    reward: str = "paper"
    save_every: int = 50
    seed: int = 0
    device: str = "auto"
    threads: int = 2

    def __post_init__(self) -> None:
        if self.algo not in ALGORITHMS:
            raise ValueError(f"rl algorithm '{self.algo}': expected one of {', '.join(ALGORITHMS)} (trl 1.16 has no PPO)")
        if self.batch_size % self.num_generations:
            raise ValueError(f"rl.batch_size ({self.batch_size}) must be divisible by rl.num_generations ({self.num_generations})")

    def run_key(self) -> dict:
        """What decides the trajectory (not how often it is saved, nor where it runs)."""
        return {k: v for k, v in asdict(self).items() if k not in ("device", "threads", "save_every")}


def load_prompts(path: str) -> Dataset:
    rows = read_jsonl(path)
    if not rows or any(k not in rows[0] for k in ("prompt", "cards", "rule")):
        raise ValueError(f"{path}: expected records with 'prompt', 'cards' and 'rule'")
    return Dataset.from_list([{"prompt": r["prompt"], "cards": r["cards"], "rule": r["rule"]} for r in rows])


def _config(run_dir: Path, max_steps: int, device: str, opts: RLOptions):
    from trl import GRPOConfig, RLOOConfig

    common = dict(
        output_dir=str(run_dir),
        max_steps=max_steps,
        per_device_train_batch_size=opts.batch_size,
        num_generations=opts.num_generations,
        max_completion_length=opts.max_completion_length,
        temperature=opts.temperature,
        learning_rate=opts.lr,
        lr_scheduler_type="constant",
        beta=opts.beta,
        reward_weights=[1.0, 0.0],
        **trainer_kwargs(opts.seed, opts.save_every, device),
    )
    return (GRPOConfig if opts.algo == "grpo" else RLOOConfig)(**common)


def run_key(start_dir: str, prompts: str, opts: RLOptions, device: str) -> dict:
    """Everything that decides a fork: options, start model, prompts, the code it runs
    and the hardware's precision and process count."""
    return {
        "opts": opts.run_key(),
        "start": dir_identity(start_dir),
        "start_path": str(Path(start_dir).resolve()),
        "prompts": file_digest(prompts),
        "code": code_digest("rlheals.train.rl"),
        "compute": compute_identity(device),
    }


def run_dir_for(start_dir: str, prompts: str, run_root: str, opts: RLOptions) -> Path:
    """The fork's run folder (a path only; `open_run` creates it under its lock)."""
    return Path(run_root) / fingerprint(run_key(start_dir, prompts, opts, resolve_device(opts.device)))


def _train_to(target: int, start_dir: str, prompts: Dataset, run_dir: Path, device: str, opts: RLOptions) -> None:
    from trl import GRPOTrainer, RLOOTrainer

    from rlheals.task.verifier import make_reward_fn

    start, ckpt = latest_at_most(run_dir, target)
    if start == target:
        return
    LOG.info("%s to step %d from %s (run %s)", opts.algo.upper(), target, f"step {start}" if ckpt else start_dir, run_dir)
    seed_all(opts.seed)
    trainer_cls = GRPOTrainer if opts.algo == "grpo" else RLOOTrainer
    trainer = trainer_cls(
        model=AutoModelForCausalLM.from_pretrained(start_dir, dtype="float32"),
        reward_funcs=[make_reward_fn(opts.reward), make_reward_fn("binary")],
        args=_config(run_dir, target, device, opts),
        train_dataset=prompts,
        processing_class=load_tokenizer(start_dir, padding_side="left"),
        callbacks=[_MarkComplete()],
    )
    trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)


def train_rl(start_dir: str, prompts_path: str, keep_steps: list[int], out_dirs: list[str], table_path: str,
             run_root: str, opts: RLOptions) -> None:
    """Train one fork to max(keep_steps) (resuming), export each kept step, write its table."""
    if len(keep_steps) != len(out_dirs):
        raise ValueError(f"{len(keep_steps)} kept steps but {len(out_dirs)} output folders")
    set_threads(opts.threads)
    device = resolve_device(opts.device)
    prompts = load_prompts(prompts_path)
    with open_run(run_root, run_key(start_dir, prompts_path, opts, device)) as run_dir:
        _train_to(max(keep_steps), start_dir, prompts, run_dir, device, opts)
        for k in sorted(keep_steps):  # a step saved under another save_every: retrain that span
            if k not in complete_checkpoints(run_dir):
                _train_to(k, start_dir, prompts, run_dir, device, opts)
        ckpts = complete_checkpoints(run_dir)
        tok = load_tokenizer(start_dir)
        for k, out in zip(keep_steps, out_dirs):
            with atomic_path(out, is_dir=True) as tmp:
                AutoModelForCausalLM.from_pretrained(str(ckpts[k]), dtype="float32").save_pretrained(str(tmp))
                tok.save_pretrained(str(tmp))
        history = json.loads((ckpts[max(keep_steps)] / "trainer_state.json").read_text())["log_history"]
    write_csv(table_path, rl_frame(history, opts.reward))


def rl_frame(history: list[dict], reward_kind: str) -> pd.DataFrame:
    """step, reward_mean, reward_std, success_rate, kl, completion_length from the log history."""
    rows = []
    for e in history:
        if "reward" not in e:
            continue
        rows.append(
            {
                "step": int(e["step"]),
                "reward_mean": e.get(f"rewards/gp_{reward_kind}_reward/mean"),
                "reward_std": e.get(f"rewards/gp_{reward_kind}_reward/std"),
                "success_rate": e.get("rewards/gp_binary_reward/mean"),
                "kl": e.get("kl"),
                "completion_length": e.get("completions/mean_length"),
                "loss": e.get("loss"),
            }
        )
    return pd.DataFrame(rows, columns=["step", "reward_mean", "reward_std", "success_rate", "kl", "completion_length", "loss"])
