"""Crash-safe outputs: data reaches the disk before the rename, a replaced folder is never
missing or half there, and the leftovers of killed writers go away (a live writer's stay).

The kill -9 tests start a real writer process and kill it at seeded random moments over
its whole run; after every kill the output must be absent or complete, never half.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rlheals import atomic

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
N_FILES = 120


# ------------------------------------------------------------------ fsync before rename
def _trace(monkeypatch) -> list[tuple[str, str]]:
    events: list[tuple[str, str]] = []
    real_fsync, real_replace, real_rename = os.fsync, os.replace, os.rename

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(a, b, *args, **kw):
        events.append(("rename", f"{a} -> {b}"))
        return real_replace(a, b, *args, **kw)

    def rename(a, b, *args, **kw):
        events.append(("rename", f"{a} -> {b}"))
        return real_rename(a, b, *args, **kw)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "rename", rename)
    return events


def test_a_file_and_its_folder_are_fsynced_around_the_rename(tmp_path, monkeypatch):
    events = _trace(monkeypatch)
    atomic.write_text(tmp_path / "out.csv", "a,b\n")
    renames = [i for i, (kind, _) in enumerate(events) if kind == "rename" and "out.csv" in events[i][1]]
    assert renames, events
    last = renames[-1]
    before = [p for kind, p in events[:last] if kind == "fsync"]
    after = [p for kind, p in events[last:] if kind == "fsync"]
    assert any(".tmp-out.csv" in p for p in before), f"the temporary file was not fsynced before the rename: {events}"
    assert str(tmp_path) in after, f"the folder was not fsynced after the rename: {events}"


def test_every_file_of_a_folder_output_is_fsynced_before_the_rename(tmp_path, monkeypatch):
    events = _trace(monkeypatch)
    with atomic.atomic_path(tmp_path / "model", is_dir=True) as tmp:
        (tmp / "sub").mkdir()
        (tmp / "config.json").write_text("{}")
        (tmp / "sub" / "weights.bin").write_bytes(b"x" * 100)
    last = max(i for i, (kind, p) in enumerate(events) if kind == "rename" and p.endswith(str(tmp_path / "model")))
    synced = {Path(p).name for kind, p in events[:last] if kind == "fsync"}
    assert {"config.json", "weights.bin"} <= synced, events
    assert str(tmp_path) in [p for kind, p in events[last:] if kind == "fsync"], events


# ------------------------------------------------------------------ kill -9 at random moments
DIR_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from rlheals.atomic import atomic_path
    final, n, tag = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    with atomic_path(final, is_dir=True) as tmp:
        for i in range(n):
            (tmp / f"part-{i:04d}").write_text(tag * 200)
        (tmp / "DONE").write_text(tag)
    """
)


def _make_old(final: Path) -> None:
    final.mkdir(parents=True)
    for i in range(N_FILES):
        (final / f"part-{i:04d}").write_text("o" * 200)
    (final / "DONE").write_text("o")


def _state(final: Path) -> str | None:
    """'old', 'new', None (absent); anything else means a half folder under the final name."""
    if not final.exists():
        return None
    names = sorted(p.name for p in final.iterdir())
    want = sorted([f"part-{i:04d}" for i in range(N_FILES)] + ["DONE"])
    if names != want:
        return f"half: {len(names)} of {len(want)} entries"
    tags = {p.read_text()[:1] for p in final.iterdir()}
    return {"o": "old", "n": "new"}.get(tags.pop(), "mixed") if len(tags) == 1 else f"mixed: {tags}"


def _run_killed(cmd: list[str], delay: float) -> bool:
    """Run `cmd`, kill -9 it after `delay` s; True when it was killed before it ended."""
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    killed = proc.poll() is None
    proc.kill()
    proc.wait()
    return killed


def test_a_folder_replaced_under_kill_9_is_old_or_new_never_half_or_missing(tmp_path):
    final = tmp_path / "results" / "models" / "sft-10"
    cmd = [sys.executable, "-c", DIR_WRITER, str(final), str(N_FILES), "n"]
    _make_old(final)
    t0 = time.time()
    assert subprocess.run(cmd, env=ENV).returncode == 0
    full = time.time() - t0
    assert _state(final) == "new"
    rng = random.Random(1234)
    seen, kills = [], 0
    for trial in range(16):
        import shutil

        shutil.rmtree(final.parent)
        _make_old(final)
        kills += _run_killed(cmd, rng.uniform(0.3, 1.05) * full)
        state = _state(final)
        assert state in ("old", "new", None), f"trial {trial}: {state} under the final name"
        if trial >= 8:  # the later kills: the next job starts and recovers, then the check
            atomic.sweep(final.parent)
            state = _state(final)
            assert state in ("old", "new"), f"trial {trial}: after recovery the folder is {state}"
            left = [p.name for p in final.parent.iterdir() if p.name != final.name]
            assert left == [], f"trial {trial}: leftovers after recovery: {left}"
        seen.append(state)
    print(f"\nfull write {full:.2f} s; {kills}/16 killed mid-run; states: "
          f"{seen.count('old')} old, {seen.count('new')} new, {seen.count(None)} between the renames")
    assert kills >= 6


FILE_WRITER = textwrap.dedent(
    """
    import sys
    from rlheals.atomic import write_jsonl
    write_jsonl(sys.argv[1], ({"i": i, "pad": "x" * 100} for i in range(int(sys.argv[2]))))
    """
)


def test_a_large_file_killed_at_random_moments_is_absent_or_complete(tmp_path):
    final = tmp_path / "replies.jsonl"
    n = 200_000
    cmd = [sys.executable, "-c", FILE_WRITER, str(final), str(n)]
    t0 = time.time()
    assert subprocess.run(cmd, env=ENV).returncode == 0
    full = time.time() - t0
    digest = hashlib.sha256(final.read_bytes()).hexdigest()
    rng = random.Random(99)
    for trial in range(12):
        final.unlink()
        _run_killed(cmd, rng.uniform(0.1, 1.05) * full)
        if final.exists():
            assert hashlib.sha256(final.read_bytes()).hexdigest() == digest, f"trial {trial}: half file"
        atomic.sweep(tmp_path)
        assert [p.name for p in tmp_path.iterdir() if p.name != final.name] == []
        if not final.exists():
            assert subprocess.run(cmd, env=ENV).returncode == 0
    assert len(atomic.read_jsonl(final)) == n


# ------------------------------------------------------------------ stale temporaries
SLOW_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from rlheals.atomic import atomic_path
    with atomic_path(sys.argv[1], is_dir=True) as tmp:
        (tmp / "w").write_text("x")
        print("writing", flush=True)
        sys.stdin.readline()
    """
)


def test_stale_temporaries_go_at_the_next_write_but_a_live_writers_stay(tmp_path):
    models = tmp_path / "models"
    # a killed writer's leftovers
    dead = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(models / "sft-10")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=ENV)
    assert dead.stdout.readline().strip() == "writing"
    dead.send_signal(signal.SIGKILL)
    dead.wait()
    assert any(p.name.startswith(".tmp-sft-10-") for p in models.iterdir())
    # a live writer of another output in the same folder
    live = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(models / "sft-20")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert live.stdout.readline().strip() == "writing"
        atomic.write_text(models / "note.txt", "x")  # a new job writes here
        names = sorted(p.name for p in models.iterdir())
        assert not any(n.startswith(".tmp-sft-10-") for n in names), f"stale temporaries kept: {names}"
        assert any(n.startswith(".tmp-sft-20-") for n in names), f"a live writer's temporary was removed: {names}"
        live.stdin.write("\n")
        live.stdin.flush()
        assert live.wait(30) == 0
    finally:
        live.kill()
    assert (models / "sft-20" / "w").read_text() == "x"
    assert sorted(p.name for p in models.iterdir()) == ["note.txt", "sft-20"]
