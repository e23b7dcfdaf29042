"""Time the load checks (rlheals.checks) on a 2 GB checkpoint, against a full CRC read.

Writes a 2 GB random safetensors file and a 2 GB torch.save `.bin` (8 tensors of 256 MB)
under --dir (default /tmp), then times, each --repeat times (best kept):
  - `check_safetensors` and `check_torch_file` (headers and sizes only), and
  - the former `.bin` check, `zipfile.testzip()`, which reads and CRCs every byte
    (the baseline, measured in the same run).
The files are read right after being written, so the page cache is warm: the baseline is
a lower bound (a cold read of 2 GB from disk is slower still); the header checks read a
few kB either way.

    python benchmarks/load_check_bench.py [--gb 2] [--dir /tmp] [--keep]
"""
from __future__ import annotations

import argparse
import json
import os
import struct
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

from rlheals.checks import check_safetensors, check_torch_file


def write_safetensors(path: Path, nbytes: int, chunk: int = 1 << 28) -> None:
    """A valid safetensors file of `nbytes` random float32 data, streamed (no 2 GB in memory)."""
    n_tensors = max(1, nbytes // chunk)
    per = nbytes // n_tensors // 4 * 4
    header, offset = {}, 0
    for i in range(n_tensors):
        header[f"layer{i}.weight"] = {"dtype": "F32", "shape": [per // 4], "data_offsets": [offset, offset + per]}
        offset += per
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    rng = np.random.default_rng(0)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
        for _ in range(n_tensors):
            fh.write(rng.standard_normal(per // 4, dtype=np.float32).tobytes())


def write_bin(path: Path, nbytes: int, chunk: int = 1 << 28) -> None:
    g = torch.Generator().manual_seed(0)
    n = max(1, nbytes // chunk)
    torch.save({f"layer{i}.weight": torch.randn(chunk // 4, generator=g) for i in range(n)}, path)


def testzip_check(path: Path) -> None:
    """The former check of a .bin: CRC of every member (reads the whole file)."""
    with zipfile.ZipFile(path) as zf:
        if zf.testzip() is not None:
            raise RuntimeError("bad CRC")


def best_of(fn, path: Path, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(path)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=2.0)
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the files")
    args = ap.parse_args()
    nbytes = int(args.gb * (1 << 30))
    folder = Path(tempfile.mkdtemp(prefix="load_check_bench-", dir=args.dir))
    st, pt = folder / "model.safetensors", folder / "pytorch_model.bin"
    try:
        t0 = time.perf_counter()
        write_safetensors(st, nbytes)
        write_bin(pt, nbytes)
        print(f"wrote {st.stat().st_size / 2**30:.2f} GiB safetensors and {pt.stat().st_size / 2**30:.2f} GiB .bin "
              f"in {time.perf_counter() - t0:.0f} s ({folder})")
        rows = [
            ("safetensors: header + sizes (check_safetensors)", best_of(check_safetensors, st, args.repeat)),
            (".bin: directory + local headers (check_torch_file)", best_of(check_torch_file, pt, args.repeat)),
            (".bin: testzip() CRC of every byte (former check)", best_of(testzip_check, pt, args.repeat)),
        ]
        for name, sec in rows:
            print(f"{name:55s} {sec * 1e3:10.2f} ms")
        print(f"ratio former/current .bin check: {rows[2][1] / rows[1][1]:.0f}x")
    finally:
        if not args.keep:
            for p in (st, pt):
                p.unlink(missing_ok=True)
            folder.rmdir()


if __name__ == "__main__":
    main()
