"""Which OpenBLAS kernel runs, and which other one the numeric tests should run under.

numpy and the SVD extension link two separate OpenBLAS builds (numpy's bundled
libscipy_openblas64_, the extension's scipy-openblas32); OPENBLAS_CORETYPE steers both.
`report` prints the kernel of each (threadpoolctl); `pick` prints a kernel that differs
from this CPU's default and that the CPU can run (SkylakeX, else Haswell, else Prescott);
`check NAME` fails unless OPENBLAS_CORETYPE=NAME really changed the kernel.
"""
from __future__ import annotations

import os
import sys


def kernels() -> dict[str, str]:
    """{library: 'version kernel'} for numpy's and the extension's OpenBLAS."""
    from rlheals.svd import linalg

    return linalg.blas_kernels()


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def pick(default_kernels: set[str], flags: set[str]) -> str:
    needs = {"SkylakeX": {"avx512f", "avx512bw", "avx512vl"}, "Haswell": {"avx2", "fma"}, "Prescott": {"pni"}}
    for name, need in needs.items():
        if name not in default_kernels and need <= flags:
            return name
    return "Prescott"


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else "report"
    ks = kernels()
    env = os.environ.get("OPENBLAS_CORETYPE", "<unset>")
    if cmd == "report":
        for lib, k in ks.items():
            print(f"OpenBLAS ({lib}): {k}  [OPENBLAS_CORETYPE={env}]")
        return 0
    if cmd == "pick":  # neither OpenBLAS's own choice nor the one this shell's OPENBLAS_CORETYPE forces
        used = {k.split()[-1] for k in _default_kernels().values()} | {k.split()[-1] for k in ks.values()}
        print(pick(used, cpu_flags()))
        return 0
    if cmd == "check":
        want = argv[2]
        for lib, k in ks.items():
            print(f"OpenBLAS ({lib}): {k}  [OPENBLAS_CORETYPE={env}]")
        default = {k.split()[-1] for k in _default_kernels().values()}
        now = {k.split()[-1] for k in ks.values()}
        if now & default:
            print(f"OPENBLAS_CORETYPE={want} did not change the kernel (default {sorted(default)}, now {sorted(now)})")
            return 1
        return 0
    print(f"usage: {argv[0]} report | pick | check NAME", file=sys.stderr)
    return 2


def _default_kernels() -> dict[str, str]:
    """The kernels without OPENBLAS_CORETYPE (in a child process: OpenBLAS reads it once at load)."""
    import json
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    code = "import json, sys; sys.path.insert(0, '.ci'); import blas_kernel; print(json.dumps(blas_kernel.kernels()))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
