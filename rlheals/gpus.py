"""Which GPUs a job may use: its own, so that parallel jobs on one machine do not share GPU 0.

Snakemake's local executor counts a `gpu` resource but assigns no device: two jobs that
each ask for one GPU on a 4-GPU box both see all four and both run on GPU 0. A job calls
`claim(n)` before it touches CUDA: it takes an exclusive lock on `n` of the machine's GPU
slots (lock files in a per-machine folder, held until the process exits, released by the
kernel even when the job is killed) and sets `CUDA_VISIBLE_DEVICES` to them, waiting
while all are taken. Where a scheduler has already chosen (SLURM sets
`CUDA_VISIBLE_DEVICES` for `--gpus`), or the job asks for none, nothing changes.

The GPUs of the machine are counted by `nvidia-smi -L` (or `RLHEALS_GPU_COUNT`, which
also lets the tests run without GPUs); the lock folder is `RLHEALS_GPU_LOCKS` or
`/tmp/rlheals-gpu-locks-<uid>`.
"""
from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)
#: Lock files this process holds (kept open: closing one releases its GPU).
_HELD: list = []


def machine_gpus() -> int:
    """GPUs on this machine (RLHEALS_GPU_COUNT, else `nvidia-smi -L`, else 0)."""
    env = os.environ.get("RLHEALS_GPU_COUNT")
    if env is not None:
        try:
            return max(0, int(env))
        except ValueError:
            raise ValueError(f"RLHEALS_GPU_COUNT={env!r}: expected a whole number of GPUs") from None
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def lock_dir() -> Path:
    return Path(os.environ.get("RLHEALS_GPU_LOCKS") or f"/tmp/rlheals-gpu-locks-{os.getuid()}")


def claim(n: int, poll_s: float = 2.0, timeout_s: float | None = None) -> list[int] | None:
    """Hold `n` free GPU slots and make only them visible; returns their indices, or None
    when nothing was done (n = 0, the scheduler already chose, or no GPU on the machine).

    Raises ValueError when the machine has fewer GPUs than asked for, TimeoutError when
    `timeout_s` passes with too few free.
    """
    if n <= 0 or os.environ.get("CUDA_VISIBLE_DEVICES") not in (None, ""):
        return None
    total = machine_gpus()
    if total == 0:
        return None
    if n > total:
        raise ValueError(f"the job asks for {n} GPUs (compute.gpus) but this machine has {total}")
    folder = lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    start, waited = time.monotonic(), False
    while True:
        got = []
        for i in range(total):
            fh = open(folder / f"gpu{i}.lock", "a+")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                continue
            got.append((i, fh))
            if len(got) == n:
                break
        if len(got) == n:
            _HELD.extend(fh for _, fh in got)
            ids = [i for i, _ in got]
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, ids))
            log.info("GPUs %s of %d claimed (CUDA_VISIBLE_DEVICES=%s)", ids, total, os.environ["CUDA_VISIBLE_DEVICES"])
            return ids
        for _, fh in got:  # all or nothing: two jobs holding half each would wait forever
            fh.close()
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TimeoutError(f"fewer than {n} of {total} GPUs free after {timeout_s:.0f} s ({folder})")
        if not waited:
            log.info("waiting for %d of %d GPUs to be free (%s)", n, total, folder)
            waited = True
        time.sleep(poll_s)


def release() -> None:
    """Give back every GPU this process holds (normally the process exit does it)."""
    while _HELD:
        _HELD.pop().close()
