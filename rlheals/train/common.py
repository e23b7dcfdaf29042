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
import shutil
import sys
from dataclasses import dataclass
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


#: Set in the processes `rlheals.train.launch` starts: the run folder whose lock the
#: launching process holds for them (they must not wait for it themselves).
LOCK_HELD_ENV = "RLHEALS_RUN_LOCK_HELD"
DISTRIBUTED = ("ddp", "fsdp", "deepspeed")
FSDP_SHARDING = ("full_shard", "shard_grad_op", "hybrid_shard", "no_shard")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
_DTYPE_NAMES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


@dataclass
class ComputeOptions:
    """How a training job runs (config section `compute`, minus device and threads): how
    many processes (`accelerate launch` when more than one), DDP or FSDP, gradient
    checkpointing and accumulation, mixed precision, and how many full states to keep.
    The global batch is always the config's: each process takes batch / (processes x
    grad_accumulation) examples per micro-step."""

    processes: int = 1
    distributed: str = "ddp"
    fsdp_sharding: str = "full_shard"
    gradient_checkpointing: bool = False
    grad_accumulation: int = 1
    mixed_precision: str = "auto"
    save_total_limit: int | None = None

    def __post_init__(self) -> None:
        for name in ("processes", "grad_accumulation"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"compute.{name} must be >= 1, got {getattr(self, name)}")
        if self.save_total_limit is not None and int(self.save_total_limit) < 1:
            raise ValueError(f"compute.save_total_limit must be >= 1 or null (keep all), got {self.save_total_limit}")
        for name, allowed in (("distributed", DISTRIBUTED), ("fsdp_sharding", FSDP_SHARDING),
                              ("mixed_precision", PRECISIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"compute.{name} '{getattr(self, name)}': expected one of {', '.join(allowed)}")
        if self.distributed == "deepspeed":
            raise ValueError(deepspeed_unavailable())

    @classmethod
    def coerce(cls, value: "ComputeOptions | dict | None") -> "ComputeOptions":
        """From the config's `compute` section (extra keys such as device are ignored)."""
        if isinstance(value, cls):
            return value
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in (value or {}).items() if k in names})

    def per_device_batch(self, batch: int, key: str) -> int:
        """Examples one process takes per micro-step so that a step still sees `batch`."""
        split = self.processes * self.grad_accumulation
        if batch % split:
            raise ValueError(
                f"config key '{key}': {batch} is not divisible by compute.processes x compute.grad_accumulation "
                f"({self.processes} x {self.grad_accumulation} = {split}); the global batch stays {key}, so it must split evenly"
            )
        return batch // split

    def identity(self) -> dict:
        """The parts that change a trajectory's numbers (the split of the batch and the
        sharding); gradient checkpointing recomputes the same values and the number of
        kept states changes nothing, so neither is here."""
        out = {"grad_accumulation": self.grad_accumulation, "distributed": self.distributed}
        if self.distributed == "fsdp":
            out["fsdp_sharding"] = self.fsdp_sharding
        return out


def deepspeed_unavailable() -> str:
    """Why compute.distributed deepspeed is refused (the message names the key)."""
    from rlheals.config import DEEPSPEED_UNAVAILABLE

    return DEEPSPEED_UNAVAILABLE


def bf16_supported() -> bool:
    try:
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    except (RuntimeError, AssertionError, AttributeError):
        return False


def resolve_precision(device: str, requested: str = "auto") -> str:
    """The training precision, bf16, fp16 or fp32, for `compute.mixed_precision` on `device`:
    fp32 on the CPU (bf16 is ~10x slower there without bf16 units); on CUDA bf16 where the
    GPU supports it, else (auto) fp16 with loss scaling, said in the log."""
    if requested not in PRECISIONS:
        raise ValueError(f"compute.mixed_precision '{requested}': expected one of {', '.join(PRECISIONS)}")
    if not device.startswith("cuda"):
        if requested in ("bf16", "fp16"):
            raise ValueError(
                f"config key 'compute.mixed_precision': {requested} requested but training runs on the CPU, "
                "where rlheals trains in fp32 (use auto or fp32)"
            )
        return "fp32"
    if requested == "auto":
        if bf16_supported():
            return "bf16"
        LOG.warning("compute.mixed_precision auto: this GPU has no bf16 support; training in fp16 (with loss scaling)")
        return "fp16"
    if requested == "bf16" and not bf16_supported():
        raise ValueError(
            "config key 'compute.mixed_precision': bf16 requested but this GPU does not support bf16 "
            "(use auto, which falls back to fp16, or fp16 or fp32)"
        )
    return requested


def world_size(compute: ComputeOptions | None = None) -> int:
    """The number of training processes: WORLD_SIZE inside a launched process, else the
    configured compute.processes (the launching process keys the run like its workers)."""
    env = os.environ.get("WORLD_SIZE")
    if env:
        return int(env)
    return compute.processes if compute is not None else 1


def compute_identity(device: str, compute: ComputeOptions | None = None) -> dict:
    """What about the machine changes a trajectory's numbers: the device type, the
    training precision (see `resolve_precision`), the number of processes (WORLD_SIZE,
    or compute.processes in the process that launches them), the GPUs one process sees,
    and how the batch is split and sharded (`ComputeOptions.identity`)."""
    kind = device.split(":")[0]
    cuda = kind == "cuda"
    compute = compute or ComputeOptions()
    return {
        "device": kind,
        "dtype": _DTYPE_NAMES[resolve_precision(kind, compute.mixed_precision)],
        "processes": world_size(compute),
        "gpus": torch.cuda.device_count() if cuda else 0,
        **compute.identity(),
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
    held = os.environ.get(LOCK_HELD_ENV)
    if held:  # a process launched by rlheals.train.launch: its launcher holds the lock
        if Path(held).resolve() != run_dir.resolve():
            raise RuntimeError(f"this training process keys its run as {run_dir}, but its launcher locked {held}")
        yield run_dir
        return
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


def precision_kwargs(device: str, precision: str = "fp32") -> dict:
    """TrainingArguments for the device and the resolved precision (`resolve_precision`)."""
    if device.startswith("cuda"):
        return {"use_cpu": False, "bf16": precision == "bf16", "fp16": precision == "fp16"}
    return {"use_cpu": True, "bf16": False, "fp16": False}


def trainer_kwargs(seed: int, save_every: int, device: str, compute: ComputeOptions | None = None) -> dict:
    """TrainingArguments shared by SFT and RL: per-step logs, full states every
    `save_every` steps (the resume points), seeded data order, no progress bars in logs,
    and the `compute` settings: accumulation, gradient checkpointing, precision, the
    process group's backend (gloo on CPU) and FSDP. The Trainer's own save_total_limit
    stays off: `PruneStates` prunes (it counts only complete states and never deletes the
    state just written)."""
    compute = compute or ComputeOptions()
    kw = dict(
        logging_steps=1,
        save_strategy="steps",
        save_steps=save_every,
        seed=seed,
        data_seed=seed,
        gradient_accumulation_steps=compute.grad_accumulation,
        gradient_checkpointing=compute.gradient_checkpointing,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        **precision_kwargs(device, resolve_precision(device, compute.mixed_precision)),
    )
    if compute.gradient_checkpointing:  # non-reentrant: works under DDP and FSDP
        kw["gradient_checkpointing_kwargs"] = {"use_reentrant": False}
    if world_size(compute) > 1:
        kw["ddp_backend"] = "nccl" if device.startswith("cuda") else "gloo"
        kw["ddp_find_unused_parameters"] = False
    if compute.distributed == "fsdp":
        kw["fsdp"] = f"{compute.fsdp_sharding} auto_wrap"
        kw["fsdp_config"] = {"version": 2, "state_dict_type": "FULL_STATE_DICT",
                             "activation_checkpointing": False}
    return kw


def prune_states(run_dir: Path, limit: int | None, keep: int | None = None) -> list[int]:
    """Delete the oldest complete states `checkpoint-<step>` of `run_dir` beyond the `limit`
    newest (the highest steps: the resume points of every longer job), never `keep` (the
    state just written, which a job still exports or resumes from). Incomplete folders
    are neither counted nor deleted here (a job that resumes ignores them). Returns the
    deleted steps. `limit` None keeps everything."""
    if limit is None:
        return []
    states = complete_checkpoints(run_dir)
    newest = sorted(states, reverse=True)[:limit]
    gone = [s for s in sorted(states) if s not in newest and s != keep]
    for step in gone:
        (states[step] / COMPLETE).unlink(missing_ok=True)  # incomplete first: never half-deleted yet complete
        shutil.rmtree(states[step], ignore_errors=True)
    if gone:
        LOG.info("compute.save_total_limit %d: deleted the states at steps %s in %s", limit, gone, run_dir)
    return gone
