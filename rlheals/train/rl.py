"""RL forks with trl: GRPO (default) or RLOO from one start checkpoint, rewarded by the verifier.

One fork = one (algorithm, start checkpoint) run on the RL prompt set (ID rule). With
`attempts: 1` a completion is one reply and the reward is the task verifier's
(`verifier.make_reward_fn`: the paper's +5/+1/-1/-2/-3 table or binary); a second,
zero-weight binary reward is logged so the table has the success rate. With `attempts`
> 1 (GRPO only) a completion is a whole multi-turn episode played by trl's `rollout_func`
(`rlheals.train.rollout`): reply, the verifier's feedback, reply ... as evaluation does,
the feedback tokens masked out of the loss by the rollout's `env_mask`, and the reward is
the episode's discounted return over its attempts (`gamma`). Checkpoints (full trainer
state) are saved every `save_every` steps under a run folder named by what decides the
run, marked complete when written, and resumed from after an interruption; each kept
step is exported as an HF folder.

PPO with a value head (the paper's algorithm) is `rlheals.train.ppo`; trl 1.16 has none.
trl 1.16's RLOOTrainer has no `rollout_func`, so multi-turn RLOO is not offered.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
from datasets import Dataset
from transformers import AutoModelForCausalLM, TrainerCallback

from rlheals.atomic import atomic_path, read_jsonl, write_csv
from rlheals.train import preempt
from rlheals.train.models import load_tokenizer, resolve_device
from rlheals.train.sft import PruneStates, _MarkComplete
from rlheals.train.common import (
    LOG,
    ComputeOptions,
    complete_checkpoints,
    code_digest,
    compute_identity,
    dir_identity,
    file_digest,
    fingerprint,
    latest_at_most,
    open_run,
    prune_states,
    seed_all,
    set_threads,
    trainer_kwargs,
)

#: The algorithms trained with trl here (PPO is rlheals.train.ppo).
TRL_ALGORITHMS = ("grpo", "rloo")


@dataclass
class RLOptions:
    """RL settings: config section `rl` (minus the job-selecting keys) plus seed, device,
    threads (per process) and `compute`."""

    algo: str = "grpo"
    batch_size: int = 16
    num_generations: int = 8
    lr: float = 3e-5
    temperature: float = 1.0
    max_completion_length: int = 48
    beta: float = 0.0
    reward: str = "paper"
    attempts: int = 1
    gamma: float = 0.9
    vllm: bool = False  # trl generates with vLLM colocated on the training GPU (single-turn)
    save_every: int = 50
    seed: int = 0
    device: str = "auto"
    threads: int = 2
    compute: ComputeOptions = field(default_factory=ComputeOptions)

    def __post_init__(self) -> None:
        self.compute = ComputeOptions.coerce(self.compute)
        if self.algo not in TRL_ALGORITHMS:
            raise ValueError(
                f"rl algorithm '{self.algo}': expected one of {', '.join(TRL_ALGORITHMS)} here "
                "(ppo is rlheals.train.ppo)"
            )
        if self.attempts < 1:
            raise ValueError(f"rl.attempts must be >= 1, got {self.attempts}")
        if self.attempts > 1 and self.algo != "grpo":
            raise ValueError(
                f"rl.attempts {self.attempts} with {self.algo}: multi-turn episodes need trl's rollout_func, "
                "which only GRPOTrainer has in trl 1.16 (use grpo or ppo, or rl.attempts: 1)"
            )
        if self.vllm and self.attempts > 1:
            raise ValueError(f"rl.vllm with rl.attempts {self.attempts}: multi-turn episodes are played by our "
                             "rollout with transformers' generate; vLLM serves single-turn runs (rl.attempts: 1)")
        if self.batch_size % self.num_generations:
            raise ValueError(f"rl.batch_size ({self.batch_size}) must be divisible by rl.num_generations ({self.num_generations})")
        self.compute.per_device_batch(self.batch_size, "rl.batch_size")

    def run_key(self) -> dict:
        """What decides the trajectory (not how often it is saved, nor where it runs).
        Single-turn runs keep the key they had before attempts/gamma existed."""
        drop = ({"device", "threads", "save_every", "compute"} | ({"attempts", "gamma"} if self.attempts == 1 else set())
                | (set() if self.vllm else {"vllm"}))
        return {k: v for k, v in asdict(self).items() if k not in drop}


class _StepTimer(TrainerCallback):
    """Adds each step's wall time (generation, rewards and update) to its log entry."""

    def __init__(self) -> None:
        self.start, self.last = 0.0, None

    def on_step_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.last = time.perf_counter() - self.start

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.log_history and "reward" in state.log_history[-1] and self.last is not None:
            state.log_history[-1]["step_time"] = round(self.last, 4)


def load_prompts(path: str) -> Dataset:
    rows = read_jsonl(path)
    if not rows or any(k not in rows[0] for k in ("prompt", "cards", "rule")):
        raise ValueError(f"{path}: expected records with 'prompt', 'cards' and 'rule'")
    return Dataset.from_list([{"prompt": r["prompt"], "cards": r["cards"], "rule": r["rule"]} for r in rows])


def _config(run_dir: Path, max_steps: int, device: str, opts: RLOptions):
    from trl import GRPOConfig, RLOOConfig

    multi = opts.attempts > 1

    common = dict(
        output_dir=str(run_dir),
        max_steps=max_steps,
        per_device_train_batch_size=opts.compute.per_device_batch(opts.batch_size, "rl.batch_size"),
        num_generations=opts.num_generations,
        max_completion_length=opts.max_completion_length,
        temperature=opts.temperature,
        learning_rate=opts.lr,
        lr_scheduler_type="constant",
        beta=opts.beta,
        reward_weights=[1.0, 0.0, 0.0] if multi else [1.0, 0.0],
        **trainer_kwargs(opts.seed, opts.save_every, device, opts.compute),
    )
    if opts.vllm:  # trl's own generation through a vLLM engine beside the trainer, on its GPU
        common.update(use_vllm=True, vllm_mode="colocate")
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
        "compute": compute_identity(device, opts.compute),
    }


def run_dir_for(start_dir: str, prompts: str, run_root: str, opts: RLOptions) -> Path:
    """The fork's run folder (a path only; `open_run` creates it under its lock)."""
    return Path(run_root) / fingerprint(run_key(start_dir, prompts, opts, resolve_device(opts.device)))


class _ExportKept(TrainerCallback):
    """Export a kept step as soon as its state is complete (before `PruneStates` may
    delete it), in the first process; `keep` maps step -> output folder."""

    def __init__(self, keep: dict[int, str], start_dir: str):
        self.keep, self.start_dir = keep, start_dir

    def on_save(self, args, state, control, **kwargs):
        out = self.keep.get(state.global_step)
        ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if out and state.is_world_process_zero and ckpt.is_dir():
            export_state(ckpt, out, self.start_dir)
        return control


def export_state(ckpt: Path, out: str, start_dir: str) -> None:
    """A saved state's policy as a plain HF folder (with the start model's tokenizer)."""
    with atomic_path(out, is_dir=True) as tmp:
        AutoModelForCausalLM.from_pretrained(str(ckpt), dtype="float32").save_pretrained(str(tmp))
        load_tokenizer(start_dir).save_pretrained(str(tmp))


def _train_to(target: int, start_dir: str, prompts: Dataset, run_dir: Path, device: str, opts: RLOptions,
              keep: dict[int, str] | None = None) -> None:
    from trl import GRPOTrainer, RLOOTrainer

    from rlheals.task.verifier import make_reward_fn

    start, ckpt = latest_at_most(run_dir, target)
    if start == target:
        return
    LOG.info("%s to step %d from %s (run %s)", opts.algo.upper(), target, f"step {start}" if ckpt else start_dir, run_dir)
    seed_all(opts.seed)
    trainer_cls = GRPOTrainer if opts.algo == "grpo" else RLOOTrainer
    extra: dict = {}
    if opts.attempts > 1:
        from rlheals.train.rollout import EpisodeOptions, episode_reward_fns, make_trl_rollout, prompt_key

        style = "compact" if isinstance(prompts[0]["prompt"], str) else "chat"
        episode = EpisodeOptions(attempts=opts.attempts, style=style, temperature=opts.temperature,
                                 max_new_tokens=opts.max_completion_length, reward=opts.reward, gamma=opts.gamma,
                                 batch_size=opts.batch_size)
        hands = {prompt_key(r["prompt"]): (r["cards"], r["rule"]) for r in prompts}
        extra["rollout_func"] = make_trl_rollout(hands, episode)
        reward_funcs = episode_reward_fns(opts.reward)
    else:
        reward_funcs = [make_reward_fn(opts.reward), make_reward_fn("binary")]
    stop = preempt.trainer_callback()
    trainer = trainer_cls(
        model=AutoModelForCausalLM.from_pretrained(start_dir, dtype="float32"),
        reward_funcs=reward_funcs,
        args=_config(run_dir, target, device, opts),
        train_dataset=prompts,
        processing_class=load_tokenizer(start_dir, padding_side="left"),
        callbacks=[_StepTimer(), _MarkComplete(), _ExportKept(keep or {}, start_dir),
                   PruneStates(opts.compute.save_total_limit), stop],
        **extra,
    )
    trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
    if stop.stopped_at is not None and stop.stopped_at < target:
        raise preempt.Stopped(opts.algo.upper(), stop.stopped_at, run_dir)


def train_rl(start_dir: str, prompts_path: str, keep_steps: list[int], out_dirs: list[str], table_path: str,
             run_root: str, opts: RLOptions) -> None:
    """Train one fork to max(keep_steps) (resuming), export each kept step, write its table.

    Each kept step is exported when its state is saved (`_ExportKept`), so
    compute.save_total_limit may delete states as training goes; a kept step whose
    export is missing and whose state is gone is trained again (deterministically: same
    numbers). With compute.processes > 1 the training runs in that many processes
    (`rlheals.train.launch`) while this process holds the run's lock.
    """
    from rlheals.train.launch import in_worker, launch

    if len(keep_steps) != len(out_dirs):
        raise ValueError(f"{len(keep_steps)} kept steps but {len(out_dirs)} output folders")
    set_threads(opts.threads)
    device = resolve_device(opts.device)
    keep = {int(k): str(o) for k, o in zip(keep_steps, out_dirs)}
    with open_run(run_root, run_key(start_dir, prompts_path, opts, device)) as run_dir:
        if in_worker():
            _train_to(max(keep_steps), start_dir, load_prompts(prompts_path), run_dir, device, opts, keep)
            return
        exported: set[int] = set()

        def train(to: int) -> None:
            """Train to `to`; the kept steps saved meanwhile are exported as they are saved."""
            todo = {k: o for k, o in keep.items() if k <= to and k not in exported}
            began = time.time()
            if opts.compute.processes > 1:
                launch("rlheals.train.rl:train_rl", [start_dir, prompts_path, list(todo), list(todo.values()),
                                                      table_path, run_root], opts, run_dir,
                       opts.compute.processes, opts.threads)
            else:
                _train_to(to, start_dir, load_prompts(prompts_path), run_dir, device, opts, todo)
            exported.update(k for k in todo if Path(keep[k]).is_dir() and Path(keep[k]).stat().st_mtime >= began - 1)

        train(max(keep_steps))
        for k in sorted(keep_steps):
            if k in exported:
                continue
            if k not in complete_checkpoints(run_dir):  # saved under another save_every, or pruned
                train(k)
            if k not in exported:
                export_state(complete_checkpoints(run_dir)[k], keep[k], start_dir)
                exported.add(k)
        ckpts = complete_checkpoints(run_dir)
        if max(keep_steps) not in ckpts:
            raise RuntimeError(f"no complete state at RL step {max(keep_steps)} in {run_dir} for the reward table")
        history = json.loads((ckpts[max(keep_steps)] / "trainer_state.json").read_text())["log_history"]
        prune_states(run_dir, opts.compute.save_total_limit, keep=max(keep_steps))
    write_csv(table_path, rl_frame(history, opts.reward))


#: Columns of an RL fork's table (results/tables/rl/<algo>-<step>.csv), shared with PPO.
RL_COLUMNS = ["step", "reward_mean", "reward_std", "success_rate", "success_rate_at_1", "attempts_mean", "kl",
              "completion_length", "loss", "step_time"]


def rl_frame(history: list[dict], reward_kind: str) -> pd.DataFrame:
    """One row per step from the trainer's log history.

    reward_mean/std: the reward trained on (one reply's reward, or a multi-turn episode's
    return); success_rate: solved within the attempts; success_rate_at_1: at the first
    attempt (the same single-turn); completion_length: the model's tokens per completion.
    step_time: wall seconds of that optimizer step (rollout included).
    """
    rows = []
    for e in history:
        if "reward" not in e:
            continue
        multi = f"rewards/gp_{reward_kind}_return/mean" in e
        name = f"gp_{reward_kind}_return" if multi else f"gp_{reward_kind}_reward"
        success = e.get("rewards/gp_binary_reward/mean")
        rows.append(
            {
                "step": int(e["step"]),
                "reward_mean": e.get(f"rewards/{name}/mean"),
                "reward_std": e.get(f"rewards/{name}/std"),
                "success_rate": success,
                "success_rate_at_1": e.get("rewards/gp_first_attempt_reward/mean") if multi else success,
                "attempts_mean": e.get("episode/attempts_mean") if multi else 1.0,
                "kl": e.get("kl"),
                "completion_length": e.get("completions/mean_length"),
                "loss": e.get("loss"),
                "step_time": e.get("step_time"),
            }
        )
    return pd.DataFrame(rows, columns=RL_COLUMNS)
