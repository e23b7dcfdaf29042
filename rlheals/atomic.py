"""Atomic, crash-safe outputs: a file or folder appears under its final name only when complete.

An interrupted job (kill -9, power loss, disk full) must never leave a half-written
output that looks finished to Snakemake or to a later resume. Everything is written
under a temporary name in the same folder (``.tmp-<name>-<random>``), its data and
folder are fsynced (so a power cut cannot leave a renamed but empty file), and only then
renamed into place. A folder that already exists is swapped without a moment where
neither it nor its replacement is there: the old one is renamed aside, the new one in,
then the old one removed; a crash between the two renames is undone on the next start
(`sweep`, which puts the old folder back).

Each writer holds an exclusive lock on ``<temporary>.lock`` while it writes. `sweep`
removes the temporaries whose lock nobody holds (their writer died: kill -9, a node
lost), never those of a live writer; every write sweeps the stale temporaries of its
folder first, and the workflow sweeps the results tree when it starts.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

TMP_PREFIX = ".tmp-"
LOCK_SUFFIX = ".lock"
ASIDE_SUFFIX = ".old"


class OutputError(OSError):
    """Writing an output failed for a reason the user can act on (disk full, permissions)."""


def _explain(exc: OSError, path: Path) -> OutputError:
    if exc.errno == errno.ENOSPC:
        why = "no space left on the device"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = "permission denied (is the results folder writable?)"
    else:
        why = exc.strerror or str(exc)
    err = OutputError(exc.errno or 0, f"cannot write output '{path}': {why}")
    err.__cause__ = exc
    return err


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file, or a folder's entries, to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """fsync every file and folder under `path` (a file: just it), deepest first."""
    if not path.is_dir():
        fsync_path(path)
        return
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            full = os.path.join(root, name)
            if not os.path.islink(full):
                fsync_path(full)
        fsync_path(root)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _final_of(tmp_name: str) -> str | None:
    """The output name a temporary belongs to (``.tmp-<name>-<random>`` -> name)."""
    if not tmp_name.startswith(TMP_PREFIX):
        return None
    core = tmp_name[len(TMP_PREFIX):]
    for suffix in (LOCK_SUFFIX, ASIDE_SUFFIX):
        if core.endswith(suffix):
            core = core[: -len(suffix)]
    name, sep, _ = core.rpartition("-")
    return name if sep else None


def sweep(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove the temporaries of dead writers in `folder` (only those of output `name`, if
    given); returns what was removed. A temporary whose lock is held by a live writer is
    kept. A final folder missing after a crash between the two renames of a swap is put
    back from its aside copy first."""
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = sorted(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        owner = _final_of(entry.name)
        if owner is None or (name is not None and owner != name):
            continue
        if entry.name.endswith(LOCK_SUFFIX):
            base = entry.with_name(entry.name[: -len(LOCK_SUFFIX)])
            try:
                fd = os.open(entry, os.O_RDWR)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live writer
                _recover_aside(folder / owner, base)
                for p in (base, entry):
                    if p.exists() or p.is_symlink():
                        _remove(p)
                        removed.append(p)
            finally:
                os.close(fd)
        elif not (folder / (entry.name.removesuffix(ASIDE_SUFFIX) + LOCK_SUFFIX)).exists():
            # No lock beside it: its writer finished or died (a live writer unlinks its
            # lock only after the temporary is renamed away), or an old version wrote it.
            if entry.name.endswith(ASIDE_SUFFIX):
                _recover_aside(folder / owner, entry.with_name(entry.name.removesuffix(ASIDE_SUFFIX)))
            if entry.exists() or entry.is_symlink():
                _remove(entry)
                removed.append(entry)
    return removed


def _recover_aside(final: Path, tmp: Path) -> None:
    """After a crash between "old aside" and "new in": put the old folder back."""
    aside = tmp.with_name(tmp.name + ASIDE_SUFFIX)
    if aside.exists() and not final.exists():
        os.rename(aside, final)
        fsync_path(final.parent)


def sweep_tree(root: str | os.PathLike) -> list[Path]:
    """`sweep` every folder under `root` (the workflow does this when it starts)."""
    removed: list[Path] = []
    for folder, dirs, _ in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(TMP_PREFIX)]
        removed += sweep(folder)
    return removed


def _swap_in(tmp: Path, final: Path) -> None:
    """Rename `tmp` to `final`; an existing `final` is renamed aside first and removed after."""
    if final.exists() or final.is_symlink():
        if final.is_dir() and not final.is_symlink():
            aside = tmp.with_name(tmp.name + ASIDE_SUFFIX)
            os.rename(final, aside)
            os.rename(tmp, final)
            fsync_path(final.parent)
            shutil.rmtree(aside)
            return
        if tmp.is_dir():  # a file or link where a folder goes: replace it the same way
            os.unlink(final)
    os.replace(tmp, final)
    fsync_path(final.parent)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling path; on success fsync it and rename it to `path`
    (replacing a folder by the swap above), else remove it."""
    final = Path(path)
    lock_fd = None
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        sweep(final.parent)  # dead writers' leftovers in this folder
        # The lock exists and is held before the temporary does, so `sweep` never sees a
        # live writer's temporary without its lock.
        fd, lock_name = tempfile.mkstemp(prefix=TMP_PREFIX + final.name + "-", suffix=LOCK_SUFFIX, dir=final.parent)
        lock_fd = fd
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        lock = Path(lock_name)
        tmp = lock.with_name(lock.name[: -len(LOCK_SUFFIX)])
        if is_dir:
            tmp.mkdir(mode=0o700)
        else:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError as exc:
        if lock_fd is not None:
            os.close(lock_fd)
            with contextlib.suppress(OSError):
                os.unlink(lock_name)
        raise _explain(exc, final) from exc
    try:
        yield tmp
        # the temporaries are owner-only; give outputs the usual umask mode
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, (0o777 if is_dir else 0o666) & ~umask)
        fsync_tree(tmp)
        _swap_in(tmp, final)
    except BaseException as exc:
        # Libraries report a full disk in their own words (torch: "unexpected pos",
        # safetensors: "I/O error"); ask the file system while the temp file still fills it.
        full = isinstance(exc, Exception) and not isinstance(exc, OutputError) and _disk_full(final.parent)
        _remove(tmp)
        if full:
            raise _explain(OSError(errno.ENOSPC, str(exc)), final) from exc
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise _explain(exc, final) from exc
        raise
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(lock_fd)


def _disk_full(folder: Path, slack: int = 1 << 20) -> bool:
    """True when less than `slack` bytes are free where `folder` lives."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < slack


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write text atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: object) -> None:
    """Write JSON atomically, indented for people who open it."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Write one JSON object per line, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as fh:
            for row in rows:
                fh.write(json.dumps(row) + "\n")


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSONL file; a malformed line raises ValueError naming the file and line."""
    rows = []
    with open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg}); the file may be truncated") from exc
    return rows


def write_csv(path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame as CSV atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
