"""Load checks read headers and sizes only: their cost does not grow with the model.

Bytes read are counted by the kernel (/proc/self/io rchar), so the test holds for any
implementation and does not time anything (benchmarks/load_check_bench.py times a 2 GB
checkpoint).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from rlheals.checks import CheckpointError, check_safetensors, check_torch_file

MB = 1 << 20


def _bytes_read() -> int:
    with open("/proc/self/io") as fh:
        return int(next(line for line in fh if line.startswith("rchar:")).split()[1])


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("big")
    tensors = {f"layer{i}.weight": torch.randn(1024, 1024) for i in range(12)}  # 48 MB
    torch.save(tensors, d / "pytorch_model.bin")
    save_file(tensors, d / "model.safetensors")
    return {"bin": d / "pytorch_model.bin", "safetensors": d / "model.safetensors"}


@pytest.mark.parametrize("kind", ["bin", "safetensors"])
def test_a_check_reads_a_tiny_part_of_the_file(big, kind):
    path = big[kind]
    check = check_torch_file if kind == "bin" else check_safetensors
    before = _bytes_read()
    check(path)
    read = _bytes_read() - before
    size = path.stat().st_size
    print(f"\n{kind}: read {read} of {size} bytes")
    assert read < MB, f"the check of {path.name} read {read / MB:.1f} MB of {size / MB:.0f} MB"


@pytest.mark.parametrize("damage", ["truncated", "cut in the middle", "header overwritten", "empty"])
def test_damaged_torch_file_is_named(big, tmp_path, damage):
    data = big["bin"].read_bytes()
    bad = tmp_path / "pytorch_model.bin"
    if damage == "truncated":
        bad.write_bytes(data[: len(data) - 5000])
    elif damage == "cut in the middle":
        bad.write_bytes(data[: len(data) // 3] + data[len(data) // 3 + 4096 :])
    elif damage == "header overwritten":
        bad.write_bytes(os.urandom(4096) + data[4096:])
    else:
        bad.write_bytes(b"")
    with pytest.raises(CheckpointError) as err:
        check_torch_file(bad)
    assert str(bad) in str(err.value)
