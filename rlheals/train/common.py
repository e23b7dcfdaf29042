"""Small pieces every training stage shares: threads, seeds, logging, resumable run
folders keyed by what determines the run, a lock per run, and complete-state markers."""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import random
import re
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

#: Written last into a saved training state; a state without it is incomplete.
COMPLETE = "COMPLETE"
LOG = logging.getLogger("rlheals")


def setup_logging(log_file: str | os.PathLike | None = None) -> None:
    """Send the library's and transformers' logs (and stray prints) to `log_file`."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        stream = open(log_file, "a", buffering=1)
        sys.stdout = sys.stderr = stream
        handlers = [logging.StreamHandler(stream)]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", handlers=handlers, force=True)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    try:  # progress bars flood a log file; the Trainer's own log lines say enough
        import datasets
        import transformers

        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()
    except ImportError:
        pass


def set_threads(threads: int) -> None:
    """Use exactly `threads` CPU threads (torch otherwise takes every core per process)."""
    torch.set_num_threads(max(1, int(threads)))


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def fingerprint(payload: object) -> str:
    """Short stable hash of a JSON-able object (options, input identities, code)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_digest(path: str | os.PathLike) -> str:
    """Content hash of a file (data sets: small)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def code_digest(module: str) -> str:
    """Hash of all the library code `module` (dotted, ``"rlheals.train.sft"``) runs: its
    imports followed recursively (rlheals.code_fingerprint). Part of a trajectory's key,
    so editing any code that trains starts a fresh trajectory."""
    import rlheals

    return rlheals.code_fingerprint(module)


def compute_identity(device: str) -> dict:
    """What about the machine changes a trajectory's numbers: the device type, the
    training precision (float32 on CPU, bf16 on CUDA, see `precision_kwargs`), the number
    of processes (torchrun/accelerate's WORLD_SIZE) and the GPUs one process spreads its
    batches over (the Trainer's DataParallel)."""
    kind = device.split(":")[0]
    cuda = kind == "cuda"
    return {
        "device": kind,
        "dtype": "bfloat16" if cuda else "float32",
        "processes": int(os.environ.get("WORLD_SIZE", "1") or 1),
        "gpus": torch.cuda.device_count() if cuda else 0,
    }


def dir_identity(path: str | os.PathLike) -> list:
    """Cheap identity of a model directory: name, size and mtime of each file.
    A rebuilt base model (new mtime) therefore starts a fresh trajectory."""
    p = Path(path)
    return sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in p.iterdir() if f.is_file())


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Exclusive lock on a run folder: concurrent jobs on one trajectory take turns."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "w") as fh:
        LOG.info("waiting for the lock on %s", run_dir)
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def mark_complete(state_dir: Path) -> None:
    (state_dir / COMPLETE).write_text("ok\n")


def complete_checkpoints(run_dir: Path) -> dict[int, Path]:
    """{step: folder} of the Trainer checkpoints under `run_dir` that were fully written."""
    out = {}
    if not run_dir.is_dir():
        return out
    for d in run_dir.iterdir():
        m = re.fullmatch(r"checkpoint-(\d+)", d.name)
        if m and (d / COMPLETE).is_file():
            out[int(m.group(1))] = d
    return out


def latest_at_most(run_dir: Path, step: int) -> tuple[int, Path | None]:
    """The latest complete checkpoint at or before `step` (0, None when there is none)."""
    ckpts = {s: d for s, d in complete_checkpoints(run_dir).items() if s <= step}
    if not ckpts:
        return 0, None
    best = max(ckpts)
    return best, ckpts[best]


def write_run_info(run_dir: Path, info: dict) -> None:
    """Record what a run folder was made from (for people; the folder name is its hash).
    Call it under the run's lock; written atomically under a name of its own."""
    from rlheals.atomic import write_json

    path = run_dir / "run.json"
    if not path.exists():
        write_json(path, json.loads(json.dumps(info, default=str)))


def _describe(compute: dict) -> str:
    return f"{compute.get('device')}/{compute.get('dtype')}, {compute.get('processes')} process(es), {compute.get('gpus')} GPU(s)"


@contextlib.contextmanager
def open_run(run_root: str | os.PathLike, key: dict) -> Iterator[Path]:
    """The run folder of trajectory `key`, locked: everything in it (run.json, states) is
    written only while the lock is held. A trajectory with the same settings trained on
    other hardware (another `compute` entry of the key) is not resumed: this one starts
    afresh, and the log says so."""
    run_dir = Path(run_root) / fingerprint(key)
    with run_lock(run_dir):
        fresh = not (run_dir / "run.json").exists()
        write_run_info(run_dir, key)
        if fresh and "compute" in key:
            _announce_other_hardware(run_dir, key)
        yield run_dir


def _announce_other_hardware(run_dir: Path, key: dict) -> None:
    rest = {k: v for k, v in json.loads(json.dumps(key, default=str)).items() if k != "compute"}
    for other in sorted(run_dir.parent.iterdir()):
        info_file = other / "run.json"
        if other == run_dir or not info_file.is_file():
            continue
        try:
            info = json.loads(info_file.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if {k: v for k, v in info.items() if k != "compute"} == rest and info.get("compute") != key["compute"]:
            LOG.warning(
                "the trajectory in %s has the same settings but was trained on %s; this machine trains on %s, "
                "so it starts a new trajectory in %s instead of resuming that one",
                other, _describe(info.get("compute") or {}), _describe(key["compute"]), run_dir,
            )


def precision_kwargs(device: str) -> dict:
    """TrainingArguments for the device: float32 on CPU (bf16 is slow there), bf16 on CUDA."""
    if device.startswith("cuda"):
        return {"use_cpu": False, "bf16": True}
    return {"use_cpu": True, "bf16": False}


def trainer_kwargs(seed: int, save_every: int, device: str) -> dict:
    """TrainingArguments shared by SFT and RL: per-step logs, full states every
    `save_every` steps (the resume points), seeded data order, no progress bars in logs."""
    return dict(
        logging_steps=1,
        save_strategy="steps",
        save_steps=save_every,
        seed=seed,
        data_seed=seed,
        gradient_checkpointing=False,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        **precision_kwargs(device),
    )
