"""Atomic outputs: a file or directory appears under its final name only when complete.

An interrupted job (kill -9, disk full) must never leave a half-written file that looks
finished to Snakemake or to a later resume. Everything is written under a temporary
name in the same directory and renamed into place at the end.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

TMP_PREFIX = ".tmp-"


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


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling path; on success rename it to `path`, else remove it."""
    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        if is_dir:
            tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + final.name + "-", dir=final.parent))
        else:
            fd, name = tempfile.mkstemp(prefix=TMP_PREFIX + final.name + "-", dir=final.parent)
            os.close(fd)
            tmp = Path(name)
    except OSError as exc:
        raise _explain(exc, final) from exc
    try:
        yield tmp
        # mkstemp/mkdtemp create owner-only files; give outputs the usual umask mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, (0o777 if is_dir else 0o666) & ~umask)
        if is_dir and final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException as exc:
        # Libraries report a full disk in their own words (torch: "unexpected pos",
        # safetensors: "I/O error"); ask the file system while the temp file still fills it.
        full = isinstance(exc, Exception) and not isinstance(exc, OutputError) and _disk_full(final.parent)
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        if full:
            raise _explain(OSError(errno.ENOSPC, str(exc)), final) from exc
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise _explain(exc, final) from exc
        raise


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
