"""Stop on the scheduler's signal without losing work: save at the next step boundary,
then leave with a status that says "stopped, resumable".

A cluster ends jobs early all the time (the time limit, preemption, a drained node). SLURM
sends SIGTERM at the time limit (and the signal a job asks for with `--signal`, ahead of
it), then SIGKILL after a grace period. Every trainer here (pretraining, SFT, GRPO/RLOO,
PPO) calls `stop_requested` at each step boundary; when SIGTERM or SIGUSR1 has arrived,
it saves its complete state for that step (the same atomic save as its periodic ones, so
a resume from it is the run that never stopped), and raises `Stopped`. The workflow's
entry points catch it in `exit_if_stopped`: inside a SLURM job that may be requeued, the
job asks SLURM to requeue itself (same job id, same resources, no retry spent, and
Snakemake keeps waiting for it); everywhere, the process exits with `EXIT_RESUMABLE` (75,
EX_TEMPFAIL), so a plain retry resumes from the saved step.

A second signal while the state is written changes nothing: the handler only sets a
flag, and a state counts only once it is complete (`COMPLETE` written last), so even a
SIGKILL in the middle of a save leaves the previous state as the resume point.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

LOG = logging.getLogger("rlheals")

#: The signals that ask a job to save and stop (SLURM: SIGTERM at the time limit; either
#: one ahead of it with `--signal=TERM@<s>` or `--signal=USR1@<s>`).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
#: Exit status of a job that saved its state on a signal and can resume (EX_TEMPFAIL).
EXIT_RESUMABLE = 75

_state = {"signum": None, "at": None, "installed": False, "count": 0}


class Stopped(Exception):
    """Training saved its state at `step` on a stop signal and ended early."""

    def __init__(self, what: str, step: int, where: object = None):
        self.what, self.step, self.where = what, int(step), where
        super().__init__(f"{what} stopped by {signal_name()} after saving its state at step {step}"
                         + (f" ({where})" if where else "") + "; rerun to resume from there")


def _handler(signum, frame) -> None:
    _state["count"] += 1
    if _state["signum"] is None:
        _state["signum"], _state["at"] = signum, time.time()
        LOG.warning("received %s: saving the training state at the next step boundary, then stopping",
                    signal.Signals(signum).name)
    else:  # a second signal while saving: the save goes on; states are complete or not counted
        LOG.warning("received %s again; the job stops once its state is saved (a state counts only when complete)",
                    signal.Signals(signum).name)


def install() -> None:
    """Catch SIGTERM and SIGUSR1 in this process (main thread only; idempotent)."""
    if _state["installed"]:
        return
    try:
        for sig in STOP_SIGNALS:
            signal.signal(sig, _handler)
        _state["installed"] = True
    except ValueError:  # not the main thread: leave the default handlers
        LOG.debug("not in the main thread: stop signals are not caught here")


def reset() -> None:
    """Forget a received signal (tests; a process that trains again after a stop)."""
    _state.update(signum=None, at=None, count=0)


def signal_name() -> str:
    return signal.Signals(_state["signum"]).name if _state["signum"] else "a signal"


def received() -> bool:
    return _state["signum"] is not None


def stop_requested(step: int) -> bool:
    """Called by every trainer after each optimizer step (`step` = steps done): True when
    a stop signal has arrived (in any process of a multi-process run: they agree, by an
    all-reduce, so that all save the same step)."""
    flag = received()
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            import torch

            t = torch.tensor([1 if flag else 0], dtype=torch.int32)
            if dist.get_backend() == "nccl":
                t = t.cuda()
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            flag = bool(t.item())
    except (ImportError, RuntimeError):
        pass
    if flag:
        waited = time.time() - (_state["at"] or time.time())
        LOG.warning("stop requested: saving the state at step %d (%.1f s after the signal)", step, waited)
    return flag


def trainer_callback():
    """A transformers TrainerCallback that turns a stop signal into a save and a stop at
    the step boundary (SFT, GRPO, RLOO); `.stopped_at` is the saved step."""
    from transformers import TrainerCallback

    class StopOnSignal(TrainerCallback):
        def __init__(self) -> None:
            self.stopped_at: int | None = None

        def on_step_end(self, args, state, control, **kwargs):
            if stop_requested(state.global_step):
                control.should_save = True
                control.should_training_stop = True
                self.stopped_at = state.global_step
            return control

    install()
    return StopOnSignal()


def requeue_self() -> bool:
    """Ask SLURM to put this job back in the queue (same job id and resources; Snakemake's
    SLURM executor sees it pending again and keeps waiting). False when not in a SLURM job,
    when RLHEALS_NO_REQUEUE is set, or when SLURM refuses (the job then just exits 75)."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job or os.environ.get("RLHEALS_NO_REQUEUE"):
        return False
    try:
        out = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        LOG.warning("could not requeue SLURM job %s (%s); exiting %d for a retry", job, exc, EXIT_RESUMABLE)
        return False
    if out.returncode != 0:
        LOG.warning("SLURM refused to requeue job %s (%s); exiting %d for a retry", job,
                    (out.stderr or out.stdout).strip(), EXIT_RESUMABLE)
        return False
    LOG.warning("requeued SLURM job %s: it resumes from the saved state when it runs again", job)
    return True


@contextlib.contextmanager
def exit_if_stopped() -> Iterator[None]:
    """Around a training call in an entry point: on `Stopped`, requeue (in SLURM) and exit
    with EXIT_RESUMABLE instead of a traceback."""
    install()
    try:
        yield
    except Stopped as stop:
        LOG.warning("%s", stop)
        requeued = requeue_self()
        record_stop(stop, requeued)
        sys.stdout.flush()
        raise SystemExit(EXIT_RESUMABLE) from None


#: Appended in the run folder at every stop: a job's own log is rewritten when it runs
#: again, this record stays with the trajectory.
STOPS_LOG = "stops.log"


def record_stop(stop: Stopped, requeued: bool) -> None:
    """One line per stop in `<run folder>/stops.log`: when, what, the signal, the saved step,
    the delay from the signal to the save, and whether the SLURM job was requeued."""
    if stop.where is None:
        return
    where = Path(stop.where)
    folder = where if where.is_dir() else where.parent
    waited = time.time() - (_state["at"] or time.time())
    job = os.environ.get("SLURM_JOB_ID")
    line = (f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {stop.what} stopped by {signal_name()} at step {stop.step}, "
            f"state saved {waited:.1f} s after the signal; "
            + (f"SLURM job {job} requeued" if requeued else (f"SLURM job {job} not requeued" if job else "not in SLURM"))
            + f"; exit {EXIT_RESUMABLE}\n")
    try:
        with open(folder / STOPS_LOG, "a") as fh:
            fh.write(line)
    except OSError as exc:
        LOG.warning("could not record the stop in %s: %s", folder / STOPS_LOG, exc)
