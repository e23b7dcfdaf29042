"""Run one training call in several processes through `accelerate launch`.

A training function (`train_sft`, `train_rl`) called with `compute.processes` > 1 in an
ordinary process takes its run folder's lock, then calls `launch`: the call (function,
arguments, options) is written to a JSON job file and `accelerate launch --multi_gpu
--num_processes N -m rlheals.train.launch <job>` starts N copies of it (accelerate's
torchrun launcher: one process per GPU, or N CPU processes that join a gloo process
group; `--cpu` would start a single process). Each copy calls the same function; the
Trainer sees WORLD_SIZE and trains data-parallel (DDP, or FSDP when configured). The
copies find their run folder by the same trajectory key and do not wait for its lock:
the launching process holds it for them (`LOCK_HELD_ENV`). So the rules stay thin
(`script:` entry points, unchanged) and one code path trains 1 or N processes.
"""
from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rlheals.train import preempt
from rlheals.train.common import LOCK_HELD_ENV, LOG, setup_logging

#: Set in every launched process (the training functions then train instead of launching).
WORKER_ENV = "RLHEALS_LAUNCHED"


def in_worker() -> bool:
    """True inside a process started by `launch`."""
    return os.environ.get(WORKER_ENV) == "1"


def _free_port() -> int:
    """A free TCP port for the process group's rendezvous (several jobs may launch at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch_command(job_file: str | os.PathLike, processes: int, port: int) -> list[str]:
    """The `accelerate launch` command line of a job (precision and sharding come from the
    TrainingArguments the job builds, so accelerate's own are off)."""
    return [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_ip", "127.0.0.1", "--main_process_port", str(port),
        "-m", "rlheals.train.launch", str(job_file),
    ]


def launch(function: str, args: list[Any], opts: Any, run_dir: Path, processes: int, threads: int) -> None:
    """Call `function` ("module:name") with (*args, opts) in `processes` processes and wait.

    `run_dir` is the run folder whose lock the caller holds; `threads` CPU threads per
    process. Raises RuntimeError (with the exit status) when a process fails.
    """
    job = {"function": function, "args": args, "opts_class": f"{type(opts).__module__}:{type(opts).__name__}",
           "opts": asdict(opts)}
    run_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix=".launch-", dir=run_dir, delete=False) as fh:
        json.dump(job, fh, default=str)
        job_file = fh.name
    env = {**os.environ, WORKER_ENV: "1", LOCK_HELD_ENV: str(run_dir), "OMP_NUM_THREADS": str(threads),
           "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": os.pathsep.join(
               p for p in [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")] if p)}
    cmd = launch_command(job_file, processes, _free_port())
    LOG.info("launching %d training processes: %s", processes, " ".join(cmd))
    out = sys.stdout if _has_fileno(sys.stdout) else None  # the job's log file (setup_logging)
    preempt.install()
    try:
        # Its own session, so that a stop signal reaches it once, from here: the signal is
        # forwarded as SIGTERM (torchrun's agent passes SIGTERM on to the workers; its
        # default action on SIGUSR1 would end it before they save).
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT if out else None,
                                start_new_session=True)
        forwarded = False
        while proc.poll() is None:
            if preempt.received() and not forwarded:
                LOG.warning("forwarding the stop signal to the %d training processes", processes)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                forwarded = True
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.5)
    finally:
        Path(job_file).unlink(missing_ok=True)
    if proc.returncode != 0 and preempt.received():
        from rlheals.train.common import complete_checkpoints

        saved = max(complete_checkpoints(run_dir), default=0)
        raise preempt.Stopped(f"{function} in {processes} processes", saved, run_dir)
    if proc.returncode != 0:
        raise RuntimeError(f"{function} in {processes} processes failed (exit status {proc.returncode}); "
                           "see the log above for the failing process")


def _has_fileno(stream) -> bool:
    try:
        stream.fileno()
        return True
    except (AttributeError, OSError, ValueError):
        return False


def _load(ref: str):
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str]) -> None:
    """Entry point of a launched process: run the job file's call."""
    if len(argv) != 1:
        raise SystemExit("usage: python -m rlheals.train.launch JOB.json (started by accelerate launch)")
    setup_logging(None)
    job = json.loads(Path(argv[0]).read_text())
    opts = _load(job["opts_class"])(**job["opts"])
    _load(job["function"])(*job["args"], opts)


if __name__ == "__main__":
    main(sys.argv[1:])
