"""Cheap integrity checks of checkpoint files, run before a library is asked to load them.

A truncated or corrupted weight file otherwise fails deep inside safetensors or torch
("Error while deserializing header: incomplete metadata", "failed finding central
directory") without saying which file is broken. These checks read only headers and
sizes, so they cost milliseconds, and their errors name the file and what to do.
Outputs of this workflow are written atomically, so a broken file means outside damage
(a copy cut short, a full disk during a manual copy, bit rot) or a user's own directory.
"""
from __future__ import annotations

import json
import os
import struct
import zipfile
from pathlib import Path
from typing import Any

#: Largest safetensors header the format allows (100 MB), as in the safetensors library.
_MAX_HEADER = 100_000_000
#: A zip member's local file header (signature ... file name length, extra field length).
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated or corrupted; the message names the file."""


def _broken(path: Path, why: str) -> CheckpointError:
    return CheckpointError(
        f"checkpoint file '{path}' is truncated or corrupted ({why}); delete the checkpoint "
        f"folder '{path.parent}' and rerun the workflow to rebuild it"
    )


def check_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file, naming the file when it is not valid JSON."""
    path = Path(path)
    try:
        with open(path) as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise _broken(path, f"not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    except UnicodeDecodeError as exc:
        raise _broken(path, "not text") from exc


def check_safetensors(path: str | os.PathLike) -> None:
    """Header parses and the tensors cover exactly the bytes the file holds."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise _broken(path, f"{size} bytes, shorter than a safetensors header")
        (n,) = struct.unpack("<Q", head)
        if n > _MAX_HEADER or 8 + n > size:
            raise _broken(path, f"header length {n} does not fit in {size} bytes")
        try:
            header = json.loads(fh.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _broken(path, "header is not valid JSON") from exc
    if not isinstance(header, dict):
        raise _broken(path, "header is not a JSON object")
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v]
    data = size - 8 - n
    need = max(ends, default=0)
    if need != data:
        raise _broken(path, f"tensors need {need} data bytes, the file holds {data}")


def check_torch_file(path: str | os.PathLike) -> None:
    """A torch.save file (zip format): the central directory is intact and every member's
    local header is where the directory says, with its data inside the file.

    Reads the directory and one 30-byte header per tensor, never the tensors themselves
    (a CRC check of every member would read the whole file: minutes for a 7B model), so
    the cost does not grow with the model's size. Bit rot inside a tensor's bytes goes
    unnoticed here, as it does in the safetensors check.
    """
    path = Path(path)
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            try:
                zf = zipfile.ZipFile(fh)
            except zipfile.BadZipFile as exc:
                raise _broken(path, f"not a complete torch.save archive ({exc})") from exc
            start_dir = getattr(zf, "start_dir", size)
            for info in zf.infolist():
                fh.seek(info.header_offset)
                head = fh.read(_LOCAL_HEADER.size)
                if len(head) < _LOCAL_HEADER.size or head[:4] != b"PK\x03\x04":
                    raise _broken(path, f"member '{info.filename}' has no local header at offset {info.header_offset}")
                name_len, extra_len = struct.unpack("<HH", head[26:30])
                end = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len + info.compress_size
                if end > min(size, start_dir):
                    raise _broken(path, f"member '{info.filename}' ends at byte {end}, past the data ({min(size, start_dir)})")
    except OSError as exc:
        raise _broken(path, str(exc)) from exc


def check_model_dir(path: str | os.PathLike) -> None:
    """Check a Hugging Face model directory before `from_pretrained` reads it.

    config.json and the tokenizer files must be valid JSON; every weight file (single,
    or each shard listed in the index) must exist and be complete.
    """
    path = Path(path)
    if path.name.startswith(".tmp-"):
        raise CheckpointError(f"'{path}' is a half-written temporary folder; it is never a checkpoint")
    if not (path / "config.json").is_file():
        raise CheckpointError(f"'{path}' is not a Hugging Face model directory (no config.json)")
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        if (path / name).is_file():
            check_json(path / name)
    weights = _weight_files(path)
    if not weights:
        raise CheckpointError(
            f"'{path}' has no weight file (expected model.safetensors, a sharded index, or pytorch_model.bin)"
        )
    for w in weights:
        if not w.is_file():
            raise CheckpointError(f"checkpoint file '{w}' is missing (listed in the index of '{path}')")
        if w.suffix == ".safetensors":
            check_safetensors(w)
        elif w.suffix == ".bin":
            check_torch_file(w)


def _weight_files(path: Path) -> list[Path]:
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = path / index_name
        if index.is_file():
            shards = sorted(set(check_json(index).get("weight_map", {}).values()))
            return [path / s for s in shards]
    return [path / n for n in ("model.safetensors", "pytorch_model.bin") if (path / n).is_file()]
