"""Supervised fine-tuning at several lengths along one shared, resumable trajectory.

Every SFT length is a point on the same run: trl's SFTTrainer with a constant (or
warmup-constant) LR and a data order fixed by the seed, so a run stopped at step k and
continued is the run that never stopped. The full trainer state (optimizer, scheduler,
RNG) is saved every `save_every` steps under one run folder whose name hashes everything
that decides the trajectory (options without the list of lengths, the base model, the
data, the code). A job for length s takes the run's lock, resumes from the latest
complete state <= s, trains to s and exports the model. So a new length inside the
trained range costs at most `save_every` steps and a longer length continues the
longest run. Loss is on the completion only; every `eval_every` steps the loss on the
held-out ID and OOD sets (no SFT problem) and, where given, on the paper's ID test set (seen
problems included, rlheals.data.splits). Evaluation draws on no random state the training
uses, so an added evaluation set leaves the trajectory as it was (tests/train/test_sft.py).
The trainer's log history goes into the exported folder (`trainer_log.json`), from which
`sft_loss_table` builds the loss table.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
from datasets import Dataset
from transformers import AutoModelForCausalLM, TrainerCallback

from rlheals.atomic import atomic_path, read_jsonl, write_csv
from rlheals.train import preempt
from rlheals.train.models import load_tokenizer, resolve_device
from rlheals.train.common import (
    LOG,
    ComputeOptions,
    code_digest,
    compute_identity,
    dir_identity,
    file_digest,
    complete_checkpoints,
    fingerprint,
    latest_at_most,
    mark_complete,
    open_run,
    prune_states,
    seed_all,
    set_threads,
    trainer_kwargs,
)

TRAINER_LOG = "trainer_log.json"


@dataclass
class SFTOptions:
    """SFT settings: config section `sft` (minus `steps`) plus seed, device, threads (per
    process) and `compute` (processes, accumulation, precision, kept states)."""

    batch_size: int = 32
    lr: float = 1e-4
    warmup_steps: int = 20
    lr_schedule: str = "constant_with_warmup"
    save_every: int = 50
    eval_every: int = 50
    max_length: int = 128
    seed: int = 0
    device: str = "auto"
    threads: int = 2
    eval_batch_size: int = 64
    compute: ComputeOptions = field(default_factory=ComputeOptions)

    def __post_init__(self) -> None:
        self.compute = ComputeOptions.coerce(self.compute)
        self.compute.per_device_batch(self.batch_size, "sft.batch_size")
        if self.lr_schedule not in ("constant", "constant_with_warmup"):
            raise ValueError(
                f"sft.lr_schedule '{self.lr_schedule}': expected constant or constant_with_warmup "
                "(a decaying schedule would make a longer run differ from a continued shorter one)"
            )
        for name in ("batch_size", "save_every", "eval_every", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"sft.{name} must be >= 1, got {getattr(self, name)}")

    def trajectory_key(self) -> dict:
        """The options that decide the trajectory (the device enters the key as
        `compute_identity`, with what of `compute` changes the numbers; threads do not)."""
        return {k: v for k, v in asdict(self).items() if k not in ("device", "threads", "compute")}


def load_pairs(path: str | os.PathLike) -> Dataset:
    """A prompt/completion dataset (strings or chat message lists) from a JSONL data set."""
    rows = read_jsonl(path)
    missing = [k for k in ("prompt", "completion") if rows and k not in rows[0]]
    if not rows or missing:
        raise ValueError(f"{path}: expected records with 'prompt' and 'completion' (missing {missing or 'records'})")
    return Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])


class _MarkComplete(TrainerCallback):
    """Mark a checkpoint complete once the Trainer has finished writing it: in every
    process (each writes its own RNG state), so the first process marks it after a
    barrier."""

    def on_save(self, args, state, control, **kwargs):
        if args.world_size > 1:
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                dist.barrier()
        ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and ckpt.is_dir():
            mark_complete(ckpt)
        return control


class PruneStates(TrainerCallback):
    """compute.save_total_limit: after each save, keep only the newest complete states
    (`prune_states`; the one just written always stays). Runs after `_MarkComplete`."""

    def __init__(self, limit: int | None):
        self.limit = limit

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            prune_states(Path(args.output_dir), self.limit, keep=state.global_step)
        return control


def trajectory_key(base_dir: str, data: dict[str, str], opts: SFTOptions, device: str) -> dict:
    """Everything that decides the SFT trajectory: options (not the lengths), the base
    model, the data, the code it runs and the hardware's precision and process count."""
    return {
        "opts": opts.trajectory_key(),
        "base": dir_identity(base_dir),
        "base_path": str(Path(base_dir).resolve()),
        "data": {k: file_digest(v) for k, v in sorted(data.items())},
        "code": code_digest("rlheals.train.sft"),
        "compute": compute_identity(device, opts.compute),
    }


def run_dir_for(base_dir: str, data: dict[str, str], run_root: str, opts: SFTOptions) -> Path:
    """The trajectory's run folder (a path only; `open_run` creates it under its lock)."""
    return Path(run_root) / fingerprint(trajectory_key(base_dir, data, opts, resolve_device(opts.device)))


def _config(run_dir: Path, target: int, device: str, opts: SFTOptions):
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(run_dir),
        max_steps=target,
        per_device_train_batch_size=opts.compute.per_device_batch(opts.batch_size, "sft.batch_size"),
        per_device_eval_batch_size=opts.eval_batch_size,
        learning_rate=opts.lr,
        lr_scheduler_type=opts.lr_schedule,
        warmup_steps=opts.warmup_steps,
        weight_decay=0.0,
        max_length=opts.max_length,
        eval_strategy="steps",
        eval_steps=opts.eval_every,
        **trainer_kwargs(opts.seed, opts.save_every, device, opts.compute),
    )


def train_sft(base_dir: str, data: dict[str, str], target: int, out_dir: str, run_root: str, opts: SFTOptions) -> None:
    """Export the SFT model at step `target` to `out_dir`, training only what is missing.

    `data` maps train, heldout_id, heldout_ood and (optional) test_id to JSONL files. With
    `opts.compute.processes` > 1 the training runs in that many processes
    (`rlheals.train.launch`) while this process holds the run's lock, then exports.
    The export always reads the saved state at `target` (the Trainer saves at its last
    step), so one and N processes export the same way.
    """
    from rlheals.train.launch import in_worker, launch

    set_threads(opts.threads)
    device = resolve_device(opts.device)
    with open_run(run_root, trajectory_key(base_dir, data, opts, device)) as run_dir:
        if in_worker():
            _train_to(base_dir, data, target, run_dir, device, opts)
            return
        start, ckpt = latest_at_most(run_dir, target)
        if ckpt is not None and start == target:
            LOG.info("SFT step %d already trained in %s; exporting it", target, ckpt)
        elif opts.compute.processes > 1:
            launch("rlheals.train.sft:train_sft", [base_dir, data, target, out_dir, run_root], opts, run_dir,
                   opts.compute.processes, opts.threads)
        else:
            _train_to(base_dir, data, target, run_dir, device, opts)
        ckpt = complete_checkpoints(run_dir).get(target)
        if ckpt is None:
            raise RuntimeError(f"SFT to step {target} finished without a complete state {run_dir}/checkpoint-{target}")
        model = AutoModelForCausalLM.from_pretrained(str(ckpt), dtype="float32")
        history = json.loads((ckpt / "trainer_state.json").read_text())["log_history"]
        export(model, load_tokenizer(base_dir), history, out_dir)
        prune_states(run_dir, opts.compute.save_total_limit)  # the state at target stayed for this export


def _train_to(base_dir: str, data: dict[str, str], target: int, run_dir: Path, device: str, opts: SFTOptions) -> None:
    """Train the trajectory to `target` from its latest complete state at or below it
    (in every process of a multi-process run)."""
    from trl import SFTTrainer

    start, ckpt = latest_at_most(run_dir, target)
    if ckpt is not None and start == target:
        return
    LOG.info("SFT to step %d from %s (run %s)", target, f"step {start}" if ckpt else "the base model", run_dir)
    seed_all(opts.seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype="float32")
    stop = preempt.trainer_callback()
    trainer = SFTTrainer(
        model=model,
        args=_config(run_dir, target, device, opts),
        train_dataset=load_pairs(data["train"]),
        eval_dataset=eval_sets(data),
        processing_class=load_tokenizer(base_dir, padding_side="right"),
        callbacks=[_MarkComplete(), PruneStates(opts.compute.save_total_limit), stop],
    )
    trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
    if stop.stopped_at is not None and stop.stopped_at < target:
        raise preempt.Stopped("SFT", stop.stopped_at, run_dir)


#: eval_dataset key -> loss table column (the Trainer logs eval_<key>_loss).
EVAL_COLUMNS = {"id": "heldout_id_loss", "ood": "heldout_ood_loss", "test": "test_id_loss"}
#: eval_dataset key -> `data` key of its JSONL file.
EVAL_DATA = {"id": "heldout_id", "ood": "heldout_ood", "test": "test_id"}


def eval_sets(data: dict[str, str]) -> dict[str, Dataset]:
    """The Trainer's evaluation sets: the held-out ID and OOD ones always, the paper's ID test
    set when `data` names one (runs and tests written before it existed name none)."""
    return {key: load_pairs(data[name]) for key, name in EVAL_DATA.items() if key != "test" or name in data}


def export(model, tokenizer, history: list[dict], out_dir: str) -> None:
    """Model + tokenizer + trainer log as one HF folder, written atomically."""
    with atomic_path(out_dir, is_dir=True) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        (tmp / TRAINER_LOG).write_text(json.dumps(history, indent=1) + "\n")


def loss_frame(history: list[dict]) -> pd.DataFrame:
    """step, train_loss, heldout_id_loss, heldout_ood_loss, test_id_loss from a Trainer log
    history (test_id_loss empty for a run without the test set)."""
    rows: dict[int, dict] = {}
    for entry in history:
        step = int(entry.get("step", 0))
        row = rows.setdefault(step, {"step": step})
        if "loss" in entry:
            row["train_loss"] = entry["loss"]
        for key, col in EVAL_COLUMNS.items():
            if f"eval_{key}_loss" in entry:
                row[col] = entry[f"eval_{key}_loss"]
    cols = ["step", "train_loss", *EVAL_COLUMNS.values()]
    frame = pd.DataFrame(sorted(rows.values(), key=lambda r: r["step"]), columns=cols)
    return frame[frame[cols[1:]].notna().any(axis=1)].reset_index(drop=True)


def sft_loss_table(model_dirs: list[str], table_path: str) -> None:
    """Loss table from the longest SFT checkpoint's log (it holds the whole trajectory)."""
    longest = max(model_dirs, key=lambda d: max((e.get("step", 0) for e in _history(d)), default=0))
    write_csv(table_path, loss_frame(_history(longest)))


def _history(model_dir: str) -> list[dict]:
    path = Path(model_dir) / TRAINER_LOG
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trainer log (was this folder written by the sft rule?)")
    return json.loads(path.read_text())
