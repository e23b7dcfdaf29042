"""Pretrain the tiny base model on the sub-skill corpus (rlheals.data.corpus).

A plain PyTorch loop (a Trainer adds nothing here): documents are packed into blocks of
`max_length` tokens, each step draws `batch_size` blocks from a generator seeded with
(seed, step), so the data order is a function of the step and a resumed run is exact.
LR: linear warmup, cosine decay to 10%. The full state (model, optimizer, step, loss log)
is saved atomically every `save_every` steps under the run folder and resumed from.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch

from rlheals.atomic import atomic_path, read_jsonl, write_csv
from rlheals.train import preempt
from rlheals.train.models import build_tiny_model, dtype_for, resolve_device, save_model
from rlheals.data.tokenizer import build_tokenizer
from rlheals.train.common import (
    LOG,
    code_digest,
    compute_identity,
    file_digest,
    fingerprint,
    open_run,
    seed_all,
    set_threads,
)


@dataclass
class PretrainOptions:
    """Pretraining settings (config section `pretrain`, plus seed/device/threads)."""

    steps: int = 2000
    batch_size: int = 128
    lr: float = 2e-3
    warmup_steps: int = 100
    max_length: int = 96
    seed: int = 0
    device: str = "auto"
    threads: int = 2
    save_every: int = 250
    log_every: int = 10
    eval_every: int = 100
    heldout_fraction: float = 0.02

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "max_length", "save_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"pretrain.{name} must be >= 1, got {getattr(self, name)}")


def pack(texts: list[str], tokenizer, block: int) -> torch.Tensor:
    """<bos> text <eos> for every document, concatenated and cut into blocks."""
    ids: list[int] = []
    for t in texts:
        ids.append(tokenizer.bos_token_id)
        ids.extend(tokenizer(t, add_special_tokens=False)["input_ids"])
        ids.append(tokenizer.eos_token_id)
    n = len(ids) // block
    if n < 1:
        raise ValueError(f"the corpus has {len(ids)} tokens, fewer than one block of {block}")
    return torch.tensor(ids[: n * block]).view(n, block)


def lr_at(step: int, opts: PretrainOptions) -> float:
    """Warmup then cosine decay to 10% of the peak."""
    if step < opts.warmup_steps:
        return opts.lr * (step + 1) / opts.warmup_steps
    span = max(1, opts.steps - opts.warmup_steps)
    progress = min(1.0, (step - opts.warmup_steps) / span)
    return opts.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def batch_indices(step: int, n: int, opts: PretrainOptions) -> torch.Tensor:
    g = torch.Generator().manual_seed(opts.seed * 1_000_003 + step)
    return torch.randperm(n, generator=g)[: opts.batch_size] if n >= opts.batch_size else torch.randint(
        n, (opts.batch_size,), generator=g
    )


@torch.no_grad()
def heldout_loss(model, blocks: torch.Tensor, device: str, bs: int = 64) -> float:
    model.eval()
    total = 0.0
    for i in range(0, len(blocks), bs):
        x = blocks[i : i + bs].to(device)
        total += model(input_ids=x, labels=x).loss.item() * len(x)
    model.train()
    return total / len(blocks)


def _save_state(path: Path, model, optim, step: int, log: list[dict], window: tuple[float, int] = (0.0, 0)) -> None:
    """The full state, atomically; `window` is the running loss sum and count since the
    last log row (non-zero only for a stop between log rows, so the resumed log matches)."""
    with atomic_path(path) as tmp:
        torch.save({"model": model.state_dict(), "optim": optim.state_dict(), "step": step, "log": log,
                    "window": list(window)}, tmp)


def run_key(model_cfg: dict, corpus_path: str, opts: PretrainOptions, device: str) -> dict:
    """Everything that decides the pretraining run, hardware precision and processes included."""
    return {"opts": {k: v for k, v in asdict(opts).items() if k not in ("device", "threads")},
            "model": model_cfg, "corpus": file_digest(corpus_path), "code": code_digest("rlheals.train.pretrain"),
            "compute": compute_identity(device)}


def run_dir_for(model_cfg: dict, corpus_path: str, run_root: str, opts: PretrainOptions) -> Path:
    """The run folder (a path only; `open_run` creates it under its lock)."""
    return Path(run_root) / fingerprint(run_key(model_cfg, corpus_path, opts, resolve_device(opts.device)))


def pretrain(model_cfg: dict, corpus_path: str, out_dir: str, table_path: str, run_root: str, opts: PretrainOptions) -> None:
    """Build the tiny model, pretrain it (resuming if a state exists), save it and its loss table."""
    set_threads(opts.threads)
    device = resolve_device(opts.device)
    seed_all(opts.seed)
    tok = build_tokenizer()
    texts = [r["text"] for r in read_jsonl(corpus_path)]
    blocks = pack(texts, tok, opts.max_length)
    n_held = max(1, int(len(blocks) * opts.heldout_fraction))
    held, train = blocks[:n_held], blocks[n_held:]
    with open_run(run_root, run_key(model_cfg, corpus_path, opts, device)) as run_dir:
        model = build_tiny_model(model_cfg, tok, opts.seed).to(device)
        optim = torch.optim.AdamW(model.parameters(), lr=opts.lr, betas=(0.9, 0.95), weight_decay=0.01)
        state_file = run_dir / "state.pt"
        step, log, window = 0, [], (0.0, 0)
        if state_file.is_file():
            state = torch.load(state_file, map_location=device, weights_only=False)
            model.load_state_dict(state["model"])
            optim.load_state_dict(state["optim"])
            step, log = state["step"], state["log"]
            window = tuple(state.get("window", (0.0, 0)))
            LOG.info("resuming pretraining at step %d from %s", step, state_file)
        LOG.info("pretraining %d params on %d blocks x %d tokens (%d held out), %s",
                 sum(p.numel() for p in model.parameters()), len(train), opts.max_length, n_held, device)
        _loop(model, optim, train, held, device, opts, step, log, state_file, window)
        save_model(model.to(torch.float32), tok, out_dir)
        write_csv(table_path, pd.DataFrame(log))


def _loop(model, optim, train, held, device, opts, step, log, state_file, window=(0.0, 0)) -> None:
    preempt.install()
    model.train()
    amp = torch.autocast("cuda", dtype=dtype_for(device)) if device.startswith("cuda") else torch.autocast("cpu", enabled=False)
    t0, (running, count) = time.time(), (float(window[0]), int(window[1]))
    while step < opts.steps:
        for group in optim.param_groups:
            group["lr"] = lr_at(step, opts)
        x = train[batch_indices(step, len(train), opts)].to(device)
        with amp:
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        optim.zero_grad(set_to_none=True)
        step += 1
        running, count = running + loss.item(), count + 1
        if step % opts.log_every == 0 or step == opts.steps:
            row = {"step": step, "train_loss": running / count, "lr": lr_at(step - 1, opts), "heldout_loss": float("nan")}
            if step % opts.eval_every == 0 or step == opts.steps:
                row["heldout_loss"] = heldout_loss(model, held, device)
            log.append(row)
            LOG.info("step %d/%d loss %.4f heldout %.4f lr %.2e (%.3f s/step)", step, opts.steps, row["train_loss"],
                     row["heldout_loss"], row["lr"], (time.time() - t0) / count)
            running, count, t0 = 0.0, 0, time.time()
        if step < opts.steps and preempt.stop_requested(step):
            _save_state(state_file, model, optim, step, log, (running, count))
            raise preempt.Stopped("pretraining", step, state_file)
        if step % opts.save_every == 0 and step < opts.steps:
            _save_state(state_file, model, optim, step, log)
