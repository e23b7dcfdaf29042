"""How setup.py builds the SVD extension: `rlheals.svd._svd_cpu` always, `rlheals.svd._svd_cuda` if it can.

CPU: LAPACK/BLAS from the pip package scipy-openblas32 (no system library needed).
CUDA: built when nvcc and the cuSOLVER/cuBLAS headers and libraries are found: nvcc from
CUDA_HOME / PATH / /usr/local/cuda; headers from CUDA_HOME or the pip packages
`cuda-toolkit[cusolver,cublas]` (nvidia/cu13/..., nvidia/{cusolver,cublas}/...), searched in
site-packages, in RLHEALS_CUDA_PKG and in ./.cudapk. Overrides: RLHEALS_NO_CUDA=1 skips it,
FORCE_CUDA=1 makes a missing toolkit an error. CUDA_ARCHS (default "80;90") picks the GPUs.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

from pybind11.setup_helpers import Pybind11Extension, build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _rel(*parts: str) -> str:
    return os.path.relpath(os.path.join(HERE, *parts), ROOT)


def cpu_extension() -> Pybind11Extension:
    import scipy_openblas32 as ob
    return Pybind11Extension(
        "rlheals.svd._svd_cpu", [_rel("svd.cpp"), _rel("cpu", "svd_cpu.cpp")], cxx_std=17,
        include_dirs=[HERE, ob.get_include_dir()], library_dirs=[ob.get_lib_dir()],
        libraries=[ob.get_library()], runtime_library_dirs=[ob.get_lib_dir()],
        extra_compile_args=["-O3"], define_macros=[("USE_SCIPY_OPENBLAS", "1")])


@dataclass
class CudaToolkit:
    nvcc: str
    home: str
    include_dirs: list = field(default_factory=list)
    lib_dirs: list = field(default_factory=list)
    libs: list = field(default_factory=list)   # e.g. ":libcusolver.so.12"


def _candidate_roots() -> list[str]:
    roots = []
    for env in ("RLHEALS_CUDA_PKG",):
        if os.environ.get(env):
            roots.append(os.environ[env])
    roots.append(os.path.join(ROOT, ".cudapk"))
    roots += [p for p in sys.path if p.endswith("site-packages")]
    try:
        import nvidia  # namespace package of the pip CUDA wheels
        roots += [os.path.dirname(p) for p in nvidia.__path__]
    except ImportError:
        pass
    out = []
    for r in roots:
        for sub in ("nvidia/cu13", "nvidia/cu12", "nvidia/cusolver", "nvidia/cublas"):
            d = os.path.join(r, sub)
            if os.path.isdir(d) and d not in out:
                out.append(d)
    return out


def _find_lib(dirs: list[str], stem: str) -> tuple[str, str] | None:
    for d in dirs:
        hits = sorted(glob.glob(os.path.join(d, f"lib{stem}.so*")), key=len)
        if hits:
            return d, ":" + os.path.basename(hits[0])
    return None


def find_cuda() -> CudaToolkit | None:
    """Locate nvcc + cuSOLVER/cuBLAS headers and libraries, or None."""
    if os.environ.get("RLHEALS_NO_CUDA", "0") == "1":
        return None
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    nvcc = os.path.join(home, "bin", "nvcc") if home else shutil.which("nvcc")
    if not nvcc or not os.path.exists(nvcc):
        for cand in sorted(glob.glob("/usr/local/cuda*/bin/nvcc"), reverse=True):
            nvcc = cand
            break
    if not nvcc or not os.path.exists(nvcc):
        return None
    home = os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))
    if not os.path.exists(os.path.join(home, "include", "cuda_runtime.h")):
        # nvcc on PATH can be a wrapper script (e.g. /usr/local/bin/nvcc exec'ing the toolkit's)
        for cand in [os.environ.get("CUDA_HOME", "")] + sorted(glob.glob("/usr/local/cuda*"), reverse=True):
            if cand and os.path.exists(os.path.join(cand, "include", "cuda_runtime.h")):
                home = os.path.realpath(cand)
                break
    dirs = [home] + _candidate_roots()
    inc = [os.path.join(d, "include") for d in dirs if os.path.exists(os.path.join(d, "include", "cusolverDn.h"))]
    blas_inc = [os.path.join(d, "include") for d in dirs if os.path.exists(os.path.join(d, "include", "cublas_v2.h"))]
    libdirs = [os.path.join(d, sub) for d in dirs for sub in ("lib", "lib64", "targets/x86_64-linux/lib")
               if os.path.isdir(os.path.join(d, sub))]
    solver, blas, rt = _find_lib(libdirs, "cusolver"), _find_lib(libdirs, "cublas"), _find_lib(libdirs, "cudart")
    if not (inc and blas_inc and solver and blas and rt):
        return None
    ldirs = list(dict.fromkeys([solver[0], blas[0], rt[0]]))
    return CudaToolkit(nvcc, home, list(dict.fromkeys([os.path.join(home, "include"), inc[0], blas_inc[0]])),
                       ldirs, [solver[1], blas[1], rt[1]])


def cuda_extension(tk: CudaToolkit) -> Pybind11Extension:
    ext = Pybind11Extension(
        "rlheals.svd._svd_cuda", [_rel("svd_cuda_module.cpp")], cxx_std=17,
        include_dirs=[HERE] + tk.include_dirs, library_dirs=tk.lib_dirs,
        runtime_library_dirs=tk.lib_dirs, define_macros=[("WITH_CUDA", None)])
    ext.extra_link_args = [f"-l{lib}" for lib in tk.libs]
    ext.cuda_sources = [_rel("cuda", "svd_cuda.cu")]
    ext.cuda_toolkit = tk
    return ext


class BuildExt(build_ext):
    """pybind11's build_ext, plus an nvcc step for extensions that carry `cuda_sources`."""

    def build_extension(self, ext):
        for src in getattr(ext, "cuda_sources", []):
            tk = ext.cuda_toolkit
            obj = os.path.join(self.build_temp, os.path.basename(src) + ".o")
            os.makedirs(self.build_temp, exist_ok=True)
            archs = os.environ.get("CUDA_ARCHS", "80;90").split(";")
            gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
            gencode.append(f"-gencode=arch=compute_{archs[-1]},code=compute_{archs[-1]}")
            cmd = [tk.nvcc, "-c", src, "-o", obj, "-O3", "-std=c++17", "-Xcompiler", "-fPIC", f"-I{HERE}"]
            cmd += [f"-I{d}" for d in tk.include_dirs] + gencode
            print(" ".join(cmd))
            subprocess.check_call(cmd)
            ext.extra_objects = list(getattr(ext, "extra_objects", []) or []) + [obj]
        super().build_extension(ext)


def extensions() -> list:
    exts = [cpu_extension()]
    tk = find_cuda()
    if tk is not None:
        print(f"rlheals: building the CUDA extension with {tk.nvcc} (libs in {tk.lib_dirs})")
        exts.append(cuda_extension(tk))
    elif os.environ.get("FORCE_CUDA", "0") == "1":
        raise RuntimeError("FORCE_CUDA=1 but nvcc or the cuSOLVER/cuBLAS headers and libraries were not found; "
                           "pip install 'cuda-toolkit[cusolver,cublas]==<your nvcc version>' or set CUDA_HOME")
    else:
        print("rlheals: CUDA toolkit with cuSOLVER not found; building the CPU extension only")
    return exts
